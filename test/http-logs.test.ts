import { expect } from 'chai';
import request from 'supertest';
import { signRequest } from '../src/http/signature.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, PREVIOUS_SECRET, SECRET, type TestApp } from './support/http.js';

const METRICS_TOKEN = 'e5715f69e2cf5d408ba5b3490b5d56fa';

describe('HTTP: log lines', () => {
  let db: TestDatabase;
  let app: TestApp;
  let signature: string;

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql, { CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET, METRICS_TOKEN });
    const call = () => request(app.callback);
    const body = JSON.stringify({ label: 'logged' });
    signature = signRequest(SECRET, { method: 'POST', path: '/cron/echo', body });
    // Every way a credential can reach taskgate, right and wrong, and a few failures around them.
    await call().post('/cron/noop').set('X-Cron-Secret', SECRET);
    await call().post('/cron/noop').set('Authorization', `Bearer ${PREVIOUS_SECRET}`);
    await call().post('/cron/noop').set('X-Cron-Secret', `${SECRET}-but-wrong`);
    await call()
      .post('/cron/noop')
      .set('Authorization', `Bearer ${SECRET.slice(1)}`);
    await call()
      .post('/cron/echo')
      .set('Content-Type', 'application/json')
      .set('X-Cron-Signature', signature)
      .send(body);
    await call()
      .post('/cron/echo')
      .set('Content-Type', 'application/json')
      .set('X-Cron-Signature', signature)
      .send(body);
    await call().post('/cron/fail').set('X-Cron-Secret', SECRET);
    await call().post('/cron/echo').set('X-Cron-Secret', SECRET).send({ secret: SECRET });
    await call()
      .post('/cron/echo')
      .set('X-Cron-Secret', SECRET)
      .set('Content-Type', 'application/json')
      .send('{bad');
    await call().post('/api/v1/auth/cron/flush-tokens/').set('X-Cron-Secret', SECRET);
    await call().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`);
    await call().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}x`);
    await call().get('/cron/runs').set('X-Cron-Secret', SECRET).set('X-Request-Id', 'caller-chosen-id-1');
  });
  after(async () => {
    await app.close();
    await db.drop();
  });

  it('never contain a secret, the previous secret, the metrics token or a signature', () => {
    const text = app.logs.text;
    expect(app.logs.lines().length).to.be.above(20);
    for (const [name, value] of Object.entries({ SECRET, PREVIOUS_SECRET, METRICS_TOKEN })) {
      expect(text.includes(value), name).to.equal(false);
    }
    const digest = signature.split('v1=')[1]!;
    expect(text.includes(digest), 'the signature digest').to.equal(false);
  });

  it('give every request one line with its request id, method, path, status and address, but sum up an address’s repeated refusals', () => {
    const requestLines = app.logs
      .lines()
      .filter((line) => line.msg === 'request' || line.msg === 'request refused');
    // 13 requests; the second "wrong secret" of the same address is summed up, not logged alone.
    expect(requestLines).to.have.length(12);
    for (const line of requestLines) {
      expect(line.requestId).to.be.a('string').and.not.empty;
      expect(line).to.include.keys(['method', 'path', 'status', 'ms', 'ip']);
    }
    expect(requestLines.at(-1)).to.include({
      requestId: 'caller-chosen-id-1',
      path: '/cron/runs',
      status: 200,
    });
    app.refusals.flush();
    const sums = app.logs.lines().filter((line) => line.msg === 'requests refused');
    expect(sums).to.have.length(1);
    expect(sums[0]).to.include({ level: 40, refused: 'wrong secret', count: 1, seconds: 10 });
    expect(sums[0]!.ip).to.be.a('string');
  });

  it('carry the request id on every line written for a request, and the run id on a trigger', () => {
    for (const line of app.logs.lines().filter((line) => line.msg !== 'requests refused')) {
      expect(line.requestId, JSON.stringify(line)).to.be.a('string');
    }
    const refused = app.logs.lines().filter((line) => line.msg === 'request refused');
    expect(refused.map((line) => line.refused)).to.include.members([
      'wrong secret',
      'replayed signature',
      'wrong metrics token',
    ]);
    for (const line of refused) expect(line).to.include({ level: 40, status: 401 });
    const triggered = app.logs.lines().find((line) => line.msg === 'request' && line.path === '/cron/fail');
    expect(triggered?.runId).to.be.a('string');
    // The run's own lines (start, failure, end) carry the request id of the request that started it.
    const runLines = app.logs
      .lines()
      .filter((line) => line.runId === triggered?.runId && line.msg !== 'request');
    expect(runLines.map((line) => line.msg)).to.include.members(['run started', 'run finished']);
    for (const line of runLines) expect(line.requestId).to.equal(triggered?.requestId);
  });
});

describe('HTTP: a flood of refused requests', () => {
  let db: TestDatabase;
  let app: TestApp;

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql, { AUTH_FAILURE_LIMIT: '150' });
  });
  after(async () => {
    await app.close();
    await db.drop();
  });

  it('logs the first refusal of an address for a reason, sums up the rest, counts each in metrics and the limiter', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 200; i++) {
      const res = await request(app.callback).post('/cron/noop').set('X-Cron-Secret', `wrong-${i}`);
      codes.push(res.status);
      expect(res.headers['x-request-id']).to.be.a('string');
    }
    await request(app.callback).get('/cron/runs');
    // The limiter saw every one: 150 failures answered 401, then 429 for the rest of the window.
    expect(codes.filter((code) => code === 401)).to.have.length(150);
    expect(codes.filter((code) => code === 429)).to.have.length(50);
    const refused = () => app.logs.lines().filter((line) => line.msg === 'request refused');
    expect(refused().map((line) => line.refused)).to.deep.equal(['wrong secret', 'no credentials']);
    app.refusals.flush();
    const sums = app.logs.lines().filter((line) => line.msg === 'requests refused');
    expect(sums).to.have.length(1);
    expect(sums[0]).to.include({ refused: 'wrong secret', count: 199, seconds: 10 });
    const text = await app.metrics.text();
    const counted = (status: number) =>
      Number(
        text
          .split('\n')
          .find((line) =>
            line.startsWith(`taskgate_http_requests_total{route="refused",method="POST",status="${status}"}`),
          )
          ?.split(' ')
          .at(-1),
      );
    expect(
      counted(401) + counted(429),
      text
        .split('\n')
        .filter((l) => l.includes('refused'))
        .join('\n'),
    ).to.equal(200);
    // A window flushed is a new window: the next refusal is logged in full again.
    await request(app.callback).post('/cron/noop').set('X-Cron-Secret', 'wrong-again');
    expect(refused()).to.have.length(3);
  });
});
