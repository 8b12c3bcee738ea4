import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadRegistry } from '../src/core/registry.js';
import { TRANSIENT_STATUSES } from '../src/remote/wakePolicy.js';
import { stepScript } from '../src/scheduling/scripts.js';
import { generateWorkflow } from '../src/scheduling/workflow.js';
import { githubContext, parseWorkflowText, runJob, type Workflow } from './support/actions.js';
import { type StubAnswer, stubServer } from './support/stub-server.js';

const SCRIPTS = fileURLToPath(new URL('../src/scheduling/scripts/', import.meta.url));
const SCHEDULE_TASKS = fileURLToPath(new URL('./fixtures/tasks-schedule/', import.meta.url));

/** shellcheck's findings (of every severity) and its exit code; `input` is checked as bash. */
function shellcheck(args: string[], input?: string): { code: number | null; out: string } {
  const result = spawnSync('shellcheck', ['--severity=style', ...args], { input, encoding: 'utf8' });
  return { code: result.status, out: result.stdout + result.stderr };
}

describe("the workflow's shell scripts", () => {
  let workflows: Workflow[];
  before(async () => {
    workflows = [
      parseWorkflowText(generateWorkflow((await loadRegistry(SCHEDULE_TASKS)).list())),
      parseWorkflowText(generateWorkflow((await loadRegistry()).list())),
    ];
  });

  it('are embedded without their header and with the prelude inlined, so a step needs no other file', () => {
    const prelude = readFileSync(path.join(SCRIPTS, 'prelude.sh'), 'utf8')
      .split('\n\n')
      .slice(1)
      .join('\n\n');
    for (const name of ['wake', 'trigger'] as const) {
      const step = stepScript(name);
      expect(step.startsWith(prelude), name).to.equal(true);
      expect(step).to.not.match(/^(#!|source |set -eo pipefail|# shellcheck source=)/m);
    }
    for (const name of ['plan', 'keepalive'] as const) expect(stepScript(name)).to.not.include('#!');
  });

  describe('under shellcheck', () => {
    before(function () {
      if (spawnSync('shellcheck', ['--version']).status === 0) return;
      // CI installs shellcheck (.ci/run); there a missing one is a failure, not a skip.
      if (process.env.CI) throw new Error('shellcheck is not installed: .ci/run installs it');
      console.warn(
        '\n  SKIPPED: shellcheck is not installed (apt-get install shellcheck); the scripts went unchecked\n',
      );
      this.skip();
    });

    it('passes each script in src/scheduling/scripts/, following the files it sources', () => {
      const files = readdirSync(SCRIPTS).filter((f) => f.endsWith('.sh'));
      expect(files).to.include.members(['plan.sh', 'prelude.sh', 'wake.sh', 'trigger.sh', 'keepalive.sh']);
      for (const file of files) {
        const { code, out } = shellcheck(['--external-sources', '--check-sourced', path.join(SCRIPTS, file)]);
        expect(code, `${file}:\n${out}`).to.equal(0);
      }
    });

    it('passes each run: step of the generated workflow as GitHub runs it (bash)', () => {
      let steps = 0;
      for (const workflow of workflows) {
        for (const [id, job] of Object.entries(workflow.jobs)) {
          for (const step of job.steps) {
            const { code, out } = shellcheck(['--shell=bash', '-'], step.run);
            expect(code, `${id} / ${step.name ?? step.id}:\n${out}`).to.equal(0);
            steps++;
          }
        }
      }
      expect(steps).to.equal(8);
    });

    it('fails a step with an unquoted variable, so the check can catch mistakes', () => {
      const { code, out } = shellcheck(['--shell=bash', '-'], `${stepScript('wake')}\nrm -rf $base\n`);
      expect(code).to.not.equal(0);
      expect(out).to.include('SC2086');
    });
  });

  describe('retry the answers the TypeScript client treats as transient, and only those', () => {
    /**
     * The run job against a stub taskgate whose `POST /cron/<task>` (or, with `poll`, whose run
     * record behind a 202) answers `first` once, then success.
     */
    async function runAgainst(first: number, { poll = false } = {}) {
      const api = await stubServer((request, seen): StubAnswer => {
        if (request.path === '/readyz') return { status: 200, body: { status: 'ok' } };
        const earlier = seen.filter((r) => r.path === request.path).length;
        if (request.method === 'POST') {
          if (poll) return { status: 202, body: { runId: 'r1' }, headers: { Location: '/cron/runs/r1' } };
          if (earlier === 1) return { status: first, body: { code: 'X', message: 'not now' } };
          return { status: 200, body: { status: 'success', runId: 'r1', durationMs: 1 } };
        }
        if (earlier === 1) return { status: first, body: { code: 'X', message: 'not now' } };
        return { status: 200, body: { run: { id: 'r1', status: 'succeeded', durationMs: 1 } } };
      });
      try {
        const github = githubContext({ name: 'schedule', schedule: '0 0 * * *' });
        const job = await runJob(workflows[0]!, 'run', {
          github,
          matrix: { task: 'nightly_a' },
          vars: { TASKGATE_URL: api.url, TASKGATE_RETRY_DELAY: '0', TASKGATE_WAKE_TIMEOUT: '20' },
          secrets: { CRON_SECRET_KEY: 'not-the-real-secret' },
        });
        const posts = api.seen.filter((r) => r.method === 'POST');
        const polls = api.seen.filter((r) => r.method === 'GET' && r.path === '/cron/runs/r1');
        return { job, posts, polls };
      } finally {
        await api.close();
      }
    }

    for (const status of TRANSIENT_STATUSES) {
      it(`retries a POST answered ${status} with the same Idempotency-Key, then passes`, async () => {
        const { job, posts } = await runAgainst(status);
        expect(job.ok, job.log).to.equal(true);
        expect(posts).to.have.length(2);
        expect(posts[1]!.headers['idempotency-key']).to.equal(posts[0]!.headers['idempotency-key']);
      });

      it(`keeps following a run whose record answered ${status}`, async () => {
        const { job, posts, polls } = await runAgainst(status, { poll: true });
        expect(job.ok, job.log).to.equal(true);
        expect(posts).to.have.length(1);
        expect(polls).to.have.length(2);
      });
    }

    for (const status of [400, 500]) {
      it(`fails at once, without retrying, on a POST answered ${status}`, async () => {
        const { job, posts } = await runAgainst(status);
        expect(job.ok).to.equal(false);
        expect(posts).to.have.length(1);
        expect(job.log).to.include(`POST /cron/nightly_a answered ${status} X: not now`);
      });
    }
  });
});
