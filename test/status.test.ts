import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import request from 'supertest';
import { FailedAuthLimiter } from '../src/http/limiter.js';
import { SESSION_COOKIE, StatusAuth } from '../src/http/status/session.js';
import { CONTENT_SECURITY_POLICY } from '../src/http/status/style.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, PREVIOUS_SECRET, SECRET, type TestApp } from './support/http.js';

const STATUS_TASKS = fileURLToPath(new URL('./fixtures/tasks-status/', import.meta.url));
/** A STATUS_TOKEN as `openssl rand -base64 24` makes one. */
const STATUS_TOKEN = '9wYbtZ77CYKLNdo4ldd4jMCYFDUsEeLT';
const HTML = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8';

/** The Set-Cookie line of the session cookie a response set. */
function sessionCookieLine(res: request.Response): string {
  const header = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  const line = header.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (!line) throw new Error(`no session cookie in ${JSON.stringify(header)}`);
  return line;
}

/** The session cookie a response set, as a Cookie header value. */
const sessionCookie = (res: request.Response): string => sessionCookieLine(res).split(';')[0]!;

/** The CSRF token of the first form on a page. */
function csrfOf(page: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(page);
  if (!match) throw new Error('no CSRF field on the page');
  return match[1]!;
}

describe('status page: HTTP', () => {
  let db: TestDatabase;
  let app: TestApp;
  const query = async (sql: string, params: unknown[] = []) => (await db.sql.query(sql, params)).rows;
  const trigger = (task: string, body: object = {}) =>
    request(app.callback).post(`/cron/${task}`).set('X-Cron-Secret', SECRET).send(body);

  async function login(token: string): Promise<{ cookie: string; page: string }> {
    const res = await request(app.callback)
      .post('/status/login')
      .set('Accept', HTML)
      .type('form')
      .send({ token });
    expect(res.status, res.text).to.equal(303);
    expect(res.headers.location).to.equal('/status');
    const cookie = sessionCookie(res);
    const page = await request(app.callback).get('/status').set('Accept', HTML).set('Cookie', cookie);
    expect(page.status).to.equal(200);
    return { cookie, page: page.text };
  }

  async function settled(runId: string) {
    for (let i = 0; i < 400; i++) {
      const { rows } = await db.sql.query('select status from taskgate.task_run where id = $1', [runId]);
      if (rows[0]?.status !== 'running') return rows[0];
      await delay(25);
    }
    throw new Error(`run ${runId} still running`);
  }

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(
      db.sql,
      // Many refusals are tested here: the limiter has a test of its own below.
      { STATUS_TOKEN, CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET, AUTH_FAILURE_LIMIT: '1000' },
      { tasksDir: STATUS_TASKS },
    );
  });
  after(async () => {
    await app.close();
    await db.drop();
  });
  beforeEach(async () => {
    await query('delete from taskgate.task_pause');
    await query('delete from taskgate.task_pause_event');
  });

  describe('access', () => {
    it('is not served in production without STATUS_TOKEN', async () => {
      const prod = await buildApp(
        db.sql,
        { NODE_ENV: 'production', DATABASE_URL: db.url },
        { tasksDir: STATUS_TASKS },
      );
      try {
        const res = await request(prod.callback).get('/status').set('X-Cron-Secret', SECRET);
        expect(res.status).to.equal(404);
        expect(res.body.code).to.equal('NOT_FOUND');
      } finally {
        await prod.close();
      }
    });

    it('without STATUS_TOKEN and without a credential shows nothing: 401 to a client, the login form to a browser', async () => {
      const plain = await buildApp(db.sql, {}, { tasksDir: STATUS_TASKS });
      try {
        const json = await request(plain.callback).get('/status');
        expect(json.status).to.equal(401);
        expect(json.body).to.deep.include({ status: 'error', code: 'UNAUTHORIZED' });
        const page = await request(plain.callback).get('/status').set('Accept', HTML);
        expect(page.status).to.equal(200);
        expect(page.text).to.include('<form class="login" method="post" action="/status/login">');
        expect(page.text).not.to.include('report_hourly');
        const run = await request(plain.callback).get('/status/runs/not-a-run').set('Accept', HTML);
        expect(run.status).to.equal(200);
        expect(run.text).to.include('action="/status/login"');
        // The cron secret still signs in, as the write credential.
        const secret = await request(plain.callback).get('/status').set('Authorization', `Bearer ${SECRET}`);
        expect(secret.status).to.equal(200);
        expect(secret.text).to.include('report_hourly');
      } finally {
        await plain.close();
      }
    });

    it('answers every page with no-store, the strict CSP and no framing, refusals included', async () => {
      for (const res of [
        await request(app.callback).get('/status').set('Authorization', `Bearer ${STATUS_TOKEN}`),
        await request(app.callback).get('/status').set('Accept', HTML),
        await request(app.callback).get('/status').set('Authorization', 'Bearer wrong-token-0123456789'),
        await request(app.callback).get('/status/nothing-here').set('Accept', HTML),
      ]) {
        expect(res.headers['cache-control']).to.equal('no-store');
        expect(res.headers['content-security-policy']).to.equal(CONTENT_SECURITY_POLICY);
        expect(res.headers['x-frame-options']).to.equal('DENY');
        expect(res.headers['x-content-type-options']).to.equal('nosniff');
      }
      expect(CONTENT_SECURITY_POLICY).to.match(
        /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/,
      );
    });

    it('leaves every other route as it was: no status headers; /status/ is /status', async () => {
      const health = await request(app.callback).get('/healthz');
      expect(health.headers['content-security-policy']).to.equal(undefined);
      const cron = await request(app.callback).get('/cron').set('X-Cron-Secret', SECRET);
      expect(cron.status).to.equal(200);
      expect(cron.headers['content-security-policy']).to.equal(undefined);
      const slash = await request(app.callback)
        .get('/status/')
        .set('Authorization', `Bearer ${STATUS_TOKEN}`);
      expect(slash.status).to.equal(200);
      expect(slash.text).to.include('report_hourly');
    });

    it('lets STATUS_TOKEN read every task, with no control on the page', async () => {
      await trigger('report_hourly', { rows: 7 }).expect(200);
      const res = await request(app.callback).get('/status').set('Authorization', `Bearer ${STATUS_TOKEN}`);
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.match(/^text\/html/);
      expect(res.text).to.include('report_hourly').and.to.include('slow').and.to.include('broken');
      expect(res.text).to.include('Every hour (UTC)').and.to.include('<code>0 * * * *</code>');
      // jsonb keeps keys in its own order.
      expect(res.text).to.include('batches 1 · deleted 7');
      expect(res.text).to.include('read-only');
      expect(res.text).not.to.match(/action="\/status\/(tasks|runs)\//);
      expect(res.text).not.to.include('<script');
    });

    it('refuses a wrong token, a wrong secret and an ambiguous pair: 401, logged with the reason', async () => {
      for (const set of [
        { Authorization: 'Bearer not-the-status-token-000' },
        { 'X-Cron-Secret': 'not-the-secret' },
        { 'X-Cron-Secret': SECRET, Authorization: 'Bearer not-the-status-token-000' },
      ]) {
        const res = await request(app.callback).get('/status').set(set);
        expect(res.status).to.equal(401);
        expect(res.body.code).to.equal('UNAUTHORIZED');
        expect(res.text).not.to.include('report_hourly');
      }
      const refused = app.logs.lines().filter((l) => l.msg === 'request refused' && l.path === '/status');
      expect(refused.map((l) => l.refused)).to.include('wrong status token or secret');
      expect(app.logs.text).not.to.include(SECRET);
    });
  });

  describe('login form and session cookie', () => {
    it('sets a signed HttpOnly SameSite=Strict cookie on /status for 8 hours, and redirects 303', async () => {
      const res = await request(app.callback)
        .post('/status/login')
        .type('form')
        .send({ token: STATUS_TOKEN });
      expect(res.status).to.equal(303);
      const line = sessionCookieLine(res);
      expect(line)
        .to.match(/; path=\/status/i)
        .and.to.match(/; httponly/i)
        .and.to.match(/; samesite=strict/i);
      expect(line).not.to.match(/; secure/i);
      const expires = Date.parse(/expires=([^;]+)/i.exec(line)![1]!);
      expect(expires - Date.now()).to.be.within(8 * 3600_000 - 60_000, 8 * 3600_000 + 1000);
      expect(line).not.to.include(STATUS_TOKEN);
    });

    it('marks the cookie Secure behind an https proxy', async () => {
      const proxied = await buildApp(db.sql, { STATUS_TOKEN, TRUST_PROXY: '1' }, { tasksDir: STATUS_TASKS });
      try {
        const res = await request(proxied.callback)
          .post('/status/login')
          .set('X-Forwarded-Proto', 'https')
          .type('form')
          .send({ token: STATUS_TOKEN });
        expect(res.status).to.equal(303);
        expect(String(res.headers['set-cookie'])).to.match(/; secure/i);
      } finally {
        await proxied.close();
      }
    });

    it('ends the session at Log out on every replica: a copy of the cookie is refused after, controls included', async () => {
      const replica = await buildApp(
        db.sql,
        { STATUS_TOKEN, CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET, AUTH_FAILURE_LIMIT: '1000' },
        { tasksDir: STATUS_TASKS },
      );
      try {
        const { cookie, page } = await login(SECRET);
        expect(page).to.include('action="/status/logout"');
        const copy = await request(replica.callback).get('/status').set('Accept', HTML).set('Cookie', cookie);
        expect(copy.status).to.equal(200);
        expect(copy.text).to.include('report_hourly');
        const out = await request(app.callback)
          .post('/status/logout')
          .set('Cookie', cookie)
          .set('Origin', 'http://status.example')
          .set('Host', 'status.example')
          .type('form')
          .send({ csrf: csrfOf(page) });
        expect(out.status).to.equal(303);
        expect(sessionCookieLine(out))
          .to.match(/^taskgate_status=;/)
          .and.to.match(/expires=Thu, 01 Jan 1970/i);
        for (const [where, callback] of [
          ['this replica', app.callback],
          ['another replica', replica.callback],
        ] as const) {
          const again = await request(callback).get('/status').set('Accept', HTML).set('Cookie', cookie);
          expect(again.status, where).to.equal(200);
          expect(again.text, where).to.include('Your session has ended').and.not.to.include('report_hourly');
          const json = await request(callback).get('/status').set('Cookie', cookie);
          expect(json.status, where).to.equal(401);
          const control = await request(callback)
            .post('/status/tasks/report_hourly/pause')
            .set('Cookie', cookie)
            .type('form')
            .send({ csrf: csrfOf(page), reason: 'with a copied cookie' });
          expect(control.status, where).to.equal(401);
        }
        expect(await query('select * from taskgate.task_pause')).to.deep.equal([]);
      } finally {
        await replica.close();
      }
    });

    it('marks the cookie Secure in production, even when the proxy in front is not trusted (TRUST_PROXY=0)', async () => {
      const prod = await buildApp(
        db.sql,
        { NODE_ENV: 'production', DATABASE_URL: db.url, STATUS_TOKEN },
        { tasksDir: STATUS_TASKS },
      );
      try {
        const res = await request(prod.callback)
          .post('/status/login')
          .type('form')
          .send({ token: STATUS_TOKEN });
        expect(res.status).to.equal(303);
        expect(sessionCookieLine(res)).to.match(/; secure/i);
        const out = await request(prod.callback).post('/status/logout').set('Cookie', sessionCookie(res));
        expect(sessionCookieLine(out)).to.match(/; secure/i);
      } finally {
        await prod.close();
      }
    });

    it('answers a wrong token with the form again, a message and 401', async () => {
      const res = await request(app.callback)
        .post('/status/login')
        .set('Accept', HTML)
        .type('form')
        .send({ token: 'definitely-not-it-12345' });
      expect(res.status).to.equal(401);
      expect(res.text).to.include('That token is not right.').and.to.include('action="/status/login"');
      expect(res.headers['set-cookie']).to.equal(undefined);
    });

    it('refuses a tampered cookie (401) and one whose role was rewritten', async () => {
      const { cookie } = await login(STATUS_TOKEN);
      const [name, value] = cookie.split('=') as [string, string];
      const [payload, mac] = value.split('.') as [string, string];
      const flipped = `${name}=${payload}.${mac.slice(0, -2)}${mac.endsWith('AA') ? 'BB' : 'AA'}`;
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      const promoted = `${name}=${Buffer.from(JSON.stringify({ ...claims, role: 'write' })).toString('base64url')}.${mac}`;
      for (const bad of [flipped, promoted, `${name}=garbage`]) {
        const res = await request(app.callback).get('/status').set('Cookie', bad);
        expect(res.status).to.equal(401);
        expect(res.text).not.to.include('report_hourly');
      }
      const refused = app.logs.lines().filter((l) => l.refused === 'tampered session cookie');
      expect(refused.length).to.be.at.least(3);
    });

    it('shows the login form again, with 200, once a session has expired', async () => {
      const old = new StatusAuth({
        secrets: app.config.secrets,
        statusToken: STATUS_TOKEN,
        limiter: new FailedAuthLimiter({ limit: 10, windowSeconds: 60 }),
        ended: null,
        secureCookie: false,
        now: () => Date.now() - 9 * 3600_000,
      });
      const res = await request(app.callback)
        .get('/status')
        .set('Accept', HTML)
        .set('Cookie', `${SESSION_COOKIE}=${old.issue('write').cookie}`);
      expect(res.status).to.equal(200);
      expect(res.text).to.include('Your session has ended').and.not.to.include('report_hourly');
    });
  });

  describe('controls', () => {
    it('refuses every control to the read-only token, by header or by session: 403 FORBIDDEN, nothing changed', async () => {
      const run = (await trigger('report_hourly').expect(200)).body.runId;
      const { cookie, page } = await login(STATUS_TOKEN);
      expect(page).not.to.include('action="/status/tasks/');
      const forms = [
        ['/status/tasks/report_hourly/pause', { reason: 'read-only tries' }],
        ['/status/tasks/report_hourly/resume', {}],
        [`/status/runs/${run}/cancel`, {}],
        [`/status/runs/${run}/rerun`, {}],
      ] as const;
      for (const [path, fields] of forms) {
        const byHeader = await request(app.callback)
          .post(path)
          .set('Authorization', `Bearer ${STATUS_TOKEN}`)
          .type('form')
          .send(fields);
        expect(byHeader.status, path).to.equal(403);
        expect(byHeader.body).to.deep.include({ status: 'error', code: 'FORBIDDEN' });
        const bySession = await request(app.callback)
          .post(path)
          .set('Accept', HTML)
          .set('Cookie', cookie)
          .type('form')
          .send(fields);
        expect(bySession.status, path).to.equal(403);
        expect(bySession.text).to.include('403 FORBIDDEN').and.to.include('can only read');
      }
      expect(await query('select * from taskgate.task_pause')).to.have.length(0);
      expect(await query('select * from taskgate.task_run where rerun_of = $1', [run])).to.have.length(0);
    });

    it('pauses and resumes a task from the operator’s session, with the page’s CSRF token', async () => {
      const { cookie, page } = await login(SECRET);
      const csrf = csrfOf(page);
      const paused = await request(app.callback)
        .post('/status/tasks/report_hourly/pause')
        .set('Cookie', cookie)
        .set('Sec-Fetch-Site', 'same-origin')
        .type('form')
        .send({ csrf, reason: 'upstream maintenance', for: '8' });
      expect(paused.status, paused.text).to.equal(303);
      expect(paused.headers.location).to.equal('/status#task-report_hourly');
      const [row] = await query('select reason, paused_by, until from taskgate.task_pause');
      expect(row).to.include({ reason: 'upstream maintenance', paused_by: 'http' });
      expect(new Date(row!.until as string).getTime() - Date.now()).to.be.within(
        7.9 * 3600_000,
        8 * 3600_000,
      );
      const shown = await request(app.callback).get('/status').set('Cookie', cookie);
      expect(shown.text).to.include('upstream maintenance').and.to.include('s-paused');
      const resumed = await request(app.callback)
        .post('/status/tasks/report_hourly/resume')
        .set('Cookie', cookie)
        .type('form')
        .send({ csrf });
      expect(resumed.status).to.equal(303);
      expect(await query('select * from taskgate.task_pause where resumed_at is null')).to.have.length(0);
      const history = await request(app.callback).get('/status').set('Cookie', cookie);
      expect(history.text).to.include('Pause history (last 2)');
      expect(history.text).to.match(/<b>resumed<\/b> by http<\/li>/);
      expect(history.text).to.match(/<b>paused<\/b> until [^<]+ by http: upstream maintenance<\/li>/);
    });

    it('refuses a session’s form without its CSRF token, with another session’s, or from another site', async () => {
      const mine = await login(SECRET);
      const other = await login(PREVIOUS_SECRET);
      const attempts: [Record<string, string>, Record<string, string>][] = [
        [{}, { reason: 'no token' }],
        [{}, { reason: 'wrong token', csrf: 'x'.repeat(43) }],
        [{}, { reason: 'other session', csrf: csrfOf(other.page) }],
        [{ 'Sec-Fetch-Site': 'cross-site' }, { reason: 'cross site', csrf: csrfOf(mine.page) }],
        [{ Origin: 'https://evil.example' }, { reason: 'other origin', csrf: csrfOf(mine.page) }],
      ];
      for (const [headers, fields] of attempts) {
        const res = await request(app.callback)
          .post('/status/tasks/report_hourly/pause')
          .set('Cookie', mine.cookie)
          .set(headers)
          .type('form')
          .send(fields);
        expect(res.status, fields.reason).to.equal(403);
        expect(res.body.code).to.equal('FORBIDDEN');
      }
      expect(await query('select * from taskgate.task_pause')).to.have.length(0);
      const reasons = app.logs.lines().map((l) => l.refused);
      expect(reasons).to.include('bad CSRF token').and.to.include('form from another origin');
    });

    it('cancels a running run and reruns a finished one, through the same controls as /cron', async () => {
      const { cookie, page } = await login(SECRET);
      const csrf = csrfOf(page);
      const started = await trigger('slow', { ms: 30_000 }).set('Prefer', 'respond-async').expect(202);
      const runId = started.body.runId;
      const running = await request(app.callback).get('/status').set('Cookie', cookie);
      expect(running.text).to.include('<meta http-equiv="refresh" content="5">');
      expect(running.text).to.include(`action="/status/runs/${runId}/cancel"`);
      const cancel = await request(app.callback)
        .post(`/status/runs/${runId}/cancel`)
        .set('Cookie', cookie)
        .type('form')
        .send({ csrf, reason: 'stuck' });
      expect(cancel.status).to.equal(303);
      expect((await settled(runId))!.status).to.equal('cancelled');
      const idle = await request(app.callback).get('/status').set('Cookie', cookie);
      expect(idle.text).not.to.include('http-equiv="refresh"');

      const done = (await trigger('report_hourly', { rows: 2 }).expect(200)).body.runId;
      const rerun = await request(app.callback)
        .post(`/status/runs/${done}/rerun`)
        .set('Cookie', cookie)
        .type('form')
        .send({ csrf, reason: 'once more' });
      expect(rerun.status, rerun.text).to.equal(303);
      const [again] = await query(
        'select id, rerun_reason, params from taskgate.task_run where rerun_of = $1',
        [done],
      );
      expect(again).to.deep.include({ rerun_reason: 'once more', params: { rows: 2 } });
      expect(rerun.headers.location).to.equal(`/status/runs/${again!.id}`);
    });

    it('tells a control that fails in the one error model, as a page or as JSON', async () => {
      const { cookie, page } = await login(SECRET);
      const done = (await trigger('report_hourly').expect(200)).body.runId;
      const asPage = await request(app.callback)
        .post(`/status/runs/${done}/cancel`)
        .set('Accept', HTML)
        .set('Cookie', cookie)
        .type('form')
        .send({ csrf: csrfOf(page) });
      expect(asPage.status).to.equal(409);
      expect(asPage.text).to.include('409 RUN_ENDED');
      const asJson = await request(app.callback)
        .post('/status/tasks/report_hourly/pause')
        .set('X-Cron-Secret', SECRET)
        .type('form')
        .send({ reason: '' });
      expect(asJson.status).to.equal(400);
      expect(asJson.body).to.deep.include({ status: 'error', code: 'BAD_REQUEST', field: 'reason' });
    });
  });

  describe('what the page tells of each task', () => {
    it('shows every count a run returned (all of the flush’s), labels a task whose last run failed as failed, and counts the failing tasks', async () => {
      await trigger('counts_daily').expect(200);
      expect((await trigger('broken')).status).to.equal(500);
      const page = (await request(app.callback).get('/status').set('Authorization', `Bearer ${STATUS_TOKEN}`))
        .text;
      const counts = /<section class="task" id="task-counts_daily"[\s\S]*?<\/section>/.exec(page)![0];
      for (const shown of [
        'deletedOutstanding 104,000',
        'deletedBlacklisted 2,000',
        'batches 21',
        'retries 0',
        'largestBatchSize 10,000',
        'complete',
      ]) {
        expect(counts).to.include(shown);
      }
      expect(page).to.match(/<section class="task" id="task-broken" data-state="failed">/);
      const failing = [...page.matchAll(/<section class="task" id="task-[^"]+" data-state="failed">/g)]
        .length;
      expect(failing).to.be.at.least(1);
      expect(page).to.include(`<li><span class="badge s-failed">✗ failed</span> <b>${failing}</b></li>`);
    });
  });

  describe('what the page never shows', () => {
    it('redacts secret-looking params and log fields on a run’s page', async () => {
      const res = await trigger('report_hourly', {
        rows: 1,
        password: 'hunter2-very-secret',
        client: { secret: 'nested-secret-value' },
      }).expect(200);
      const page = await request(app.callback)
        .get(`/status/runs/${res.body.runId}`)
        .set('Authorization', `Bearer ${STATUS_TOKEN}`);
      expect(page.status).to.equal(200);
      expect(page.text).to.include('cleaning up').and.to.include('[redacted]');
      expect(page.text).not.to.include('hunter2-very-secret').and.not.to.include('nested-secret-value');
      const list = await request(app.callback).get('/status').set('Authorization', `Bearer ${STATUS_TOKEN}`);
      expect(list.text).not.to.include('hunter2-very-secret');
    });

    it('redacts values shaped like credentials whatever their field is called: JWTs, bearer tokens, random keys, the credentials themselves', async () => {
      const jwt =
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImp0aSI6ImFiYyJ9.Zm9vYmFyYmF6cXV4cXV1eA';
      const key = 'c2f1e9a07b3d4e5f8a9b0c1d2e3f4a5b';
      const runId = '0b5e9f3c-2a7d-4e1b-8c6f-9d4a3b2e1f07';
      const note = `refresh ${jwt}, header Bearer ${key}, token ${STATUS_TOKEN}, constraint token_blacklist_token_id_3cc7fe56_fk of run ${runId}`;
      const res = await trigger('report_hourly', { rows: 1, note }).expect(200);
      const page = await request(app.callback)
        .get(`/status/runs/${res.body.runId}`)
        .set('Authorization', `Bearer ${STATUS_TOKEN}`);
      expect(page.status).to.equal(200);
      for (const shown of [jwt, key, STATUS_TOKEN]) expect(page.text).not.to.include(shown);
      expect(page.text).to.include('noted: refresh [redacted], header Bearer [redacted], token [redacted]');
      // What only looks long stays: a constraint's name, a run id.
      expect(page.text).to.include('token_blacklist_token_id_3cc7fe56_fk').and.to.include(runId);
    });

    it('tells a database error in plain words, never PostgreSQL’s, nor the connection string', async () => {
      const failed = await trigger('broken');
      expect(failed.status).to.equal(500);
      const runId =
        failed.body.runId ?? (await query("select id from taskgate.task_run where task = 'broken'"))[0]!.id;
      for (const path of ['/status', `/status/runs/${runId}`]) {
        const page = await request(app.callback).get(path).set('Authorization', `Bearer ${STATUS_TOKEN}`);
        expect(page.status).to.equal(200);
        expect(page.text).to.include('a database error stopped the run');
        expect(page.text).not.to.include('no_such_table_here');
        expect(page.text).not.to.include(db.url).and.not.to.include(new URL(db.url).host);
        expect(page.text).not.to.include(SECRET).and.not.to.include(STATUS_TOKEN);
      }
    });
  });

  describe('brute force', () => {
    it('counts refusals at /status in the /cron limiter: one budget per address', async () => {
      const limited = await buildApp(
        db.sql,
        { STATUS_TOKEN, AUTH_FAILURE_LIMIT: '3' },
        { tasksDir: STATUS_TASKS },
      );
      try {
        for (let i = 0; i < 3; i++) {
          const res = await request(limited.callback)
            .post('/status/login')
            .type('form')
            .send({ token: `nope-${i}` });
          expect(res.status).to.equal(401);
        }
        const cron = await request(limited.callback)
          .post('/cron/report_hourly')
          .set('X-Cron-Secret', 'wrong');
        expect(cron.status).to.equal(429);
        const status = await request(limited.callback)
          .get('/status')
          .set('Authorization', 'Bearer wrong-token-xyz1');
        expect(status.status).to.equal(429);
        expect(status.headers['retry-after']).to.match(/^\d+$/);
        // A good credential still gets in from a blocked address.
        const good = await request(limited.callback)
          .get('/status')
          .set('Authorization', `Bearer ${STATUS_TOKEN}`);
        expect(good.status).to.equal(200);
        const metrics = await limited.metrics.text();
        expect(metrics).to.match(
          /taskgate_http_requests_total\{route="\/status\/login",method="POST",status="401"\} 3/,
        );
      } finally {
        await limited.close();
      }
    });
  });
});
