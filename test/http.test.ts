import { setTimeout as delay } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import request from 'supertest';
import { UUID } from '../src/formats.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';

describe('HTTP: POST /cron/:task and the run routes', () => {
  let db: TestDatabase;
  let app: TestApp;
  const post = (path: string) => request(app.callback).post(path).set('X-Cron-Secret', SECRET);
  const get = (path: string) => request(app.callback).get(path).set('X-Cron-Secret', SECRET);

  /** Polls GET /cron/runs/:id until the run is no longer running. */
  async function settled(runId: string) {
    for (let i = 0; i < 200; i++) {
      const res = await get(`/cron/runs/${runId}`);
      if (res.body.run.status !== 'running') return res.body.run;
      await delay(25);
    }
    throw new Error(`run ${runId} still running`);
  }

  /** How many runs match a `where` clause. */
  async function count(where: string, params: unknown[]): Promise<number> {
    const rows = await db.orm.em
      .getConnection()
      .execute<{ n: number }[]>(`select count(*)::int as n from taskgate.task_run ${where}`, params);
    return rows[0]!.n;
  }

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql);
  });
  after(async () => {
    await app.close();
    await db.drop();
  });

  it('answers 200 with the run id, result and duration when the task succeeds', async () => {
    const res = await post('/cron/noop');
    expect(res.status).to.equal(200);
    expect(res.body).to.include({
      status: 'success',
      task: 'noop',
      message: 'noop succeeded',
      dryRun: false,
    });
    expect(res.body.runId).to.match(UUID);
    expect(res.body.result).to.deep.equal({ ok: true });
    expect(res.body.durationMs).to.be.a('number');
    expect(res.headers['x-request-id']).to.match(UUID);
    const [row] = await db.orm.em
      .getConnection()
      .execute('select status, trigger from taskgate.task_run where id = ?', [res.body.runId]);
    expect(row).to.deep.equal({ status: 'succeeded', trigger: 'http' });
  });

  it('passes the JSON body to the task as params, and dryRun as the dry-run flag', async () => {
    const res = await post('/cron/echo').send({ count: 3, label: 'hi', dryRun: true });
    expect(res.status).to.equal(200);
    expect(res.body.result).to.deep.equal({ count: 3, label: 'hi', dryRun: true });
    expect(res.body).to.include({ dryRun: true, message: 'echo succeeded (dry run)' });
  });

  it('accepts an empty POST without Content-Type, as the seed curl line sends it', async () => {
    const res = await post('/cron/noop').set('Content-Length', '0');
    expect(res.status).to.equal(200);
  });

  it('answers 500 TASK_FAILED with the task, run id and reason, and no stack trace, when the task throws', async () => {
    const res = await post('/cron/fail');
    expect(res.status).to.equal(500);
    expect(res.body).to.include({ status: 'error', code: 'TASK_FAILED', task: 'fail', runStatus: 'failed' });
    expect(res.body.runId).to.match(UUID);
    expect(res.body.message).to.contain('the fixture task failed on purpose');
    expect(res.text).not.to.match(/\bat .*\.ts:\d+/);
    expect(Object.keys(res.body).sort()).to.deep.equal([
      'code',
      'durationMs',
      'message',
      'runId',
      'runStatus',
      'status',
      'task',
    ]);
  });

  it('answers 404 TASK_NOT_FOUND for an unknown task when the secret is right', async () => {
    const res = await post('/cron/no_such_task');
    expect(res.status).to.equal(404);
    expect(res.body).to.include({ status: 'error', code: 'TASK_NOT_FOUND' });
    expect(res.body.tasks).to.include('noop');
  });

  it('answers 400 INVALID_PARAMS naming each bad field and the valid keys', async () => {
    const res = await post('/cron/echo').send({ count: 'many', colour: 'red' });
    expect(res.status).to.equal(400);
    expect(res.body.code).to.equal('INVALID_PARAMS');
    expect(res.body.errors.map((e: { field: string }) => e.field)).to.have.members(['count', 'colour']);
    expect(res.body.validKeys).to.have.members(['count', 'label']);
  });

  it('answers 400 INVALID_PARAMS when the body is not an object or dryRun is not a boolean', async () => {
    const array = await post('/cron/echo').send([1, 2]);
    expect(array.status).to.equal(400);
    expect(array.body.code).to.equal('INVALID_PARAMS');
    const dryRun = await post('/cron/echo').send({ dryRun: 'yes' });
    expect(dryRun.status).to.equal(400);
    expect(dryRun.body).to.include({ code: 'INVALID_PARAMS' });
    expect(dryRun.body.errors).to.deep.equal([{ field: 'dryRun', message: 'expected a boolean' }]);
  });

  it('answers 400 INVALID_JSON to a malformed JSON body', async () => {
    const res = await post('/cron/echo').set('Content-Type', 'application/json').send('{"count": 2,');
    expect(res.status).to.equal(400);
    expect(res.body).to.include({ status: 'error', code: 'INVALID_JSON' });
  });

  it('answers 413 PAYLOAD_TOO_LARGE to a body over 16 KiB', async () => {
    const res = await post('/cron/echo').send({ label: 'x'.repeat(17 * 1024) });
    expect(res.status).to.equal(413);
    expect(res.body).to.include({ code: 'PAYLOAD_TOO_LARGE', limitBytes: 16 * 1024 });
  });

  it('answers 415 UNSUPPORTED_MEDIA_TYPE to a body that is not JSON', async () => {
    const text = await post('/cron/noop').set('Content-Type', 'text/plain').send('count=2');
    expect(text.status).to.equal(415);
    expect(text.body.code).to.equal('UNSUPPORTED_MEDIA_TYPE');
    const form = await post('/cron/noop').type('form').send({ count: 2 });
    expect(form.status).to.equal(415);
  });

  it('answers 405 METHOD_NOT_ALLOWED with an Allow header to a wrong method', async () => {
    const res = await get('/cron/noop');
    expect(res.status).to.equal(405);
    expect(res.headers.allow).to.equal('POST');
    expect(res.body).to.include({ status: 'error', code: 'METHOD_NOT_ALLOWED' });
    const del = await request(app.callback).delete('/cron/runs/x').set('X-Cron-Secret', SECRET);
    expect(del.status).to.equal(405);
    expect(del.headers.allow).to.contain('GET');
  });

  it('answers 404 NOT_FOUND in JSON for a path that is no route', async () => {
    const res = await request(app.callback).get('/wp-admin');
    expect(res.status).to.equal(404);
    expect(res.body).to.include({ status: 'error', code: 'NOT_FOUND' });
  });

  it('answers 409 TASK_BUSY with the running run id while the task runs', async () => {
    const first = await post('/cron/sleep').set('Prefer', 'respond-async').send({ ms: 1_500 });
    expect(first.status).to.equal(202);
    const second = await post('/cron/sleep').send({ ms: 10 });
    expect(second.status).to.equal(409);
    expect(second.body).to.include({ code: 'TASK_BUSY', runId: first.body.runId });
    await settled(first.body.runId);
  });

  it('answers 202 with Location at once under Prefer: respond-async, and GET Location tells the end', async () => {
    const res = await post('/cron/sleep').set('Prefer', 'respond-async').send({ ms: 300 });
    expect(res.status).to.equal(202);
    expect(res.headers.location).to.equal(`/cron/runs/${res.body.runId}`);
    expect(res.headers['preference-applied']).to.equal('respond-async');
    expect(res.body).to.include({ status: 'accepted', task: 'sleep', location: res.headers.location });
    const running = await get(res.headers.location!);
    expect(running.status).to.equal(200);
    expect(running.body.run).to.include({ id: res.body.runId, status: 'running' });
    const run = await settled(res.body.runId);
    expect(run).to.include({ status: 'succeeded', task: 'sleep' });
    expect(run.result).to.deep.equal({ sleptMs: 300 });
  });

  it('answers 202 with Location when a synchronous run outlives SYNC_WAIT_MS, and the run goes on', async () => {
    const short = await buildApp(db.sql, { SYNC_WAIT_MS: '100' });
    try {
      const res = await request(short.callback)
        .post('/cron/sleep')
        .set('X-Cron-Secret', SECRET)
        .send({ ms: 1_500 });
      expect(res.status).to.equal(202);
      expect((await get(res.headers.location!)).body.run.status).to.equal('running');
      expect(res.headers.location).to.equal(`/cron/runs/${res.body.runId}`);
      expect(res.headers['preference-applied']).to.equal(undefined);
      expect((await settled(res.body.runId)).status).to.equal('succeeded');
    } finally {
      await short.close();
    }
  });

  it('honours Prefer: wait=<seconds> as a shorter wait than SYNC_WAIT_MS', async () => {
    const res = await post('/cron/sleep').set('Prefer', 'wait=0').send({ ms: 1_500 });
    expect(res.status).to.equal(202);
    expect((await get(res.headers.location!)).body.run.status).to.equal('running');
    expect(res.headers['preference-applied']).to.equal(undefined);
    expect((await settled(res.body.runId)).status).to.equal('succeeded');
  });

  it('gives a retry with the same Idempotency-Key the first run back instead of a second run', async () => {
    const key = `retry-${Date.now()}`;
    const first = await post('/cron/echo').set('Idempotency-Key', key).send({ count: 2 });
    const retry = await post('/cron/echo').set('Idempotency-Key', key).send({ count: 2 });
    expect(first.status).to.equal(200);
    expect(retry.status).to.equal(200);
    expect(retry.body.runId).to.equal(first.body.runId);
    expect(retry.headers['idempotent-replayed']).to.equal('true');
    expect(first.headers['idempotent-replayed']).to.equal(undefined);
    expect(await count('where idempotency_key = ?', [key])).to.equal(1);
  });

  it('gives a retry with the same Idempotency-Key the running run, not 409', async () => {
    const key = `running-${Date.now()}`;
    const first = await post('/cron/sleep')
      .set('Idempotency-Key', key)
      .set('Prefer', 'respond-async')
      .send({ ms: 400 });
    expect(first.status).to.equal(202);
    const retry = await post('/cron/sleep').set('Idempotency-Key', key).send({ ms: 400 });
    expect(retry.status).to.equal(200);
    expect(retry.body.runId).to.equal(first.body.runId);
    expect(retry.body.result).to.deep.equal({ sleptMs: 400 });
  });

  it('answers 400 BAD_REQUEST to an Idempotency-Key that is too long', async () => {
    const res = await post('/cron/noop').set('Idempotency-Key', 'k'.repeat(256));
    expect(res.status).to.equal(400);
    expect(res.body.code).to.equal('BAD_REQUEST');
  });

  it('answers 404 RUN_NOT_FOUND for a run id that does not exist or is malformed', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      const res = await get(`/cron/runs/${id}`);
      expect(res.status, id).to.equal(404);
      expect(res.body.code).to.equal('RUN_NOT_FOUND');
    }
  });

  it('answers 404 RUN_NOT_FOUND to a run id shaped like a UUID but not one, without asking PostgreSQL', async () => {
    const lines = app.logs.chunks.length;
    for (const id of ['-'.repeat(36), '0000000g-0000-4000-8000-000000000000', `${'a'.repeat(36)}`]) {
      const res = await get(`/cron/runs/${id}`);
      expect(res.status, id).to.equal(404);
      expect(res.body.code).to.equal('RUN_NOT_FOUND');
    }
    const logged = app.logs.chunks.slice(lines).join('');
    expect(logged).not.to.match(/"level":50|select|invalid input syntax/i);
  });

  it('answers 400 BAD_REQUEST to a body that does not decode as its Content-Encoding says', async () => {
    const lines = app.logs.chunks.length;
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const res = await post('/cron/echo')
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', encoding)
        .send('{"count": 1} but not compressed');
      expect(res.status, encoding).to.equal(400);
      expect(res.body.code, encoding).to.equal('BAD_REQUEST');
      expect(res.text).not.to.match(/\bat \w|zlib|Z_DATA_ERROR/i);
    }
    const compressed = await post('/cron/echo')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      // As bytes: superagent would otherwise send a Buffer's JSON form.
      .serialize((bytes) => bytes)
      .send(gzipSync('{"count":3}'));
    expect(compressed.status, JSON.stringify(compressed.body)).to.equal(200);
    expect(compressed.body.result).to.include({ count: 3 });
    const unknown = await post('/cron/echo')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'x-unknown')
      .send('{}');
    expect(unknown.status).to.equal(415);
    expect(unknown.body.code).to.equal('UNSUPPORTED_MEDIA_TYPE');
    expect(app.logs.chunks.slice(lines).join('')).not.to.match(/"level":50/);
  });

  it('lists the run history filtered by task and limited, newest first', async () => {
    await post('/cron/echo').send({ count: 4 });
    await post('/cron/echo').send({ count: 5 });
    const res = await get('/cron/runs?task=echo&limit=2');
    expect(res.status).to.equal(200);
    expect(res.body.runs).to.have.length(2);
    expect(res.body.runs.map((r: { params: { count: number } }) => r.params.count)).to.deep.equal([5, 4]);
    const failed = await get('/cron/runs?status=failed');
    expect(failed.body.runs.every((r: { status: string }) => r.status === 'failed')).to.equal(true);
  });

  it('takes the same runs limit as the command line, up to 1,000, and names the range past it', async () => {
    expect((await get('/cron/runs?limit=1000')).status).to.equal(200);
    const over = await get('/cron/runs?limit=1001');
    expect(over.status).to.equal(400);
    expect(over.body).to.include({
      code: 'BAD_REQUEST',
      message: 'limit must be a whole number from 1 to 1000',
    });
    const cli = await runCli(['runs', '--limit', '1001'], { NODE_ENV: 'production', DATABASE_URL: db.url });
    expect(cli.code).to.equal(2);
    expect(cli.stderr).to.equal('taskgate: limit must be a whole number from 1 to 1000\n');
  });

  it('answers 400 BAD_REQUEST to a run-history query it does not understand', async () => {
    for (const query of ['limit=0', 'limit=ten', 'status=sleeping', 'tasks=echo']) {
      const res = await get(`/cron/runs?${query}`);
      expect(res.status, query).to.equal(400);
      expect(res.body.code, query).to.equal('BAD_REQUEST');
    }
  });

  it('lists the tasks with schedule, schedule in words, params schema and last run', async () => {
    const res = await get('/cron');
    expect(res.status).to.equal(200);
    const names = res.body.tasks.map((t: { name: string }) => t.name);
    expect(names).to.deep.equal(['echo', 'fail', 'flushexpiredtokens_daily', 'noop', 'sleep']);
    const echo = res.body.tasks.find((t: { name: string }) => t.name === 'echo');
    expect(echo).to.include({ schedule: '15 4 * * *' });
    expect(echo.scheduleText).to.be.a('string').and.not.empty;
    expect(echo.params.properties).to.have.keys(['count', 'label']);
    expect(echo.lastRun.task).to.equal('echo');
  });

  it("answers the seed's route with the seed's exact body", async () => {
    for (const path of ['/api/v1/auth/cron/flush-tokens/', '/api/v1/auth/cron/flush-tokens']) {
      const res = await post(path);
      expect(res.status, path).to.equal(200);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      expect(res.text).to.equal('{"status": "success", "message": "Expired tokens flushed successfully."}');
    }
    expect(await count('where task = ?', ['flushexpiredtokens_daily'])).to.equal(2);
  });

  it("answers a dry run through the seed's route with taskgate's own answer, never that tokens were flushed", async () => {
    const res = await post('/api/v1/auth/cron/flush-tokens/').send({ dryRun: true });
    expect(res.status).to.equal(200);
    expect(res.text).not.to.include('flushed successfully');
    expect(res.body).to.include({
      status: 'success',
      task: 'flushexpiredtokens_daily',
      dryRun: true,
      message: 'flushexpiredtokens_daily succeeded (dry run)',
    });
  });

  it('answers 503 SHUTTING_DOWN once the runner is closing', async () => {
    const closing = await buildApp(db.sql);
    await closing.close();
    const res = await request(closing.callback).post('/cron/noop').set('X-Cron-Secret', SECRET);
    expect(res.status).to.equal(503);
    expect(res.body.code).to.equal('SHUTTING_DOWN');
  });
});

