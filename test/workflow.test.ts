import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';
import { expect } from 'chai';
import { loadRegistry, type Registry } from '../src/core/registry.js';
import { generateWorkflow, scheduleTable, WORKFLOW_PATH } from '../src/scheduling/workflow.js';
import { evaluate, githubContext, parseWorkflowText, runJob, type Workflow } from './support/actions.js';
import { ROOT, runCli } from './support/cli.js';
import { stubServer } from './support/stub-server.js';

const SCHEDULE_TASKS = fileURLToPath(new URL('./fixtures/tasks-schedule/', import.meta.url));

/** Every error GitHub's own parser and converter find in a workflow's text. */
async function workflowErrors(content: string): Promise<string[]> {
  const parsed = parseWorkflow({ name: 'taskgate.yml', content }, new NoOperationTraceWriter());
  const errors = parsed.context.errors.getErrors().map((e) => e.message);
  if (parsed.value) {
    const template = await convertWorkflowTemplate(parsed.context, parsed.value);
    errors.push(...(template.errors ?? []).map((e) => e.Message));
  } else {
    errors.push('no workflow parsed');
  }
  return errors;
}

/** The matrix GitHub would build for a run started by this event: the plan job, then fromJSON. */
async function matrixFor(
  workflow: Workflow,
  event: Parameters<typeof githubContext>[0],
): Promise<{ tasks: unknown; log: string; ok: boolean }> {
  const github = githubContext(event);
  const inputs = event.name === 'workflow_dispatch' ? event.inputs : {};
  const plan = await runJob(workflow, 'plan', { github, inputs });
  if (!plan.ok) return { tasks: null, log: plan.log, ok: false };
  const tasks = await evaluate(workflow.jobs.run!.strategy!.matrix.task!, {
    github,
    inputs,
    needs: { plan: { outputs: plan.outputs, result: 'success' } },
  });
  return { tasks, log: plan.log, ok: true };
}

