import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import request from 'supertest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';
import {
  QSTASH_CURRENT_KEY as CURRENT_KEY,
  QSTASH_NEXT_KEY as NEXT_KEY,
  qstashToken,
} from './support/qstash.js';

const PUBLIC_URL = 'https://taskgate.example.com';
/** The development keys the QStash SDK ships (and uses when QSTASH_DEV is set): public knowledge. */
const SDK_DEV_KEY = 'sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r';
const REFUSED = { status: 'error', code: 'UNAUTHORIZED', message: 'missing or invalid credentials' };
const now = () => Math.floor(Date.now() / 1000);

describe('HTTP: requests signed by Upstash QStash', () => {
  let db: TestDatabase;
  let app: TestApp;
  const apps: TestApp[] = [];

  async function appWith(env: Record<string, string | undefined> = {}): Promise<TestApp> {
    const built = await buildApp(db.sql, {
      AUTH_FAILURE_LIMIT: '1000',
      QSTASH_CURRENT_SIGNING_KEY: CURRENT_KEY,
      QSTASH_NEXT_SIGNING_KEY: NEXT_KEY,
      PUBLIC_URL,
      ...env,
    });
    apps.push(built);
    return built;
  }

  const post = (target: TestApp, path: string, body: string, token: string) =>
    request(target.callback)
      .post(path)
      .set('Content-Type', 'application/json')
      .set('Upstash-Signature', token)
      .send(body);

  const lastRefusal = (target: TestApp) =>
    target.logs
      .lines()
      .filter((line) => line.msg === 'request refused')
      .at(-1)?.refused;

  before(async () => {
    db = await createTestDatabase();
    app = await appWith();
  });
  after(async () => {
    for (const built of apps) await built.close();
    await db.drop();
  });

  it('runs the task for a token signed with the current key, recording the run as triggered by qstash', async () => {
    const body = JSON.stringify({ count: 3, label: 'qstash' });
    const res = await post(
      app,
      '/cron/echo',
      body,
      qstashToken(CURRENT_KEY, `${PUBLIC_URL}/cron/echo`, body),
    );
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body.result).to.include({ count: 3, label: 'qstash' });
    const run = await request(app.callback).get(`/cron/runs/${res.body.runId}`).set('X-Cron-Secret', SECRET);
    expect(run.body.run).to.include({ trigger: 'qstash', status: 'succeeded' });
  });

  it('accepts a token signed with the next key, as during Upstash’s key rotation', async () => {
    const res = await post(app, '/cron/noop', '', qstashToken(NEXT_KEY, `${PUBLIC_URL}/cron/noop`, ''));
    expect(res.status).to.equal(200);
  });

  it('answers 401 to a token with a wrong key, issuer, subject, body hash, expiry or start', async () => {
    const url = `${PUBLIC_URL}/cron/noop`;
    const body = '{}';
    const bad: Record<string, string> = {
      'another key': qstashToken('sig_someoneelse0123456789abcdefghij', url, body),
      'the SDK development key': qstashToken(SDK_DEV_KEY, url, body),
      'another issuer': qstashToken(CURRENT_KEY, url, body, { iss: 'NotUpstash' }),
      'another task': qstashToken(CURRENT_KEY, `${PUBLIC_URL}/cron/echo`, body),
      'another host': qstashToken(CURRENT_KEY, 'https://evil.example.com/cron/noop', body),
      'another body': qstashToken(CURRENT_KEY, url, '{"dryRun":true}'),
      expired: qstashToken(CURRENT_KEY, url, body, { exp: now() - 120, nbf: now() - 420, iat: now() - 420 }),
      'not valid yet': qstashToken(CURRENT_KEY, url, body, { nbf: now() + 120 }),
      'no token id': qstashToken(CURRENT_KEY, url, body, { jti: undefined }),
      'not a token': 'not.a.jwt',
      'a token cut short': qstashToken(CURRENT_KEY, url, body).slice(0, -4),
    };
    for (const [what, token] of Object.entries(bad)) {
      const res = await post(app, '/cron/noop', body, token);
      expect(res.status, what).to.equal(401);
      expect(res.body, what).to.deep.equal(REFUSED);
      expect(lastRefusal(app), what).to.equal('wrong qstash signature');
    }
  });

  it('ignores QSTASH_DEV: the SDK’s public development keys never verify a request', async () => {
    const before = process.env.QSTASH_DEV;
    process.env.QSTASH_DEV = 'true';
    try {
      const fresh = await appWith();
      const url = `${PUBLIC_URL}/cron/noop`;
      const res = await post(fresh, '/cron/noop', '', qstashToken(SDK_DEV_KEY, url, ''));
      expect(res.status).to.equal(401);
      const genuine = await post(fresh, '/cron/noop', '', qstashToken(CURRENT_KEY, url, ''));
      expect(genuine.status).to.equal(200);
    } finally {
      if (before === undefined) delete process.env.QSTASH_DEV;
      else process.env.QSTASH_DEV = before;
    }
  });

  it('answers 401 to a token sent a second time, on any replica sharing the database', async () => {
    const token = qstashToken(CURRENT_KEY, `${PUBLIC_URL}/cron/noop`, '');
    expect((await post(app, '/cron/noop', '', token)).status).to.equal(200);
    const again = await post(app, '/cron/noop', '', token);
    expect(again.status).to.equal(401);
    expect(lastRefusal(app)).to.equal('replayed qstash signature');
    const replica = await appWith();
    expect((await post(replica, '/cron/noop', '', token)).status).to.equal(401);
    expect(lastRefusal(replica)).to.equal('replayed qstash signature');
  });

  it('answers a redelivery of one message (same Upstash-Message-Id, a new token) with the first run', async () => {
    const messageId = `msg_${randomUUID()}`;
    const send = () =>
      post(app, '/cron/noop', '', qstashToken(CURRENT_KEY, `${PUBLIC_URL}/cron/noop`, '')).set(
        'Upstash-Message-Id',
        messageId,
      );
    const first = await send();
    const retry = await send();
    expect(first.status).to.equal(200);
    expect(retry.status).to.equal(200);
    expect(retry.headers['idempotent-replayed']).to.equal('true');
    expect(retry.body.runId).to.equal(first.body.runId);
  });

  it('answers 401 to Upstash-Signature when no QStash signing keys are set', async () => {
    const plain = await buildApp(db.sql, { AUTH_FAILURE_LIMIT: '1000' });
    apps.push(plain);
    const res = await post(
      plain,
      '/cron/noop',
      '',
      qstashToken(CURRENT_KEY, 'http://127.0.0.1/cron/noop', ''),
    );
    expect(res.status).to.equal(401);
    expect(lastRefusal(plain)).to.equal('qstash not configured');
  });

  it('answers 401 to Upstash-Signature beside another credential, even a valid one', async () => {
    const token = qstashToken(CURRENT_KEY, `${PUBLIC_URL}/cron/noop`, '');
    const res = await post(app, '/cron/noop', '', token).set('X-Cron-Secret', SECRET);
    expect(res.status).to.equal(401);
    expect(lastRefusal(app)).to.equal('ambiguous credentials');
  });

  it('counts wrong QStash signatures in the brute-force limiter', async () => {
    const limited = await appWith({ AUTH_FAILURE_LIMIT: '2' });
    const wrong = () =>
      post(limited, '/cron/noop', '', qstashToken('sig_wrong', `${PUBLIC_URL}/cron/noop`, ''));
    expect((await wrong()).status).to.equal(401);
    expect((await wrong()).status).to.equal(401);
    expect((await wrong()).status).to.equal(429);
  });
});
