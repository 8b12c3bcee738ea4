import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadConfig } from '../src/config.js';
import { pauseTask } from '../src/core/pauses.js';
import { loadRegistry, type Registry } from '../src/core/registry.js';
import { Runner } from '../src/core/runner.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { generateWorkflow } from '../src/scheduling/workflow.js';
import {
  type Contexts,
  githubContext,
  parseWorkflowText,
  runWorkflow,
  type Workflow,
} from './support/actions.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase, testDb } from './support/database.js';
import { TEST_SECRET as SECRET } from './support/secrets.js';
import {
  type ProxyAction,
  proxyServer,
  type SeenRequest,
  type StubServer,
  stubServer,
} from './support/stub-server.js';
import { startTcpProxy } from './support/tcp-proxy.js';

const E2E_TASKS = fileURLToPath(new URL('./fixtures/tasks-e2e/', import.meta.url));

/**
 * The generated workflow's jobs, run as GitHub would run them (expressions evaluated by GitHub's
 * own evaluator, scripts under bash with curl and jq), against a real taskgate app on a local port
 * behind a proxy that plays the sleeping host.
 */
describe('the scheduler workflow against a running taskgate', () => {
  let db: TestDatabase;
  let registry: Registry;
  let runner: Runner;
  let server: Server;
  let upstream: string;
  let workflow: Workflow;
  let proxy: StubServer | null = null;

  before(async () => {
    db = await createTestDatabase();
    registry = await loadRegistry(E2E_TASKS);
    const config = loadConfig({ NODE_ENV: 'test', CRON_SECRET_KEY: SECRET, SYNC_WAIT_MS: '500' });
    const logger = createLogger({ level: 'silent', pretty: false });
    runner = new Runner({ db: db.sql, registry, logger, config, pollMs: 20 });
    const app = createApp({ db: db.sql, logger, config, registry, runner });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    workflow = parseWorkflowText(generateWorkflow(registry.list()));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await runner.close(0);
    await db.drop();
  });
  beforeEach(async () => db.orm.em.getConnection().execute('delete from taskgate.task_run'));
  afterEach(async () => {
    await proxy?.close();
    proxy = null;
  });

  async function runsOf(task: string) {
    return db.orm.em.getConnection().execute<
      {
        status: string;
        dry_run: boolean;
        params: unknown;
        idempotency_key: string;
        trigger: string;
        duplicate_fires: number;
      }[]
    >(
      'select status, dry_run, params, idempotency_key, trigger, duplicate_fires from taskgate.task_run where task = ? order by started_at',
      [task],
    );
  }

  /** A proxy in front of taskgate; `decide` says, request by request, what the sleeping host does. */
  async function host(decide: (request: SeenRequest, seen: SeenRequest[]) => ProxyAction = () => 'forward') {
    proxy = await proxyServer(upstream, decide);
    return proxy.url;
  }

  function contexts(github: Record<string, unknown>, url: string, extra: Partial<Contexts> = {}): Contexts {
    return {
      github,
      vars: { TASKGATE_URL: url, TASKGATE_RETRY_DELAY: '0.2', TASKGATE_WAKE_TIMEOUT: '20' },
      secrets: { CRON_SECRET_KEY: SECRET },
      inputs: {},
      ...extra,
    };
  }

  /** The plan job, then one run job per matrix entry, as a scheduled or dispatched run would go. */
  async function workflowRun(github: Record<string, unknown>, url: string, extra: Partial<Contexts> = {}) {
    return runWorkflow(workflow, contexts(github, url, extra), { timeoutMs: 30_000 });
  }

  it('runs every task of the cron that fired, passes the good one and fails the failing one with its JSON', async () => {
    const url = await host();
    const github = githubContext({ name: 'schedule', schedule: '0 0 * * *' });
    const { matrix, jobs } = await workflowRun(github, url);
    expect(matrix).to.deep.equal(['broken', 'counted']);

    expect(jobs.counted!.ok, jobs.counted!.log).to.equal(true);
    expect(jobs.counted!.log).to.match(/"status": "success"/);
    expect(jobs.counted!.steps[1]!.summary).to.match(/counted succeeded in \d+ ms/);
    expect(await runsOf('counted')).to.have.length(1);
    // A scheduled run is its slot's, whoever else fires it: the workflow says it is GitHub's.
    expect((await runsOf('counted'))[0]!.idempotency_key).to.match(/^slot:\d{4}-\d\d-\d\dT00:00:00\.000Z$/);
    expect((await runsOf('counted'))[0]!.trigger).to.equal('github');

    expect(jobs.broken!.ok).to.equal(false);
    expect(jobs.broken!.log).to.match(/"code": "TASK_FAILED"/);
    expect(jobs.broken!.log).to.include('::error::POST /cron/broken answered 500 TASK_FAILED');
    expect(await runsOf('broken')).to.have.length(1);
    expect(jobs.counted!.log + jobs.broken!.log).to.not.include(SECRET);
  });

  it('waits out a database that is down for the first seconds of the wake budget and runs each task exactly once', async () => {
    // A second taskgate on the same database, reached through a TCP path that is cut at first.
    const path = await startTcpProxy(db.url);
    const config = loadConfig({ NODE_ENV: 'test', CRON_SECRET_KEY: SECRET, SYNC_WAIT_MS: '500' });
    const logger = createLogger({ level: 'silent', pretty: false });
    const sql = testDb(path.url, { queryTimeoutMs: 1_000, connectTimeoutMs: 1_000 });
    const cutRunner = new Runner({ db: sql, registry, logger, config, pollMs: 20 });
    const cutServer = await new Promise<Server>((resolve) => {
      const s = createApp({ db: sql, logger, config, registry, runner: cutRunner }).listen(
        0,
        '127.0.0.1',
        () => resolve(s),
      );
    });
    try {
      path.cut();
      setTimeout(() => path.restore(), 3_000);
      const url = `http://127.0.0.1:${(cutServer.address() as AddressInfo).port}`;
      const github = githubContext({ name: 'schedule', schedule: '0 0 * * *' });
      const { jobs } = await workflowRun(github, url);
      expect(jobs.counted!.ok, jobs.counted!.log).to.equal(true);
      // The first job to wake the host waited out the outage.
      expect(jobs.broken!.log + jobs.counted!.log).to.match(/GET \/readyz answered 503/);
      expect(await runsOf('counted')).to.have.length(1);
      expect(jobs.broken!.ok).to.equal(false);
      expect(await runsOf('broken')).to.have.length(1);
    } finally {
      cutServer.closeAllConnections();
      await new Promise((resolve) => cutServer.close(resolve));
      await cutRunner.close(0);
      await sql.close();
      await path.close();
    }
  });

  it('wakes a host that answers 503 for its first seconds and runs the task exactly once', async () => {
    const asleepUntil = Date.now() + 1_500;
    const url = await host(() =>
      Date.now() < asleepUntil ? { status: 503, body: { message: 'waking' } } : 'forward',
    );
    const { jobs } = await workflowRun(githubContext({ name: 'schedule', schedule: '15 * * * *' }), url);
    expect(jobs.hourly!.ok, jobs.hourly!.log).to.equal(true);
    expect(jobs.hourly!.log).to.match(/GET \/readyz answered 503: the host or its database may be waking up/);
    expect(await runsOf('hourly')).to.have.length(1);
    expect(proxy!.seen.filter((r) => r.method === 'POST')).to.have.length(1);
  });

  it('runs the task once when the answer to its POST is lost and curl has to ask again', async () => {
    const url = await host((request, seen) => {
      const posts = seen.filter((r) => r.method === 'POST').length;
      if (request.method === 'POST' && posts === 1) return 'forward-then-502';
      if (request.method === 'POST' && posts === 2) return { status: 503 };
      return 'forward';
    });
    const { jobs } = await workflowRun(githubContext({ name: 'schedule', schedule: '15 * * * *' }), url);
    expect(jobs.hourly!.ok, jobs.hourly!.log).to.equal(true);
    expect(jobs.hourly!.log).to.include('POST /cron/hourly answered 502: retrying');
    const posts = proxy!.seen.filter((r) => r.method === 'POST');
    expect(posts).to.have.length(3);
    expect(new Set(posts.map((r) => r.headers['idempotency-key'])).size).to.equal(1);
    expect(await runsOf('hourly')).to.have.length(1);
  });

  it('runs a slot once however often its schedule fires it (the same attempt twice, a re-run), and a dispatch anew', async () => {
    const url = await host();
    const first = githubContext({ name: 'schedule', schedule: '15 * * * *' }, { id: '777', attempt: '1' });
    expect((await workflowRun(first, url)).jobs.hourly!.ok).to.equal(true);
    expect((await workflowRun(first, url)).jobs.hourly!.ok).to.equal(true);
    const rerun = githubContext({ name: 'schedule', schedule: '15 * * * *' }, { id: '777', attempt: '2' });
    const again = await workflowRun(rerun, url);
    expect(again.jobs.hourly!.ok, "a duplicate fire is answered with the slot's run").to.equal(true);
    const runs = await runsOf('hourly');
    expect(runs).to.have.length(1);
    expect(runs[0]!.idempotency_key).to.match(/^slot:/);
    expect(runs[0]!.duplicate_fires).to.equal(2);
    const inputs = { task: 'hourly', dry_run: false, params: '' };
    const dispatch = githubContext({ name: 'workflow_dispatch', inputs }, { id: '778' });
    expect((await workflowRun(dispatch, url, { inputs })).jobs.hourly!.ok).to.equal(true);
    expect((await runsOf('hourly')).map((r) => r.idempotency_key)).to.deep.equal([
      runs[0]!.idempotency_key,
      '778-1-hourly',
    ]);
  });

  it('follows a run that outlasts the synchronous wait (202) to its end', async () => {
    const url = await host();
    const inputs = { task: 'counted', dry_run: false, params: '{"ms": 1200}' };
    const github = githubContext({ name: 'workflow_dispatch', inputs });
    const { matrix, jobs } = await workflowRun(github, url, { inputs });
    expect(matrix).to.deep.equal(['counted']);
    expect(jobs.counted!.ok, jobs.counted!.log).to.equal(true);
    expect(jobs.counted!.log).to.include('taskgate accepted the run; following /cron/runs/');
    expect(jobs.counted!.log).to.match(/"status": "succeeded"/);
    const runs = await runsOf('counted');
    expect(runs).to.have.length(1);
    expect(runs[0]).to.include({ status: 'succeeded' });
    expect(runs[0]!.params).to.deep.equal({ ms: 1200 });
  });

  it('passes the dispatch dry-run switch through to the run', async () => {
    const url = await host();
    const inputs = { task: 'hourly', dry_run: true, params: '' };
    const { jobs } = await workflowRun(githubContext({ name: 'workflow_dispatch', inputs }), url, { inputs });
    expect(jobs.hourly!.ok, jobs.hourly!.log).to.equal(true);
    expect((await runsOf('hourly'))[0]).to.include({ dry_run: true });
  });

  it('fails with a clear message, running nothing, when the secret is wrong or the URL is unset', async () => {
    const url = await host();
    const github = githubContext({ name: 'schedule', schedule: '15 * * * *' });
    const wrong = await workflowRun(github, url, {
      secrets: { CRON_SECRET_KEY: 'not-the-secret-0000000000000000000' },
    });
    expect(wrong.jobs.hourly!.ok).to.equal(false);
    expect(wrong.jobs.hourly!.log).to.include(
      '::error::POST /cron/hourly answered 401 UNAUTHORIZED: missing or invalid credentials (the secret CRON_SECRET_KEY is not one taskgate accepts, or the variable TASKGATE_URL leads to another taskgate)',
    );
    const unset = await workflowRun(github, url, { vars: {} });
    expect(unset.jobs.hourly!.ok).to.equal(false);
    expect(unset.jobs.hourly!.log).to.include('::error::TASKGATE_URL is not set');
    expect(await runsOf('hourly')).to.have.length(0);
  });

  it('fails the wake step at once, naming TASKGATE_URL and CRON_SECRET_KEY, when /readyz answers 401 or 404 (a URL with a path)', async () => {
    const url = await host();
    const github = githubContext({ name: 'schedule', schedule: '15 * * * *' });
    for (const [path, code] of [
      ['/cron', 401],
      ['/nowhere', 404],
    ] as const) {
      const before = proxy!.seen.length;
      const { jobs } = await workflowRun(github, `${url}${path}`);
      expect(jobs.hourly!.ok, path).to.equal(false);
      expect(jobs.hourly!.log).to.include(
        `::error::GET ${url}${path}/readyz answered ${code}, which taskgate's /readyz never does: set the variable TASKGATE_URL to taskgate's base URL`,
      );
      expect(jobs.hourly!.log).to.include('the secret CRON_SECRET_KEY');
      // Asked once: not retried for the wake time-out, not until the limiter says 429.
      expect(proxy!.seen.slice(before).filter((r) => r.path === `${path}/readyz`)).to.have.length(1);
      expect(jobs.hourly!.log).not.to.include('retrying');
    }
    expect(await runsOf('hourly')).to.have.length(0);
  });

  it('reports a paused task as a notice and passes, running nothing; taskgate trigger exits 75 with the reason', async () => {
    const url = await host();
    await pauseTask(db.sql, { task: 'hourly', reason: 'maintenance window', by: 'http', until: null });
    try {
      const { jobs } = await workflowRun(githubContext({ name: 'schedule', schedule: '15 * * * *' }), url);
      expect(jobs.hourly!.ok, jobs.hourly!.log).to.equal(true);
      expect(jobs.hourly!.log).to.include(
        '::notice::hourly is paused until resumed (maintenance window): not run',
      );
      expect(jobs.hourly!.log).to.not.include('::error::');
      expect(jobs.hourly!.steps[1]!.summary).to.include('hourly is paused until resumed: not run');
      const cli = await runCli(['trigger', 'hourly', '--url', url], { CRON_SECRET_KEY: SECRET });
      expect(cli.code).to.equal(75);
      expect(cli.stderr).to.include('hourly is paused until resumed: maintenance window');
      expect(await runsOf('hourly')).to.have.length(0);
    } finally {
      await db.sql.query('delete from taskgate.task_pause');
    }
    const { jobs } = await workflowRun(githubContext({ name: 'schedule', schedule: '15 * * * *' }), url);
    expect(jobs.hourly!.ok, jobs.hourly!.log).to.equal(true);
    expect(await runsOf('hourly')).to.have.length(1);
  });

  it('does not follow a Location on another origin, so the secret goes nowhere else', async () => {
    const elsewhere = await stubServer(() => ({ status: 200, body: { run: { status: 'succeeded' } } }));
    try {
      const url = await host((request) =>
        request.method === 'POST'
          ? {
              status: 202,
              headers: { Location: `${elsewhere.url}/cron/runs/00000000-0000-4000-8000-000000000000` },
              body: { status: 'accepted', runId: '00000000-0000-4000-8000-000000000000' },
            }
          : 'forward',
      );
      const inputs = { task: 'hourly', dry_run: false, params: '{}' };
      const { jobs } = await workflowRun(githubContext({ name: 'workflow_dispatch', inputs }), url, {
        inputs,
      });
      expect(jobs.hourly!.ok).to.equal(false);
      expect(jobs.hourly!.log).to.include('::error::taskgate answered with a Location on another origin');
      expect(elsewhere.seen).to.deep.equal([]);
    } finally {
      await elsewhere.close();
    }
  });

  it('escapes dispatch params and taskgate answers before they reach a workflow command', async () => {
    const url = await host();
    const inputs = {
      task: 'hourly',
      dry_run: false,
      params: 'nope\n::warning::injected 100%\r\n::add-mask::x',
    };
    const { jobs } = await workflowRun(githubContext({ name: 'workflow_dispatch', inputs }), url, { inputs });
    expect(jobs.hourly!.ok).to.equal(false);
    const lines = jobs.hourly!.log.split(/\r?\n|\r/);
    expect(lines.filter((line) => /^::(warning|add-mask)::/.test(line))).to.deep.equal([]);
    expect(jobs.hourly!.log).to.include(
      '::error::params must be a JSON object, not: nope%0A::warning::injected 100%25%0D%0A::add-mask::x',
    );
    expect(await runsOf('hourly')).to.have.length(0);
  });

  it('taskgate trigger wakes the same sleeping host and runs the task exactly once', async () => {
    // Counted, not timed: the CLI's own start-up would outlast a timed nap.
    const url = await host((_, seen) => (seen.length <= 3 ? { status: 503 } : 'forward'));
    const result = await runCli(['trigger', 'counted', '--url', url, '--retry-delay', '0.2', '--json'], {
      CRON_SECRET_KEY: SECRET,
    });
    expect(result.code, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.include({ status: 'success', task: 'counted' });
    expect(result.stderr).to.include('GET /readyz: HTTP 503, retrying');
    expect(await runsOf('counted')).to.have.length(1);
  });

  it('taskgate trigger --sign is accepted by the server and exits 1 when the task fails', async () => {
    const url = await host();
    const ok = await runCli(['trigger', 'hourly', '--url', url, '--sign'], { CRON_SECRET_KEY: SECRET });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/^hourly succeeded in \d+ ms — run [0-9a-f-]{36}/);
    const failed = await runCli(['trigger', 'broken', '--url', url, '--sign'], { CRON_SECRET_KEY: SECRET });
    expect(failed.code).to.equal(1);
    expect(failed.stderr).to.include('broken failed: broken on purpose');
  });
});
