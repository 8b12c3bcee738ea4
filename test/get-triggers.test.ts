import { expect } from 'chai';
import request from 'supertest';
import { signRequest } from '../src/http/signature.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';

const bearer = `Bearer ${SECRET}`;

describe('HTTP: GET /cron/:task, for schedulers that only send GET (Vercel Cron)', () => {
  let db: TestDatabase;
  let app: TestApp;
  const apps: TestApp[] = [];

  async function appWith(env: Record<string, string | undefined> = {}): Promise<TestApp> {
    const built = await buildApp(db.sql, { AUTH_FAILURE_LIMIT: '1000', ALLOW_GET_TRIGGERS: 'true', ...env });
    apps.push(built);
    return built;
  }

  const runsOf = async (task: string) =>
    (await request(app.callback).get(`/cron/runs?task=${task}`).set('X-Cron-Secret', SECRET)).body.runs as {
      id: string;
      trigger: string;
      idempotencyKey: string | null;
    }[];

  before(async () => {
    db = await createTestDatabase();
    app = await appWith();
  });
  after(async () => {
    for (const built of apps) await built.close();
    await db.drop();
  });

  it('stays 405 while ALLOW_GET_TRIGGERS is unset, and runs nothing', async () => {
    const off = await appWith({ ALLOW_GET_TRIGGERS: undefined });
    const res = await request(off.callback).get('/cron/noop').set('Authorization', bearer);
    expect(res.status).to.equal(405);
    expect(res.body.code).to.equal('METHOD_NOT_ALLOWED');
    expect(await runsOf('noop')).to.deep.equal([]);
  });

  it('runs the task for Authorization: Bearer <secret>, recorded as an http-get run with no params', async () => {
    const res = await request(app.callback).get('/cron/noop').set('Authorization', bearer);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body).to.include({ status: 'success', task: 'noop', dryRun: false });
    const [run] = await runsOf('noop');
    expect(run).to.include({ id: res.body.runId, trigger: 'http-get', idempotencyKey: null });
  });

  it('runs a scheduled task as its slot, so a second delivery of one slot replays the first run and is counted', async () => {
    const first = await request(app.callback).get('/cron/echo').set('Authorization', bearer);
    const second = await request(app.callback).get('/cron/echo').set('Authorization', bearer);
    expect(first.status).to.equal(200);
    expect(second.status).to.equal(200);
    expect(second.headers['idempotent-replayed']).to.equal('true');
    expect(second.body.runId).to.equal(first.body.runId);
    const slot = app.registry.get('echo')!.schedule!.previous(new Date())!;
    const runs = await runsOf('echo');
    expect(runs).to.have.length(1);
    expect(runs[0]).to.include({ idempotencyKey: `slot:${slot.toISOString()}`, slot: slot.toISOString() });
    expect(runs[0]).to.include({ duplicateFires: 1, trigger: 'http-get' });
  });

  it('keeps a slot one run whatever Idempotency-Key a caller sends, and names Vercel Cron by its user agent', async () => {
    const res = await request(app.callback)
      .get('/cron/echo')
      .set('Authorization', bearer)
      .set('User-Agent', 'vercel-cron/1.0')
      .set('Idempotency-Key', 'manual-1');
    expect(res.status).to.equal(200);
    expect(res.headers['idempotent-replayed']).to.equal('true');
    expect((await runsOf('echo')).map((run) => run.idempotencyKey)).to.not.include('manual-1');
  });

  it('answers 401 to X-Cron-Secret, a signature or a wrong bearer token, and counts each in the limiter', async () => {
    const limited = await appWith({ AUTH_FAILURE_LIMIT: '3' });
    const signature = signRequest(SECRET, { method: 'GET', path: '/cron/noop', body: '' });
    const refusals = [
      await request(limited.callback).get('/cron/noop').set('X-Cron-Secret', SECRET),
      await request(limited.callback).get('/cron/noop').set('X-Cron-Signature', signature),
      await request(limited.callback).get('/cron/noop').set('Authorization', 'Bearer wrong'),
    ];
    expect(refusals.map((res) => res.status)).to.deep.equal([401, 401, 401]);
    const reasons = limited.logs
      .lines()
      .filter((line) => line.msg === 'request refused')
      .map((line) => line.refused);
    expect(reasons).to.deep.equal([
      'get trigger with another credential',
      'get trigger with another credential',
      'wrong secret',
    ]);
    const blocked = await request(limited.callback).get('/cron/noop').set('X-Cron-Secret', SECRET);
    expect(blocked.status).to.equal(429);
  });

  it('answers HEAD with 405 and runs nothing', async () => {
    const before = (await runsOf('noop')).length;
    const res = await request(app.callback).head('/cron/noop').set('Authorization', bearer);
    expect(res.status).to.equal(405);
    expect(res.headers.allow).to.equal('GET, POST');
    expect(await runsOf('noop')).to.have.length(before);
  });

  it('answers 400 to a query string: params and dry runs are for POST', async () => {
    const res = await request(app.callback).get('/cron/echo?dryRun=true').set('Authorization', bearer);
    expect(res.status).to.equal(400);
    expect(res.body.code).to.equal('BAD_REQUEST');
  });

  it('answers 404 for an unknown task, after the credentials', async () => {
    expect((await request(app.callback).get('/cron/no_such_task')).status).to.equal(401);
    const res = await request(app.callback).get('/cron/no_such_task').set('Authorization', bearer);
    expect(res.status).to.equal(404);
    expect(res.body.code).to.equal('TASK_NOT_FOUND');
  });

  it('still serves GET /cron/runs and GET /cron/runs/:id, not as tasks', async () => {
    const res = await request(app.callback).get('/cron/runs').set('Authorization', bearer);
    expect(res.status).to.equal(200);
    expect(res.body.runs).to.be.an('array');
  });
});
