import { expect } from 'chai';
import request from 'supertest';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { Metrics } from '../src/monitoring/metrics.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';

/** A METRICS_TOKEN as `openssl rand -hex 16` makes one. */
const TOKEN = 'b0f7e4ee132ff63e963a5140975a9507';

/** The value of one sample line, e.g. `taskgate_runs_total{task="noop",status="succeeded"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('HTTP: GET /metrics', () => {
  let db: TestDatabase;
  let app: TestApp;

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql);
    const trigger = (task: string) =>
      request(app.callback).post(`/cron/${task}`).set('X-Cron-Secret', SECRET);
    await trigger('noop');
    await trigger('noop');
    await trigger('fail');
    await request(app.callback).post('/cron/noop').set('X-Cron-Secret', 'wrong');
  });
  after(async () => {
    await app.close();
    await db.drop();
  });

  it('counts runs by task and status, and their durations, in Prometheus text', async () => {
    const res = await request(app.callback).get('/metrics');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
    expect(sample(res.text, 'taskgate_runs_total{task="noop",status="succeeded"}')).to.equal(2);
    expect(sample(res.text, 'taskgate_runs_total{task="fail",status="failed"}')).to.equal(1);
    expect(sample(res.text, 'taskgate_run_duration_seconds_count{task="noop",status="succeeded"}')).to.equal(
      2,
    );
  });

  it('reports when each task last succeeded, read from the run history', async () => {
    const res = await request(app.callback).get('/metrics');
    const lastSuccess = sample(res.text, 'taskgate_last_success_timestamp_seconds{task="noop"}');
    expect(lastSuccess).to.be.within(Date.now() / 1000 - 60, Date.now() / 1000 + 1);
    expect(sample(res.text, 'taskgate_last_success_timestamp_seconds{task="fail"}')).to.equal(undefined);
  });

  it('reports a scheduled task that missed its run as overdue, and the others as not', async () => {
    // echo runs daily at 04:15: a last success three days ago means a missed run.
    await db.orm.em.getConnection().execute(
      `insert into taskgate.task_run (task, trigger, status, started_at, finished_at, duration_ms)
       values ('echo', 'cli', 'succeeded', now() - interval '3 days', now() - interval '3 days', 1)`,
    );
    const res = await request(app.callback).get('/metrics');
    expect(sample(res.text, 'taskgate_task_overdue{task="echo"}')).to.equal(1);
    expect(sample(res.text, 'taskgate_task_overdue{task="noop"}')).to.equal(0);
  });

  it('counts HTTP requests by route pattern, method and status', async () => {
    const res = await request(app.callback).get('/metrics');
    const route = 'taskgate_http_requests_total{route="/cron/:task",method="POST"';
    expect(sample(res.text, `${route},status="200"}`)).to.equal(2);
    expect(sample(res.text, `${route},status="500"}`)).to.equal(1);
    // Refused from its headers, before any route was looked up: counted under a route of its own.
    expect(sample(res.text, `${route},status="401"}`)).to.equal(undefined);
    const refused = 'taskgate_http_requests_total{route="refused",method="POST",status="401"}';
    expect(sample(res.text, refused)).to.equal(1);
  });

  it('asks for METRICS_TOKEN as a bearer token when it is set', async () => {
    const guarded = await buildApp(db.sql, { METRICS_TOKEN: TOKEN });
    try {
      const none = await request(guarded.callback).get('/metrics');
      expect(none.status).to.equal(401);
      expect(none.body.code).to.equal('UNAUTHORIZED');
      const wrong = await request(guarded.callback).get('/metrics').set('Authorization', `Bearer ${TOKEN}x`);
      expect(wrong.status).to.equal(401);
      const secret = await request(guarded.callback).get('/metrics').set('Authorization', `Bearer ${SECRET}`);
      expect(secret.status).to.equal(401);
      const ok = await request(guarded.callback).get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
      expect(ok.status).to.equal(200);
      expect(ok.text).to.contain('taskgate_runs_total');
    } finally {
      await guarded.close();
    }
  });

  it('reads the run history once for any number of scrapes within a few seconds', async () => {
    let reads = 0;
    const metrics = new Metrics({
      tasks: async () => {
        reads++;
        return [];
      },
    });
    const logger = createLogger({ level: 'silent', pretty: false });
    const callback = createApp({ db: db.sql, logger, metrics }).callback();
    for (let i = 0; i < 20; i++) expect((await request(callback).get('/metrics')).status).to.equal(200);
    expect(reads).to.equal(1);
  });

  it('in production, serves /metrics only behind METRICS_TOKEN', async () => {
    const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://unused.example/db' };
    const open = await buildApp(db.sql, production);
    const guarded = await buildApp(db.sql, { ...production, METRICS_TOKEN: TOKEN });
    try {
      const none = await request(open.callback).get('/metrics');
      expect(none.status).to.equal(404);
      expect(none.body.code).to.equal('NOT_FOUND');
      expect(none.text).not.to.contain('taskgate_');
      expect((await request(guarded.callback).get('/metrics')).status).to.equal(401);
      const ok = await request(guarded.callback).get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
      expect(ok.status).to.equal(200);
      expect(ok.text).to.contain('taskgate_runs_total');
    } finally {
      await open.close();
      await guarded.close();
    }
  });

  it('still answers, without per-task gauges, when the run history cannot be read', async () => {
    const metrics = new Metrics({ tasks: () => Promise.reject(new Error('database down')) });
    const logger = createLogger({ level: 'silent', pretty: false });
    const res = await request(createApp({ db: db.sql, logger, metrics }).callback()).get('/metrics');
    expect(res.status).to.equal(200);
    expect(res.text).to.contain('# TYPE taskgate_last_success_timestamp_seconds gauge');
    expect(res.text).not.to.match(/^taskgate_last_success_timestamp_seconds\{/m);
  });
});
