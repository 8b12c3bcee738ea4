import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../src/config.js';
import { builtinTaskNames, loadProjectTasks } from '../src/core/registry.js';
import { validateParams } from '../src/core/runRequest.js';
import { TaskgateError } from '../src/errors.js';
import { loadProject } from '../src/projectFile.js';
import { ROOT } from './support/cli.js';

/** A project folder of the test's own: its taskgate.config.json and any task modules. */
async function project(config: unknown, tasks: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-project-'));
  if (config !== undefined) {
    await writeFile(
      path.join(dir, 'taskgate.config.json'),
      typeof config === 'string' ? config : JSON.stringify(config),
    );
  }
  if (Object.keys(tasks).length > 0) await mkdir(path.join(dir, 'tasks'));
  for (const [file, source] of Object.entries(tasks)) await writeFile(path.join(dir, 'tasks', file), source);
  return dir;
}

const SRC = path.join(ROOT, 'src');
const userTask = (
  name: string,
  schedule: string | null = null,
) => `import { defineTask, z } from '${SRC}/index.js';
export default defineTask({
  name: '${name}',
  description: 'A task of the project itself.',
  schedule: ${JSON.stringify(schedule)},
  params: z.strictObject({}),
  async run() { return { ok: true }; },
});
`;

async function refusal(fn: () => unknown): Promise<TaskgateError> {
  try {
    await fn();
  } catch (error) {
    expect(error).to.be.instanceOf(TaskgateError);
    return error as TaskgateError;
  }
  throw new Error('it was accepted');
}

