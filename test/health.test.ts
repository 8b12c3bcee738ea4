import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { startEmbeddedDatabase } from '../src/db/embedded.js';
import type { Db } from '../src/db/sql.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { ROOT } from './support/cli.js';
import { createTestDatabase, type TestDatabase, testDb } from './support/database.js';
import { adminQuery } from './support/global.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';

const logger = createLogger({ level: 'silent', pretty: false });

describe('health endpoints', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db.drop());

  it("GET /healthz answers 200 with taskgate's version while the process is up", async () => {
    const res = await request(createApp({ db: db.sql, logger }).callback()).get('/healthz');
    expect(res.status).to.equal(200);
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
    expect(res.body).to.deep.equal({ status: 'ok', version });
  });

  it('GET /readyz answers 200 when the database answers', async () => {
    const res = await request(createApp({ db: db.sql, logger }).callback()).get('/readyz');
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ status: 'ok' });
  });

  it('GET /readyz answers 503 with a JSON reason once the database server is stopped', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-readyz-'));
    const server = await startEmbeddedDatabase({
      dataDir: path.join(dir, 'pg'),
      persistent: false,
      fast: true,
    });
    const sql = testDb(server.urlFor('postgres'));
    try {
      const app = createApp({ db: sql, logger }).callback();
      expect((await request(app).get('/readyz')).status).to.equal(200);
      await server.stop();
      const started = Date.now();
      const res = await request(app).get('/readyz');
      expect(res.status).to.equal(503);
      expect(res.body).to.include({ status: 'error', code: 'DATABASE_UNAVAILABLE' });
      expect(res.body.message).to.be.a('string').and.not.empty;
      expect(Date.now() - started).to.be.below(5_000);
      expect((await request(app).get('/healthz')).status).to.equal(200);
    } finally {
      await sql.close();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a database that answers but cannot take the work', () => {
  let db: TestDatabase;
  const apps: TestApp[] = [];
  const handles: Db[] = [];
  const role = `taskgate_role_${process.pid}`;

  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    for (const app of apps) await app.close();
    for (const handle of handles) await handle.close();
    await db.drop();
    await adminQuery(`drop role if exists ${role}`);
  });

  /** The real app on its own pool (so that it sees the settings its new connections get). */
  async function appOn(url: string): Promise<TestApp> {
    const handle = testDb(url);
    handles.push(handle);
    const app = await buildApp(handle);
    apps.push(app);
    return app;
  }

  async function expectUnavailable(app: TestApp) {
    const ready = await request(app.callback).get('/readyz');
    expect(ready.status, 'readyz').to.equal(503);
    expect(ready.body).to.include({ status: 'error', code: 'DATABASE_UNAVAILABLE' });
    expect(ready.headers['retry-after']).to.match(/^\d+$/);
    const trigger = await request(app.callback).post('/cron/noop').set('X-Cron-Secret', SECRET);
    expect(trigger.status, JSON.stringify(trigger.body)).to.equal(503);
    expect(trigger.body).to.include({ status: 'error', code: 'DATABASE_UNAVAILABLE' });
    expect(trigger.headers['retry-after']).to.match(/^\d+$/);
  }

  it('is not ready, and answers triggers 503 DATABASE_UNAVAILABLE with Retry-After, while the database is read-only', async () => {
    await adminQuery(`alter database ${db.name} set default_transaction_read_only = on`);
    try {
      await expectUnavailable(await appOn(db.url));
    } finally {
      await adminQuery(`alter database ${db.name} reset default_transaction_read_only`);
    }
    const after = await appOn(db.url);
    expect((await request(after.callback).get('/readyz')).status).to.equal(200);
    expect((await request(after.callback).post('/cron/noop').set('X-Cron-Secret', SECRET)).status).to.equal(
      200,
    );
  });

  it('is not ready, and answers triggers 503 DATABASE_UNAVAILABLE with Retry-After, once its role may not log in (NOLOGIN)', async () => {
    const password = randomBytes(16).toString('hex');
    await adminQuery(`create role ${role} login password '${password}'`);
    await db.sql.query(`grant usage on schema taskgate to ${role};
      grant select, insert, update, delete on all tables in schema taskgate to ${role};
      grant usage on all sequences in schema taskgate to ${role}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = password;
    const app = await appOn(url.toString());
    const first = await request(app.callback).post('/cron/noop').set('X-Cron-Secret', SECRET);
    expect(first.status, JSON.stringify(first.body)).to.equal(200);
    await adminQuery(`alter role ${role} nologin`);
    // Its connections end (a restart, an idle time-out): the next ones are refused.
    await adminQuery('select pg_terminate_backend(pid) from pg_stat_activity where usename = $1', [role]);
    await expectUnavailable(app);
    await adminQuery(`alter role ${role} login`);
    expect((await request(app.callback).get('/readyz')).status).to.equal(200);
    expect((await request(app.callback).post('/cron/noop').set('X-Cron-Secret', SECRET)).status).to.equal(
      200,
    );
    await db.sql.query(`drop owned by ${role}`);
  });
});
