import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { loadConfig } from '../src/config.js';
import { freePort, startEmbeddedDatabase } from '../src/db/embedded.js';
import { initORM, migrate } from '../src/db/orm.js';
import { createExecTable, executions, startReplica } from './support/coordination.js';
import { requirePgBouncer, startPgBouncer } from './support/pgbouncer.js';

/** What a pooler makes of a database restart, against the default lease. */
describe('a database restart behind PgBouncer', function () {
  this.timeout(180_000);
  const open: { close(): Promise<void> }[] = [];
  before(function () {
    requirePgBouncer(this, 'the database restart behind PgBouncer');
  });
  after(async () => {
    for (const thing of open.splice(0).reverse()) await thing.close().catch(() => undefined);
  });

  it('costs no run with the default lease: the database away 30 s, and PgBouncer’s server_login_retry (15 s) on top', async () => {
    expect(loadConfig({}).runLeaseMs, 'the default RUN_LEASE_MS').to.equal(60_000);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-pooler-outage-'));
    open.push({ close: () => rm(dir, { recursive: true, force: true }) });
    const port = await freePort();
    const start = () =>
      startEmbeddedDatabase({ dataDir: path.join(dir, 'pg'), persistent: true, port, fast: true });
    let server = await start();
    open.push({ close: () => server.stop() });
    await server.createDatabase('outage');
    const url = server.urlFor('outage');
    const orm = await initORM(url);
    await migrate(orm);
    await orm.close(true);
    await createExecTable(url);
    // PgBouncer as Debian ships it: server_login_retry is left at its default, 15 s.
    const bouncer = await startPgBouncer({ targetUrl: url, poolMode: 'transaction' });
    open.push({ close: () => bouncer.stop() });
    const replica = await startReplica(bouncer.url);
    open.push(replica);

    // Long enough to still be running once the database is back and PgBouncer logs in again.
    const { run } = await replica.runner.start({ task: 'exclusive', params: { ms: 60_000 }, trigger: 'cli' });
    await delay(2_000);
    await server.stop();
    await delay(30_000);
    server = await start();
    const ended = await replica.runner.wait(run.id);
    expect(ended.status, ended.error ?? '').to.equal('succeeded');
    expect(ended.result).to.deep.equal({ slept: 60_000, aborted: false });
    const [execution] = await executions(url);
    expect(execution?.endedAt, 'the task wrote its end').to.be.an.instanceOf(Date);
  });
});
