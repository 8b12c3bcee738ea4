import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { startEmbeddedDatabase } from '../src/db/embedded.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { ROOT } from './support/cli.js';
import { createTestDatabase, type TestDatabase, testDb } from './support/database.js';

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
