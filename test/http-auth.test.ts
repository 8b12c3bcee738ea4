import { expect } from 'chai';
import request from 'supertest';
import { signRequest } from '../src/http/signature.js';
import { buildApp, PREVIOUS_SECRET, SECRET, type TestApp } from './http-support.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const REFUSED = { status: 'error', code: 'UNAUTHORIZED', message: 'missing or invalid credentials' };
const now = () => Math.floor(Date.now() / 1000);

describe('HTTP: authentication', () => {
  let db: TestDatabase;
  let app: TestApp;
  const apps: TestApp[] = [];

  /** A fresh app (fresh limiter) on the shared test database. */
  async function appWith(env: Record<string, string | undefined> = {}): Promise<TestApp> {
    const built = await buildApp(db.sql, { AUTH_FAILURE_LIMIT: '1000', ...env });
    apps.push(built);
    return built;
  }

  before(async () => {
    db = await createTestDatabase();
    app = await appWith({ CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET });
  });
  after(async () => {
    for (const built of apps) await built.close();
    await db.drop();
  });

  describe('with a shared secret', () => {
    it('answers 401 when no credentials are sent', async () => {
      const res = await request(app.callback).post('/cron/noop');
      expect(res.status).to.equal(401);
      expect(res.body).to.deep.equal(REFUSED);
      expect(res.headers['www-authenticate']).to.match(/^Bearer/);
    });

    it('answers 401 with the same body when the secret is wrong, empty or almost right', async () => {
      for (const wrong of ['wrong', '', SECRET.slice(0, -1), `${SECRET}x`, SECRET.toUpperCase()]) {
        const res = await request(app.callback).post('/cron/noop').set('X-Cron-Secret', wrong);
        expect(res.status, JSON.stringify(wrong)).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
    });

    it('answers 401, not 404, for an unknown task without a valid secret', async () => {
      const res = await request(app.callback).post('/cron/no_such_task').set('X-Cron-Secret', 'wrong');
      expect(res.status).to.equal(401);
      expect(res.body).to.deep.equal(REFUSED);
    });

    it('answers 401 to every request when no secret is configured', async () => {
      const open = await appWith({ CRON_SECRET_KEY: undefined });
      expect(open.config.secrets).to.deep.equal([]);
      for (const value of ['', 'undefined', 'null', SECRET]) {
        const res = await request(open.callback).post('/cron/noop').set('X-Cron-Secret', value);
        expect(res.status, value).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
      const bearer = await request(open.callback).get('/cron').set('Authorization', 'Bearer ');
      expect(bearer.status).to.equal(401);
    });

    it('accepts the secret as Authorization: Bearer, and refuses other schemes', async () => {
      const ok = await request(app.callback).post('/cron/noop').set('Authorization', `Bearer ${SECRET}`);
      expect(ok.status).to.equal(200);
      for (const value of [
        `Basic ${Buffer.from(`x:${SECRET}`).toString('base64')}`,
        SECRET,
        'Bearer wrong',
      ]) {
        const res = await request(app.callback).post('/cron/noop').set('Authorization', value);
        expect(res.status, value).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
    });

    it('answers 401 when one of two credentials presented is wrong', async () => {
      const res = await request(app.callback)
        .post('/cron/noop')
        .set('X-Cron-Secret', SECRET)
        .set('Authorization', 'Bearer wrong');
      expect(res.status).to.equal(401);
    });

    it('accepts the current and the previous secret during a rotation, and nothing else', async () => {
      for (const secret of [SECRET, PREVIOUS_SECRET]) {
        const res = await request(app.callback).post('/cron/noop').set('X-Cron-Secret', secret);
        expect(res.status).to.equal(200);
      }
      const after = await appWith({});
      const res = await request(after.callback).post('/cron/noop').set('X-Cron-Secret', PREVIOUS_SECRET);
      expect(res.status).to.equal(401);
    });

    it('guards the task list and the run history too', async () => {
      for (const path of ['/cron', '/cron/runs', '/cron/runs/00000000-0000-4000-8000-000000000000']) {
        const res = await request(app.callback).get(path);
        expect(res.status, path).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
      expect((await request(app.callback).get('/cron').set('X-Cron-Secret', SECRET)).status).to.equal(200);
    });

    it('leaves /healthz and /readyz open', async () => {
      expect((await request(app.callback).get('/healthz')).status).to.equal(200);
      expect((await request(app.callback).get('/readyz')).status).to.equal(200);
    });
  });

  describe('with signed requests', () => {
    const signed = (target: TestApp, path: string, body: string, header: string) =>
      request(target.callback)
        .post(path)
        .set('Content-Type', 'application/json')
        .set('X-Cron-Signature', header)
        .send(body);

    it('accepts a valid signature over timestamp, method, path and body without the secret', async () => {
      const body = JSON.stringify({ count: 2, label: 'signed' });
      const header = signRequest(SECRET, { method: 'POST', path: '/cron/echo', body });
      const res = await signed(app, '/cron/echo', body, header);
      expect(res.status).to.equal(200);
      expect(res.body.result).to.include({ count: 2, label: 'signed' });
    });

    it('accepts a signature made with the previous secret during a rotation', async () => {
      const header = signRequest(PREVIOUS_SECRET, { method: 'POST', path: '/cron/noop', body: '' });
      const res = await request(app.callback).post('/cron/noop').set('X-Cron-Signature', header);
      expect(res.status).to.equal(200);
    });

    it('answers 401 to a signature older or newer than the tolerance', async () => {
      for (const t of [now() - 301, now() + 301]) {
        const header = signRequest(SECRET, { method: 'POST', path: '/cron/noop', body: '{}' }, t);
        const res = await signed(app, '/cron/noop', '{}', header);
        expect(res.status, String(t)).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
      const within = signRequest(SECRET, { method: 'POST', path: '/cron/noop', body: '{}' }, now() - 290);
      expect((await signed(app, '/cron/noop', '{}', within)).status).to.equal(200);
    });

    it('answers 401 to a replayed signature, also on another replica sharing the database', async () => {
      const body = '{"label":"once"}';
      const header = signRequest(SECRET, { method: 'POST', path: '/cron/echo', body });
      expect((await signed(app, '/cron/echo', body, header)).status).to.equal(200);
      const again = await signed(app, '/cron/echo', body, header);
      expect(again.status).to.equal(401);
      expect(again.body).to.deep.equal(REFUSED);
      const replica = await appWith({ CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET });
      expect((await signed(replica, '/cron/echo', body, header)).status).to.equal(401);
    });

    it('answers 401 when the body, the path or the method differs from what was signed', async () => {
      const header = signRequest(SECRET, { method: 'POST', path: '/cron/echo', body: '{"count":1}' });
      expect((await signed(app, '/cron/echo', '{"count":9}', header)).status).to.equal(401);
      expect((await signed(app, '/cron/noop', '{"count":1}', header)).status).to.equal(401);
      const getHeader = signRequest(SECRET, { method: 'GET', path: '/cron/echo', body: '{"count":1}' });
      expect((await signed(app, '/cron/echo', '{"count":1}', getHeader)).status).to.equal(401);
    });

    it('covers the query string: a signed history query cannot be changed', async () => {
      const header = signRequest(SECRET, { method: 'GET', path: '/cron/runs?task=echo', body: '' });
      const changed = await request(app.callback).get('/cron/runs?task=noop').set('X-Cron-Signature', header);
      expect(changed.status).to.equal(401);
      const ok = await request(app.callback).get('/cron/runs?task=echo').set('X-Cron-Signature', header);
      expect(ok.status).to.equal(200);
    });

    it('answers 401 to a malformed signature header or one signed with a wrong key', async () => {
      const forged = signRequest('not-the-secret-at-all-but-long-enough', {
        method: 'POST',
        path: '/cron/noop',
        body: '',
      });
      for (const header of ['v1=abc', `t=${now()}`, `t=${now()},v1=zz`, 'garbage', forged]) {
        const res = await request(app.callback).post('/cron/noop').set('X-Cron-Signature', header);
        expect(res.status, header).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
    });

    it('prunes seen signatures once they are past their expiry', async () => {
      const connection = db.orm.em.getConnection();
      await connection.execute(
        `insert into taskgate.seen_signature (signature, expires_at) values ('stale', now() - interval '1 hour')`,
      );
      const fresh = await appWith({});
      const header = signRequest(SECRET, { method: 'POST', path: '/cron/noop', body: '' });
      expect(
        (await request(fresh.callback).post('/cron/noop').set('X-Cron-Signature', header)).status,
      ).to.equal(200);
      const rows = await connection.execute(
        `select signature from taskgate.seen_signature where signature = 'stale'`,
      );
      expect(rows).to.deep.equal([]);
    });
  });

  describe('failed-auth limiter', () => {
    it('answers 429 with Retry-After once an address has failed the limit, even with the right secret', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_WINDOW_SECONDS: '120' });
      for (let i = 0; i < 3; i++) {
        expect(
          (await request(limited.callback).post('/cron/noop').set('X-Cron-Secret', 'x')).status,
        ).to.equal(401);
      }
      const blocked = await request(limited.callback).post('/cron/noop').set('X-Cron-Secret', SECRET);
      expect(blocked.status).to.equal(429);
      expect(blocked.body).to.include({ status: 'error', code: 'TOO_MANY_REQUESTS' });
      const retryAfter = Number(blocked.headers['retry-after']);
      expect(retryAfter).to.be.within(1, 120);
    });

    it('never counts requests that present the right secret', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '2' });
      for (let i = 0; i < 25; i++) {
        const res = await request(limited.callback).get('/cron/runs?limit=1').set('X-Cron-Secret', SECRET);
        expect(res.status).to.equal(200);
      }
      expect((await request(limited.callback).get('/cron').set('X-Cron-Secret', 'x')).status).to.equal(401);
      expect((await request(limited.callback).get('/cron').set('X-Cron-Secret', SECRET)).status).to.equal(
        200,
      );
    });

    it('ignores X-Forwarded-For by default, so a forged header does not dodge the limit', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '2' });
      for (const forged of ['203.0.113.1', '203.0.113.2']) {
        const res = await request(limited.callback).get('/cron').set('X-Forwarded-For', forged);
        expect(res.status).to.equal(401);
      }
      const third = await request(limited.callback).get('/cron').set('X-Forwarded-For', '203.0.113.3');
      expect(third.status).to.equal(429);
    });

    it('with TRUST_PROXY=2 counts by the address the proxies appended, whatever the caller prepends', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '2', TRUST_PROXY: '2' });
      const via = (chain: string) =>
        request(limited.callback).get('/cron').set('X-Forwarded-For', chain).set('X-Cron-Secret', 'x');
      expect((await via('forged-1, 198.51.100.7, 104.16.0.1')).status).to.equal(401);
      expect((await via('forged-2, 198.51.100.7, 104.16.0.1')).status).to.equal(401);
      expect((await via('198.51.100.7, 104.16.0.1')).status).to.equal(429);
      const other = await request(limited.callback)
        .get('/cron')
        .set('X-Forwarded-For', '198.51.100.8, 104.16.0.1')
        .set('X-Cron-Secret', SECRET);
      expect(other.status).to.equal(200);
    });
  });
});