describe('a project: taskgate.config.json', () => {
  const made: string[] = [];
  const at = async (config: unknown, tasks?: Record<string, string>) => {
    const dir = await project(config, tasks);
    made.push(dir);
    return dir;
  };
  after(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });

  it('registers exactly the built-in tasks it chooses', async () => {
    const dir = await at({ tasks: { flushexpiredtokens_daily: {} } });
    const registry = await loadProjectTasks(loadProject({ cwd: dir }));
    expect(registry.names()).to.deep.equal(['flushexpiredtokens_daily']);
    expect(await builtinTaskNames()).to.include.members(['clearsessions_daily', 'prunetaskruns_weekly']);
  });

  it('registers the modules of its own tasks folder beside the chosen built-ins', async () => {
    const dir = await at(
      { tasks: { clearsessions_daily: {} } },
      { 'sendmail_hourly.ts': userTask('sendmail_hourly') },
    );
    const registry = await loadProjectTasks(loadProject({ cwd: dir }));
    expect(registry.names()).to.deep.equal(['clearsessions_daily', 'sendmail_hourly']);
  });

  it('without a config file registers no built-in task, only ./tasks', async () => {
    const dir = await at(undefined, { 'own_task.ts': userTask('own_task') });
    const loaded = loadProject({ cwd: dir });
    expect(loaded.file).to.equal(null);
    expect((await loadProjectTasks(loaded)).names()).to.deep.equal(['own_task']);
  });

  it('replaces a task’s schedule, or makes it on demand with null', async () => {
    const dir = await at({
      tasks: {
        flushexpiredtokens_daily: { schedule: '30 2 * * *' },
        clearsessions_daily: { schedule: null },
      },
    });
    const registry = await loadProjectTasks(loadProject({ cwd: dir }));
    expect(registry.require('flushexpiredtokens_daily').schedule?.expression).to.equal('30 2 * * *');
    expect(registry.require('clearsessions_daily').schedule).to.equal(null);
  });

  it('gives params defaults that a request’s own params still override', async () => {
    const dir = await at({ tasks: { clearsessions_daily: { params: { batchSize: 1234 } } } });
    const task = (await loadProjectTasks(loadProject({ cwd: dir }))).require('clearsessions_daily');
    expect(validateParams(task, {})).to.deep.equal({ batchSize: 1234 });
    expect(validateParams(task, { batchSize: 7 })).to.deep.equal({ batchSize: 7 });
    // Still strict: an unknown key is refused.
    expect(() => validateParams(task, { batchsize: 7 })).to.throw(/batchsize/);
  });

  it('gives settings values that an environment variable of the same name overrides', async () => {
    const dir = await at({
      tasks: { clearsessions_daily: { settings: { DJANGO_SESSION_TABLE: 'app_session' } } },
    });
    const loaded = loadProject({ cwd: dir });
    expect((await loadProjectTasks(loaded, {})).require('clearsessions_daily').settings).to.deep.include({
      DJANGO_SESSION_TABLE: 'app_session',
    });
    const fromEnv = await loadProjectTasks(loaded, { DJANGO_SESSION_TABLE: 'env_session' });
    expect(fromEnv.require('clearsessions_daily').settings).to.deep.include({
      DJANGO_SESSION_TABLE: 'env_session',
    });
  });

  it('refuses a task name that is neither built in nor the project’s, listing the built-in ones', async () => {
    const dir = await at({ tasks: { flushexpiredtoken_daily: {} } });
    const error = await refusal(() => loadProjectTasks(loadProject({ cwd: dir })));
    expect(error.code).to.equal('CONFIG_INVALID');
    expect(error.message).to.match(/tasks\.flushexpiredtoken_daily is neither a built-in task nor a module/);
    expect(error.message).to.include('flushexpiredtokens_daily');
  });

  it('refuses a params default the task would refuse, and a parameter it does not have, naming the key', async () => {
    const bad = await at({ tasks: { clearsessions_daily: { params: { batchSize: 0 } } } });
    expect((await refusal(() => loadProjectTasks(loadProject({ cwd: bad })))).message).to.match(
      /tasks\.clearsessions_daily\.params\.batchSize .*>=1/,
    );
    const unknown = await at({ tasks: { clearsessions_daily: { params: { size: 5 } } } });
    expect((await refusal(() => loadProjectTasks(loadProject({ cwd: unknown })))).message).to.match(
      /tasks\.clearsessions_daily\.params\.size is not a parameter of the task \(it has: batchSize\)/,
    );
  });

  it('refuses a bad schedule override naming the config file and the task', async () => {
    const dir = await at({ tasks: { clearsessions_daily: { schedule: '0 25 * * *' } } });
    expect((await refusal(() => loadProjectTasks(loadProject({ cwd: dir })))).message).to.match(
      /taskgate\.config\.json: tasks\.clearsessions_daily\.schedule .*hour/,
    );
  });

  it('refuses a project task that has the name of a built-in task the config chooses', async () => {
    const dir = await at(
      { tasks: { clearsessions_daily: {} } },
      { 'clearsessions_daily.ts': userTask('clearsessions_daily') },
    );
    expect((await refusal(() => loadProjectTasks(loadProject({ cwd: dir })))).message).to.match(
      /clearsessions_daily\.ts: has the name of taskgate's built-in task "clearsessions_daily"/,
    );
  });

  it('stops with one line naming the file when the config is not JSON, has an unknown key, or is named and missing', async () => {
    const notJson = await at('{ "tasks": { ');
    expect(() => loadProject({ cwd: notJson })).to.throw(/^taskgate\.config\.json: is not valid JSON/);
    const unknownKey = await at({ tasks: {}, task: {} });
    expect(() => loadProject({ cwd: unknownKey })).to.throw(/^taskgate\.config\.json: .*task/);
    const unknownOverride = await at({ tasks: { clearsessions_daily: { schedul: '* * * * *' } } });
    expect(() => loadProject({ cwd: unknownOverride })).to.throw(/tasks\.clearsessions_daily: .*schedul/);
    expect(() => loadConfig({ TASKGATE_CONFIG: 'nope.json' }, { cwd: notJson })).to.throw(
      /nope\.json: not found \(TASKGATE_CONFIG names it\)/,
    );
  });

  it('resolves tasksDir and workflow against the config file’s folder; TASKS_DIR overrides the folder', async () => {
    const dir = await at({ tasks: {}, tasksDir: 'jobs', workflow: '../.github/workflows/taskgate.yml' });
    const loaded = loadProject({ cwd: dir });
    expect(loaded.tasksDir).to.equal(path.join(dir, 'jobs'));
    expect(loaded.workflowFile).to.equal(path.join(path.dirname(dir), '.github/workflows/taskgate.yml'));
    const config = loadConfig({ TASKS_DIR: 'elsewhere' }, { cwd: dir });
    expect(config.project.tasksDir).to.equal(path.join(dir, 'elsewhere'));
  });

  it('in this repository chooses every built-in task, and has no tasks folder of its own (tasks/ are the built-ins)', async () => {
    const project = loadProject({ cwd: ROOT });
    expect(project.tasksDir).to.equal(null);
    const registry = await loadProjectTasks(project);
    expect(registry.names()).to.deep.equal(await builtinTaskNames());
    // So the compiled service, run from the clone in production, does not take tasks/ for a project's own.
    const production = await loadProjectTasks(project, {}, { production: true });
    expect(production.names()).to.deep.equal(registry.names());
  });
});
