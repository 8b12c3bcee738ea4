import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { BUILTIN_TASKS_DIR, loadRegistry } from '../src/core/registry.js';
import { TaskgateError } from '../src/errors.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url));

async function loadError(dir: string): Promise<TaskgateError> {
  try {
    await loadRegistry(fixture(dir));
  } catch (error) {
    expect(error).to.be.instanceOf(TaskgateError);
    return error as TaskgateError;
  }
  throw new Error(`the registry accepted ${dir}`);
}

describe('task registry', () => {
  it('registers every module of tasks/, each under its file name, and no helper module (_name)', async () => {
    const files = (await readdir(BUILTIN_TASKS_DIR)).filter((f) => f.endsWith('.ts') && !f.startsWith('_'));
    expect(await readdir(BUILTIN_TASKS_DIR)).to.include('_simplejwt');
    const registry = await loadRegistry();
    expect(files).to.not.be.empty;
    expect(registry.names()).to.deep.equal(files.map((f) => f.replace(/\.ts$/, '')).sort());
    for (const task of registry.list()) {
      expect(task.definition.description, task.definition.name).to.match(/\.$/);
    }
  });

  it('gives each task its parsed schedule, or none for on-demand tasks', async () => {
    const registry = await loadRegistry(fixture('tasks-runner'));
    expect(registry.require('echo').schedule?.expression).to.equal('0 12 * * 1');
    expect(registry.require('failing').schedule).to.equal(null);
  });

  it('answers TASK_NOT_FOUND with the known names for an unknown task', async () => {
    const registry = await loadRegistry(fixture('tasks-runner'));
    expect(() => registry.require('nope'))
      .to.throw(TaskgateError)
      .that.satisfies((e: TaskgateError) => e.code === 'TASK_NOT_FOUND' && Array.isArray(e.details.tasks));
  });

  it('stops start-up on a name that is not lowercase letters, digits and underscores, naming the file', async () => {
    const error = await loadError('bad-tasks/bad-name');
    expect(error.code).to.equal('INVALID_TASK');
    expect(error.message).to.match(/^tasks\/Bad-Name\.ts: name "Bad-Name" must match/);
  });

  it('stops start-up when a task name differs from its file name', async () => {
    expect((await loadError('bad-tasks/name-mismatch')).message).to.equal(
      'tasks/one_task.ts: name "another_task" must equal the file name "one_task"',
    );
  });

  it('stops start-up on a bad cron expression', async () => {
    expect((await loadError('bad-tasks/bad-cron')).message).to.match(/^tasks\/bad_cron\.ts: schedule .*hour/);
  });

  it('stops start-up on two modules defining the same task', async () => {
    expect((await loadError('bad-tasks/duplicate')).message).to.match(
      /dup_task\.ts: duplicates task "dup_task"/,
    );
  });

  it('stops start-up on a module without a task as default export', async () => {
    expect((await loadError('bad-tasks/no-default')).message).to.match(
      /^tasks\/helper_only\.ts: has no default export/,
    );
  });
});