describe('HTTP: the headers of every answer', () => {
  let db: TestDatabase;
  const apps: TestApp[] = [];
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    for (const app of apps) await app.close();
    await db.drop();
  });

  async function answers(env: Record<string, string>) {
    const app = await buildApp(db.sql, env);
    apps.push(app);
    const call = () => request(app.callback);
    return [
      ['/healthz', await call().get('/healthz')],
      ['a run', await call().post('/cron/noop').set('X-Cron-Secret', SECRET)],
      ['the run list', await call().get('/cron/runs').set('X-Cron-Secret', SECRET)],
      ['a refusal', await call().post('/cron/noop')],
      [
        'a refusal after the body',
        await call()
          .post('/cron/noop')
          .set('X-Cron-Signature', `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}`),
      ],
      ['a bad request', await call().post('/cron/noop').set('X-Cron-Secret', SECRET).send('{')],
      ['no route', await call().get('/nowhere')],
    ] as const;
  }

  it('are never stored nor sniffed (no-store, nosniff), refusals and errors included', async () => {
    for (const [what, res] of await answers({})) {
      expect(res.headers['cache-control'], what).to.equal('no-store');
      expect(res.headers['x-content-type-options'], what).to.equal('nosniff');
      expect(res.headers['strict-transport-security'], what).to.equal(undefined);
    }
  });

  it('tell browsers to use HTTPS only (HSTS) in production', async () => {
    const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://unused.example/x' };
    for (const [what, res] of await answers(production)) {
      expect(res.status, what).to.be.below(500);
      expect(res.headers['cache-control'], what).to.equal('no-store');
      if (what === 'a refusal') continue; // the gate's refusals go to schedulers, not browsers
      expect(res.headers['strict-transport-security'], what).to.equal('max-age=31536000');
    }
  });
});
