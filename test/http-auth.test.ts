import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import Router from '@koa/router';
import { expect } from 'chai';
import Koa from 'koa';
import request from 'supertest';
import { authenticate } from '../src/http/auth.js';
import { errorHandler } from '../src/http/errors.js';
import { FailedAuthLimiter } from '../src/http/limiter.js';
import { Refusals } from '../src/http/refusals.js';
import { SecretSet } from '../src/http/secrets.js';
import { SeenSignatures } from '../src/http/seenSignatures.js';
import { signRequest } from '../src/http/signature.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, PREVIOUS_SECRET, SECRET, type TestApp } from './support/http.js';

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

    it('refuses on the route a request the gate in front did not see, so a path the gate misses fails closed', async () => {
      const logger = createLogger({ level: 'silent', pretty: false, destination: process.stderr });
      const guard = authenticate({
        secrets: new SecretSet([SECRET]),
        limiter: new FailedAuthLimiter({ limit: 10, windowSeconds: 60 }),
        seen: null,
        toleranceSeconds: 300,
        guards: (path) => path.startsWith('/cron/'),
        refusals: new Refusals(logger),
      });
      const bare = new Koa();
      const router = new Router();
      router.post('/elsewhere', guard.afterBody, (ctx) => {
        ctx.body = { ran: true };
      });
      bare.use(errorHandler()).use(guard.gate).use(router.routes());
      for (const headers of [{}, { 'X-Cron-Secret': SECRET }]) {
        const res = await request(bare.callback()).post('/elsewhere').set(headers);
        expect(res.status, JSON.stringify(headers)).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
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

    it('accepts a request signed with both secrets once, whichever digests a replay keeps', async () => {
      const body = '{"label":"rotation"}';
      const t = now();
      const request_ = { method: 'POST', path: '/cron/echo', body };
      const current = signRequest(SECRET, request_, t).split(',')[1]!;
      const previous = signRequest(PREVIOUS_SECRET, request_, t).split(',')[1]!;
      expect((await signed(app, '/cron/echo', body, `t=${t},${current},${previous}`)).status).to.equal(200);
      for (const replay of [`t=${t},${current}`, `t=${t},${previous}`, `t=${t},${previous},${current}`]) {
        const res = await signed(app, '/cron/echo', body, replay);
        expect(res.status, replay).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
    });

    it('refuses, during a rolling upgrade, a request accepted by a replica that records digests, and records the digest such a replica looks up', async () => {
      const connection = db.orm.em.getConnection();
      const t = now();
      // What a replica of an earlier version records for a request it accepted: the digest.
      const earlier = { method: 'POST', path: '/cron/echo', body: '{"label":"upgrade-old"}' };
      const earlierHeader = signRequest(SECRET, earlier, t);
      const earlierDigest = earlierHeader.split(',')[1]!.slice('v1='.length);
      await connection.execute(
        `insert into taskgate.seen_signature (signature, expires_at) values ('${earlierDigest}', now() + interval '10 minutes')`,
      );
      const replay = await signed(app, '/cron/echo', earlier.body, earlierHeader);
      expect(replay.status).to.equal(401);
      expect(replay.body).to.deep.equal(REFUSED);

      // A request this version accepts leaves the digest an earlier replica checks, beside its own id.
      const later = { method: 'POST', path: '/cron/echo', body: '{"label":"upgrade-new"}' };
      const laterHeader = signRequest(SECRET, later, t);
      const laterDigest = laterHeader.split(',')[1]!.slice('v1='.length);
      expect((await signed(app, '/cron/echo', later.body, laterHeader)).status).to.equal(200);
      const rows = await connection.execute(
        `select count(*)::int as n from taskgate.seen_signature where signature = '${laterDigest}'`,
      );
      expect(rows[0]!.n).to.equal(1);
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
        `insert into taskgate.seen_signature (signature, expires_at) values ('stale', now() - interval '61 minutes')`,
      );
      const fresh = await appWith({});
      // A request of its own (no other test signs this body): the same one signed in the same
      // second by another test would be a replay.
      const body = '{"dryRun":true}';
      const header = signRequest(SECRET, { method: 'POST', path: '/cron/noop', body }, now() - 2);
      const res = await request(fresh.callback)
        .post('/cron/noop')
        .set('X-Cron-Signature', header)
        .set('Content-Type', 'application/json')
        .send(body);
      expect(res.status).to.equal(200);
      const rows = await connection.execute(
        `select signature from taskgate.seen_signature where signature = 'stale'`,
      );
      expect(rows).to.deep.equal([]);
    });

    it('prunes seen signatures by the database clock with an hour of margin: a host clock hours ahead drops nothing still live', async () => {
      const connection = db.orm.em.getConnection();
      await connection.execute(
        `insert into taskgate.seen_signature (signature, expires_at) values
           ('live', now() + interval '5 minutes'), ('within-margin', now() - interval '50 minutes'),
           ('past-margin', now() - interval '70 minutes')`,
      );
      // A replica whose clock runs two hours ahead of the database's.
      const seen = new SeenSignatures(db.sql, () => Date.now() + 2 * 3600_000);
      expect(await seen.remember(['fresh-request'], new Date(Date.now() + 3 * 3600_000))).to.equal(true);
      const rows = await connection.execute<{ signature: string }[]>(
        `select signature from taskgate.seen_signature
          where signature in ('live', 'within-margin', 'past-margin') order by signature`,
      );
      expect(rows.map((row) => row.signature)).to.deep.equal(['live', 'within-margin']);
    });
  });

  describe('ambiguous credentials', () => {
    it('answers 401 to a repeated Authorization, X-Cron-Secret or X-Cron-Signature header, even when the first is right', async () => {
      const signature = () => signRequest(SECRET, { method: 'POST', path: '/cron/noop', body: '' });
      const cases: [string, string[]][] = [
        ['Authorization', [`Bearer ${SECRET}`, 'Bearer wrong']],
        ['Authorization', [`Bearer ${SECRET}`, `Bearer ${SECRET}`]],
        ['X-Cron-Secret', [SECRET, SECRET]],
        ['X-Cron-Signature', [signature(), signature()]],
      ];
      for (const [name, values] of cases) {
        // An array goes out as one header line per value (superagent's types only allow it for Cookie).
        const res = await request(app.callback)
          .post('/cron/noop')
          .set(name as 'Cookie', values);
        expect(res.status, `${name}: ${values.join(' | ')}`).to.equal(401);
        expect(res.body).to.deep.equal(REFUSED);
      }
    });
  });

  describe('the order of checks', () => {
    it('answers 404 without reading the body to a path that is a route only in another case, with or without the secret', async () => {
      for (const path of ['/CRON/noop', '/Cron', '/CRON/runs', '/API/v1/auth/cron/flush-tokens/']) {
        for (const secret of [undefined, SECRET]) {
          const req = request(app.callback).post(path).set('Content-Type', 'text/plain');
          if (secret) req.set('X-Cron-Secret', secret);
          // Read, this body would be 415 (not JSON); routed, /Cron would be 405 (GET only).
          const res = await req.send('not json');
          expect(res.status, `${path} ${secret ? 'with' : 'without'} the secret`).to.equal(404);
          expect(res.body.code).to.equal('NOT_FOUND');
        }
      }
      const { runs } = (await request(app.callback).get('/cron/runs?task=noop').set('X-Cron-Secret', SECRET))
        .body as { runs: unknown[] };
      const before = runs.length;
      await request(app.callback).post('/CRON/noop').set('X-Cron-Secret', SECRET);
      const after = (await request(app.callback).get('/cron/runs?task=noop').set('X-Cron-Secret', SECRET))
        .body.runs.length;
      expect(after, 'runs of noop').to.equal(before);
    });

    it('answers 401, counted, to a well-formed fake signature on a route that does not exist or with a method it does not take, naming no methods', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '5' });
      const fake = () => `t=${now()},v1=${'ab'.repeat(32)}`;
      const cases: [string, string][] = [
        ['POST', '/cron/no/such/route'],
        ['DELETE', '/cron/noop'],
        ['POST', '/cron/runs/00000000-0000-4000-8000-000000000000'],
        ['OPTIONS', '/cron/noop'],
        ['PUT', '/api/v1/auth/cron/flush-tokens/'],
      ];
      for (const [method, path] of cases) {
        const res = await request(limited.callback)
          [method.toLowerCase() as 'post'](path)
          .set('X-Cron-Signature', fake());
        expect(res.status, `${method} ${path}`).to.equal(401);
        expect(res.body, `${method} ${path}`).to.deep.equal(REFUSED);
        expect(res.headers.allow, `${method} ${path}`).to.equal(undefined);
      }
      // Five failures counted: the sixth is 429.
      const blocked = await request(limited.callback).delete('/cron/noop').set('X-Cron-Signature', fake());
      expect(blocked.status).to.equal(429);
    });
  });

  describe('failed-auth limiter', () => {
    it('answers 429 with Retry-After to failing requests once an address has failed the limit', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_WINDOW_SECONDS: '120' });
      for (let i = 0; i < 3; i++) {
        expect(
          (await request(limited.callback).post('/cron/noop').set('X-Cron-Secret', 'x')).status,
        ).to.equal(401);
      }
      for (const attempt of [{ 'X-Cron-Secret': 'x' }, {}, { Authorization: 'Bearer x' }]) {
        const blocked = await request(limited.callback).post('/cron/noop').set(attempt);
        expect(blocked.status).to.equal(429);
        expect(blocked.body).to.include({ status: 'error', code: 'TOO_MANY_REQUESTS' });
        expect(Number(blocked.headers['retry-after'])).to.be.within(1, 120);
      }
    });

    it('lets the right secret, bearer token and a valid signature through an address it has blocked', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '3', CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET });
      for (let i = 0; i < 5; i++)
        await request(limited.callback).post('/cron/noop').set('X-Cron-Secret', 'x');
      expect((await request(limited.callback).get('/cron')).status).to.equal(429);
      expect(
        (await request(limited.callback).post('/cron/noop').set('X-Cron-Secret', SECRET)).status,
      ).to.equal(200);
      const bearer = await request(limited.callback)
        .get('/cron')
        .set('Authorization', `Bearer ${PREVIOUS_SECRET}`);
      expect(bearer.status).to.equal(200);
      const body = '{"label":"blocked address"}';
      const header = signRequest(SECRET, { method: 'POST', path: '/cron/echo', body });
      const res = await request(limited.callback)
        .post('/cron/echo')
        .set('Content-Type', 'application/json')
        .set('X-Cron-Signature', header)
        .send(body);
      expect(res.status).to.equal(200);
      expect((await request(limited.callback).get('/cron').set('X-Cron-Secret', 'x')).status).to.equal(429);
    });

    it('counts wrong METRICS_TOKEN tries apart from /cron', async () => {
      const limited = await appWith({
        AUTH_FAILURE_LIMIT: '2',
        METRICS_TOKEN: 'metrics-Tk7qZ0pL3xV9mB2nR8sW',
      });
      for (let i = 0; i < 2; i++) {
        const res = await request(limited.callback).get('/metrics').set('Authorization', 'Bearer wrong');
        expect(res.status).to.equal(401);
      }
      expect((await request(limited.callback).get('/metrics')).status).to.equal(429);
      expect((await request(limited.callback).get('/cron').set('X-Cron-Secret', 'x')).status).to.equal(401);
    });

    it('counts IPv6 callers by /64, so rotating addresses inside one does not buy fresh attempts', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '3', TRUST_PROXY: '1' });
      const from = (address: string) =>
        request(limited.callback).get('/cron').set('X-Forwarded-For', address).set('X-Cron-Secret', 'x');
      const statuses: number[] = [];
      for (let i = 1; i <= 30; i++) statuses.push((await from(`2001:db8:aa:bb::${i.toString(16)}`)).status);
      expect(statuses.filter((s) => s === 401)).to.have.length(3);
      expect(statuses.slice(3).every((s) => s === 429)).to.equal(true);
      expect((await from('2001:db8:aa:bc::1')).status).to.equal(401);
    });

    it('counts an attempt when it starts: many slow wrong requests at once get no more than the limit of 401s', async function () {
      this.timeout(20_000);
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '5' });
      const server = createServer(limited.callback);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const wrongSignature = () => `t=${now()},v1=${'0'.repeat(64)}`;
        const slow = (credential: string) =>
          new Promise<number>((resolve, reject) => {
            const socket = connect(port, '127.0.0.1');
            let answer = '';
            socket.setEncoding('utf8');
            socket.on('data', (chunk) => {
              answer += chunk;
            });
            socket.on('error', reject);
            socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1] ?? 0)));
            socket.write(
              `POST /cron/echo HTTP/1.1\r\nHost: x\r\n${credential}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`,
            );
            setTimeout(() => socket.writable && socket.end('{}'), 1500);
          });
        const statuses = await Promise.all([
          ...Array.from({ length: 20 }, () => slow('X-Cron-Secret: wrong')),
          ...Array.from({ length: 20 }, () => slow(`X-Cron-Signature: ${wrongSignature()}`)),
        ]);
        expect(statuses.filter((s) => s === 401).length, statuses.join(' ')).to.be.at.most(5);
        expect(statuses.filter((s) => s === 429).length, statuses.join(' ')).to.be.at.least(35);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('refuses a wrong secret before reading the body, and closes the connection', async () => {
      const server = createServer(app.callback);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const started = Date.now();
        const answer = await new Promise<string>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1');
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk) => {
            text += chunk;
          });
          socket.on('error', reject);
          socket.on('close', () => resolve(text));
          // A body announced and never sent: only answering from the headers ends this.
          socket.write(
            'POST /cron/echo HTTP/1.1\r\nHost: x\r\nX-Cron-Secret: wrong\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{',
          );
          setTimeout(() => socket.destroy(), 5_000);
        });
        expect(answer).to.match(/^HTTP\/1\.1 401 /);
        expect(answer).to.match(/\r\nConnection: close\r\n/i);
        expect(Date.now() - started).to.be.below(2_000);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('keeps the connection of a refused request that has no body, so a retry on it needs no new handshake', async () => {
      const server = createServer(app.callback);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const answers = await new Promise<string>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1');
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk) => {
            text += chunk;
            // Two answers on one socket: the first refusal left it open.
            if ((text.match(/HTTP\/1\.1 401 /g) ?? []).length === 2) {
              socket.destroy();
              resolve(text);
            }
          });
          socket.on('error', reject);
          socket.on('close', () => resolve(text));
          const refused =
            'POST /cron/echo HTTP/1.1\r\nHost: x\r\nX-Cron-Secret: wrong\r\nContent-Length: 0\r\n\r\n';
          socket.write(refused + refused);
          setTimeout(() => socket.destroy(), 5_000);
        });
        expect(answers.match(/HTTP\/1\.1 401 /g)).to.have.length(2);
        expect(answers).not.to.match(/\r\nConnection: close\r\n/i);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('counts a signed request whose body does not decode as a failed attempt', async () => {
      const limited = await appWith({ AUTH_FAILURE_LIMIT: '2' });
      for (let i = 0; i < 2; i++) {
        const res = await request(limited.callback)
          .post('/cron/echo')
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', 'gzip')
          .set('X-Cron-Signature', `t=${now()},v1=${'0'.repeat(64)}`)
          .send('{"not":"gzip"}');
        expect(res.status).to.equal(400);
        expect(res.body.code).to.equal('BAD_REQUEST');
      }
      expect((await request(limited.callback).get('/cron')).status).to.equal(429);
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
