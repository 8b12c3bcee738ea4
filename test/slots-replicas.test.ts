import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadRegistry } from '../src/core/registry.js';
import { databaseNow } from '../src/core/slots.js';
import { generateWorkflow } from '../src/scheduling/workflow.js';
import { type Contexts, githubContext, parseWorkflowText, runWorkflow } from './support/actions.js';
import { type Served, startServe } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { QSTASH_CURRENT_KEY, QSTASH_NEXT_KEY, qstashToken } from './support/qstash.js';
import { TEST_SECRET as SECRET } from './support/secrets.js';

/**
 * Real `taskgate serve` processes with their own clocks on, and the outside schedulers around
 * them (the generated GitHub workflow's jobs, QStash-signed deliveries, Vercel Cron's GETs), all
 * firing every slot of a per-minute task: each slot must run once. Then every replica stopped
 * across two slots: one catch-up run of the latest when they start again. Minutes of wall
 * clock, mostly waiting: the slots are real minutes on the database clock.
 */
const SLOT_TASKS = fileURLToPath(new URL('./fixtures/tasks-slots/', import.meta.url));
const PUBLIC_URL = 'https://taskgate.example.com';

describe('every slot runs once, whoever fires it', function () {
  this.timeout(600_000);
  let db: TestDatabase;
  let replicas: Served[] = [];

  const env = () => ({
    DATABASE_URL: db.url,
    CRON_SECRET_KEY: SECRET,
    TASKS_DIR: SLOT_TASKS,
    ALLOW_GET_TRIGGERS: 'true',
    QSTASH_CURRENT_SIGNING_KEY: QSTASH_CURRENT_KEY,
    QSTASH_NEXT_SIGNING_KEY: QSTASH_NEXT_KEY,
    PUBLIC_URL,
    RUN_LEASE_MS: '5000',
  });
  const startReplicas = async () => {
    replicas = await Promise.all([startServe(env()), startServe(env()), startServe(env())]);
  };
  const stopReplicas = async () => {
    await Promise.all(
      replicas.map(async (replica) => {
        replica.child.kill('SIGTERM');
        await replica.exited;
      }),
    );
    replicas = [];
  };
  /** Resolves once the database clock reads `ms` past the start of a minute (negative: before). */
  const untilMinute = async (offsetMs: number, after = 0) => {
    for (;;) {
      const now = (await databaseNow(db.sql)).getTime();
      const minute = Math.ceil((now - offsetMs) / 60_000) * 60_000;
      const wait = minute + offsetMs - now;
      if (now >= after && wait <= 60_000) {
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
        return new Date(minute);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  const runs = async () =>
    (
      await db.sql.query<{
        id: string;
        slot: Date;
        trigger: string;
        status: string;
        duplicate_fires: number;
      }>(
        `select id, slot, trigger, status, duplicate_fires from taskgate.task_run where task = 'minutely' order by slot`,
      )
    ).rows;

  before(async () => {
    db = await createTestDatabase();
    await db.sql.query('create table public.slot_execution (run_id uuid not null, at timestamptz not null)');
  });
  after(async () => {
    for (const replica of replicas) replica.child.kill('SIGKILL');
    await db.drop();
  });

  it('three replicas with their clocks, the GitHub workflow, QStash and Vercel GETs: one run per slot', async () => {
    await startReplicas();
    const workflow = parseWorkflowText(generateWorkflow((await loadRegistry(SLOT_TASKS)).list()));
    const fired: Date[] = [];
    const errors: string[] = [];
    for (let i = 0; i < 3; i++) {
      // A Vercel GET two seconds early, to the first replica.
      const slot = await untilMinute(-2_000);
      fired.push(slot);
      const [first, second, third] = replicas as [Served, Served, Served];
      const vercel = fetch(`${first.base}/cron/minutely`, {
        headers: { Authorization: `Bearer ${SECRET}`, 'User-Agent': 'vercel-cron/1.0' },
      });
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      // QStash's schedule, a second late, to the second replica.
      const url = `${PUBLIC_URL}/cron/minutely`;
      const qstash = fetch(`${second.base}/cron/minutely`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'Upstash-Signature': qstashToken(QSTASH_CURRENT_KEY, url, '{}'),
          'Upstash-Schedule-Id': 'scd_minutely',
          'Upstash-Message-Id': `msg_${i}`,
        },
        body: '{}',
      });
      // GitHub's scheduled workflow, through the third replica: the plan job, then the run job.
      const base: Contexts = {
        github: githubContext({ name: 'schedule', schedule: '* * * * *' }, { id: `100${i}` }),
        vars: { TASKGATE_URL: third.base, TASKGATE_RETRY_DELAY: '0.5', TASKGATE_WAKE_TIMEOUT: '30' },
        secrets: { CRON_SECRET_KEY: SECRET },
        inputs: {},
      };
      const { matrix, jobs } = await runWorkflow(workflow, base, { timeoutMs: 60_000 });
      expect(matrix).to.deep.equal(['minutely']);
      const job = jobs.minutely!;
      if (!job.ok) errors.push(job.log);
      for (const answer of await Promise.all([vercel, qstash])) {
        if (answer.status !== 200) errors.push(`${answer.status} ${await answer.text()}`);
      }
    }
    expect(errors).to.deep.equal([]);
    // Let the last slot's clocks fire too, then look.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const recorded = await runs();
    for (const slot of fired) {
      const ofSlot = recorded.filter((run) => run.slot.getTime() === slot.getTime());
      expect(ofSlot, `runs of slot ${slot.toISOString()}: ${JSON.stringify(recorded)}`).to.have.length(1);
      expect(ofSlot[0]!.status).to.equal('succeeded');
      // Vercel's GET was early and first; GitHub, QStash and three clocks were answered with its run.
      expect(ofSlot[0]!.duplicate_fires, slot.toISOString()).to.be.at.least(2);
    }
    // Every run executed the task once, and no slot ran twice, the clocks' own slots included.
    const executions = await db.sql.query<{ run_id: string; n: number }>(
      'select run_id, count(*)::int as n from public.slot_execution group by run_id',
    );
    expect(executions.rows.every((row) => row.n === 1)).to.equal(true);
    const slots = recorded.map((run) => run.slot.toISOString());
    expect(new Set(slots).size, 'one run a slot').to.equal(slots.length);
    // The slot before the first round was caught up when the replicas started.
    const triggers = [...new Set(recorded.map((run) => run.trigger))];
    expect(
      triggers.filter((t) => !['vercel', 'qstash', 'github', 'clock', 'catch-up'].includes(t)),
    ).to.deep.equal([]);
  });

  it('all replicas stopped across two slots: when they start, the latest missed slot runs once, by catch-up', async () => {
    await stopReplicas();
    // Stopped after a slot ran (the clocks' last one): the next two minutes pass with no taskgate.
    const stopped = await databaseNow(db.sql);
    const lastRun = Math.max(...(await runs()).map((run) => run.slot.getTime()));
    const missed = [lastRun + 60_000, lastRun + 120_000];
    // Start again half a minute after the second missed slot, well before the next one.
    await untilMinute(30_000, missed[1]!);
    expect((await databaseNow(db.sql)).getTime() - stopped.getTime()).to.be.greaterThan(60_000);
    await startReplicas();
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const recorded = await runs();
    const of = (slot: number) => recorded.filter((run) => run.slot.getTime() === slot);
    expect(of(missed[0]!), 'the older missed slot stays missed').to.deep.equal([]);
    expect(
      of(missed[1]!).map((run) => run.trigger),
      JSON.stringify(recorded),
    ).to.deep.equal(['catch-up']);
    await stopReplicas();
  });
});