describe('the generated GitHub Actions workflow', () => {
  let registry: Registry;
  let text: string;
  let workflow: Workflow;
  before(async () => {
    registry = await loadRegistry(SCHEDULE_TASKS);
    text = generateWorkflow(registry.list());
    workflow = parseWorkflowText(text);
  });

  it("passes GitHub's own workflow parser and schema with zero errors", async () => {
    expect(await workflowErrors(text)).to.deep.equal([]);
    expect(await workflowErrors(generateWorkflow((await loadRegistry()).list()))).to.deep.equal([]);
  });

  it('fails that same validation once a job loses its runs-on, so the check can catch mistakes', async () => {
    const broken = text.replace(
      /\n {4}runs-on: ubuntu-latest\n {4}timeout-minutes: 5\n {4}outputs:/,
      '\n    outputs:',
    );
    expect(broken).to.not.equal(text);
    expect(await workflowErrors(broken)).to.not.be.empty;
  });

  it('has one schedule entry per distinct cron, each naming its tasks', () => {
    expect(workflow.on.schedule!.map((s) => s.cron)).to.deep.equal([
      '0 0 * * *',
      '*/15 * * * *',
      '30 6 * * MON',
    ]);
    expect(text).to.include('- cron: "0 0 * * *" # nightly_a, nightly_b');
    expect([...scheduleTable(registry.list())]).to.deep.equal([
      ['0 0 * * *', ['nightly_a', 'nightly_b']],
      ['*/15 * * * *', ['quarter_hourly']],
      ['30 6 * * MON', ['weekly_report']],
    ]);
  });

  it('offers every task, on-demand ones too, as a workflow_dispatch choice with a dry-run switch', () => {
    const inputs = workflow.on.workflow_dispatch.inputs;
    expect(inputs.task).to.include({ type: 'choice' });
    expect(inputs.task!.options).to.deep.equal(registry.names());
    expect(inputs.dry_run).to.include({ type: 'boolean', default: false });
  });

  for (const [cron, tasks] of [
    ['0 0 * * *', ['nightly_a', 'nightly_b']],
    ['*/15 * * * *', ['quarter_hourly']],
    ['30 6 * * MON', ['weekly_report']],
  ] as const) {
    it(`turns the schedule event for "${cron}" into the matrix ${JSON.stringify(tasks)}`, async () => {
      const { tasks: matrix, log } = await matrixFor(workflow, { name: 'schedule', schedule: cron });
      expect(matrix, log).to.deep.equal(tasks);
    });
  }

  it('turns a workflow_dispatch of one task into a one-task matrix', async () => {
    const { tasks } = await matrixFor(workflow, {
      name: 'workflow_dispatch',
      inputs: { task: 'on_demand', dry_run: true, params: '{}' },
    });
    expect(tasks).to.deep.equal(['on_demand']);
  });

  it('fails the plan job, naming the fix, when a schedule fires that no task has', async () => {
    const { ok, log } = await matrixFor(workflow, { name: 'schedule', schedule: '5 4 * * *' });
    expect(ok).to.equal(false);
    expect(log).to.include("::error::no task is scheduled at '5 4 * * *'");
  });

  it('runs the matrix without fail-fast, one concurrency group per task, and keys each call by run, attempt and task', async () => {
    const run = workflow.jobs.run!;
    expect(run.strategy!['fail-fast']).to.equal(false);
    const github = githubContext({ name: 'schedule', schedule: '0 0 * * *' }, { id: '42', attempt: '3' });
    const group = await evaluate(run.concurrency!.group, { github, matrix: { task: 'nightly_a' } });
    expect(group).to.equal('taskgate-nightly_a');
    expect(run.concurrency!['cancel-in-progress']).to.equal(false);
    const trigger = run.steps.find((s) => s.env?.IDEMPOTENCY_KEY)!;
    expect(await evaluate(trigger.env!.IDEMPOTENCY_KEY!, { github, matrix: { task: 'nightly_b' } })).to.equal(
      '42-3-nightly_b',
    );
    expect(
      await evaluate(trigger.env!.CRON_SECRET_KEY!, { github, secrets: { CRON_SECRET_KEY: 's' } }),
    ).to.equal('s');
  });

  it('keeps expressions out of run scripts, so no input can inject shell code', () => {
    for (const job of Object.values(workflow.jobs)) {
      for (const step of job.steps) expect(step.run).to.not.include('${{');
    }
  });

  it('re-enables itself on scheduled runs to outlast the 60-day inactivity rule, with only that permission', () => {
    const keepalive = workflow.jobs.keepalive as unknown as Record<string, unknown>;
    expect(keepalive.if).to.equal("github.event_name == 'schedule'");
    expect(keepalive.permissions).to.deep.equal({ actions: 'write' });
    expect((workflow as unknown as Record<string, unknown>).permissions).to.deep.equal({});
  });

  it("keepalive enables this workflow through GitHub's API with the job's token", async () => {
    const api = await stubServer(() => ({ status: 204 }));
    try {
      const github = githubContext({ name: 'schedule', schedule: '0 0 * * *' });
      const job = await runJob(
        workflow,
        'keepalive',
        { github },
        { runnerEnv: { GITHUB_API_URL: api.url, GITHUB_REPOSITORY: 'example/app' } },
      );
      expect(job.ok, job.log).to.equal(true);
      expect(api.seen.map((r) => `${r.method} ${r.path}`)).to.deep.equal([
        'PUT /repos/example/app/actions/workflows/taskgate.yml/enable',
      ]);
      expect(api.seen[0]!.headers.authorization).to.equal(`Bearer ${github.token}`);
      expect(job.log).to.include('the schedule of taskgate.yml stays enabled');
    } finally {
      await api.close();
    }
  });

  it('is generated the same way twice (the check compares text)', () => {
    expect(generateWorkflow(registry.list())).to.equal(text);
  });

  describe('adding a task', () => {
    let dir: string;
    before(async () => {
      // A copy of tasks/ beside links to src/ and node_modules/, so the copied modules import as in the repo.
      dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-tasks-'));
      await symlink(path.join(ROOT, 'src'), path.join(dir, 'src'));
      await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
      await cp(path.join(ROOT, 'tasks'), path.join(dir, 'tasks'), { recursive: true });
      await writeFile(
        path.join(dir, 'tasks', 'throwaway_nightly.ts'),
        `import { z } from 'zod';
import { defineTask } from '../src/task.js';

export default defineTask({
  name: 'throwaway_nightly',
  description: 'Exists only to show that a new file is all it takes.',
  schedule: '45 2 * * *',
  params: z.strictObject({}),
  async run() {
    return { ok: true };
  },
});
`,
      );
    });
    after(async () => rm(dir, { recursive: true, force: true }));

    it('is all it takes: the regenerated workflow gains its cron, its matrix entry and its dispatch choice', async () => {
      const before = parseWorkflowText(
        generateWorkflow((await loadRegistry(path.join(ROOT, 'tasks'))).list()),
      );
      const after = parseWorkflowText(generateWorkflow((await loadRegistry(path.join(dir, 'tasks'))).list()));
      expect(before.on.schedule!.map((s) => s.cron)).to.not.include('45 2 * * *');
      expect(after.on.schedule!.map((s) => s.cron)).to.include('45 2 * * *');
      expect(after.on.workflow_dispatch.inputs.task!.options).to.include('throwaway_nightly');
      const { tasks } = await matrixFor(after, { name: 'schedule', schedule: '45 2 * * *' });
      expect(tasks).to.deep.equal(['throwaway_nightly']);
      expect((await matrixFor(before, { name: 'schedule', schedule: '45 2 * * *' })).ok).to.equal(false);
    });

    it('makes `taskgate workflow --check` fail with a diff until the workflow is regenerated', async () => {
      const env = { TASKS_DIR: path.join(dir, 'tasks') };
      const stale = await runCli(['workflow', '--check'], env);
      expect(stale.code, stale.stderr).to.equal(1);
      expect(stale.stdout).to.match(/^\+ {4}- cron: "45 2 \* \* \*" # throwaway_nightly$/m);
      expect(stale.stderr).to.include('workflow --write');

      const file = path.join(dir, 'taskgate.yml');
      const written = await runCli(['workflow', '--write', '--file', file], env);
      expect(written.code, written.stderr).to.equal(0);
      const fresh = await runCli(['workflow', '--check', '--file', file], env);
      expect(fresh.code, fresh.stdout + fresh.stderr).to.equal(0);
    });
  });

  describe('taskgate workflow', () => {
    it('--check passes on the committed workflow (so CI fails when a task is added without regenerating)', async () => {
      const { code, stdout, stderr } = await runCli(['workflow', '--check']);
      expect(code, stdout + stderr).to.equal(0);
      expect(stdout).to.include('is up to date');
    });

    it('prints exactly the committed workflow', async () => {
      const { code, stdout } = await runCli(['workflow']);
      expect(code).to.equal(0);
      expect(stdout).to.equal(await readFile(path.join(ROOT, WORKFLOW_PATH), 'utf8'));
    });

    it('--check exits 1 and says the file is missing when there is none', async () => {
      const { code, stdout } = await runCli(['workflow', '--check', '--file', '/nonexistent/taskgate.yml']);
      expect(code).to.equal(1);
      expect(stdout).to.include('does not exist');
    });
  });
});
