import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { type Browser, chromium, type Page } from 'playwright-core';
import request from 'supertest';
import { loadRegistry } from '../src/core/registry.js';
import { requireChromium } from './support/chromium.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';

const SUITE = 'status page in a real browser';
const TASKS = fileURLToPath(new URL('../tasks/', import.meta.url));
const DOCS = new URL('../docs/', import.meta.url);
const STATUS_TOKEN = '77c3f32dda9c0add77bfedb431363a32';

/**
 * The status page as a person sees it: Debian's chromium, headless, driven by playwright-core,
 * against the real app on a real database, with the real tasks. UPDATE_SCREENSHOT=1 writes
 * the status page's screenshots (docs/status.png, docs/status-375.png); otherwise the tree is left as it is.
 */
describe(SUITE, function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let app: TestApp;
  let server: Server;
  let base: string;
  let browser: Browser;
  let page: Page;
  let triggeredRun: string;
  const problems: string[] = [];

  before(async function () {
    const executablePath = requireChromium(this, SUITE);
    db = await createTestDatabase();
    app = await buildApp(db.sql, { STATUS_TOKEN }, { tasksDir: TASKS });
    server = createServer(app.callback);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // A history: the flush ran daily until three days ago (so it is overdue now), one night it failed.
    await db.sql.query(
      `insert into taskgate.task_run (task, trigger, status, params, result, error, started_at, finished_at, duration_ms)
       select 'flushexpiredtokens_daily', 'github', case when d = 6 then 'failed' else 'succeeded' end, '{}',
              case when d = 6 then null else jsonb_build_object('deleted', 40 * d + 17, 'batches', 1 + d / 4) end,
              case when d = 6 then 'simplejwt''s token tables are missing' end,
              date_trunc('day', now()) - make_interval(days => d) + interval '41 minutes',
              date_trunc('day', now()) - make_interval(days => d) + interval '41 minutes' + make_interval(secs => 0.3 + d * 0.21),
              300 + d * 210
         from generate_series(3, 16) as d`,
    );
    await db.sql.query(
      `insert into taskgate.task_run (task, trigger, status, params, result, started_at, finished_at, duration_ms)
       select 'prunetaskruns_weekly', 'github', 'succeeded', '{"retentionDays": 90}',
              jsonb_build_object('deleted', 120 * w, 'batches', w), now() - make_interval(days => 7 * w),
              now() - make_interval(days => 7 * w) + interval '2 seconds', 900 + 150 * w
         from generate_series(1, 6) as w`,
    );
    // A run triggered now, through the real endpoint, then the task paused by an operator.
    const run = await request(app.callback)
      .post('/cron/prunetaskruns_weekly')
      .set('X-Cron-Secret', SECRET)
      .send({ retentionDays: 30 });
    expect(run.status, JSON.stringify(run.body)).to.equal(200);
    triggeredRun = run.body.runId;
    await request(app.callback)
      .post('/cron/prunetaskruns_weekly/pause')
      .set('X-Cron-Secret', SECRET)
      .send({ reason: 'retention under review' })
      .expect(200);

    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await app?.close();
    await db?.drop();
  });

  it('signs in through the form (a wrong token gets it back with a message), with no console error, and shows both tasks and the run just triggered', async () => {
    const login = await page.goto(`${base}/status`);
    expect(login?.status()).to.equal(200);
    expect(problems).to.deep.equal([]);
    // A wrong token: the form again, with a message (its 401 is the one console line expected).
    await page.fill('#token', 'not-the-token-at-all');
    await page.click('button[type=submit]');
    expect(await page.locator('.login .error').textContent()).to.equal('That token is not right.');
    expect(problems).to.have.length(1);
    expect(problems[0]).to.match(/status of 401/);
    problems.length = 0;
    await page.fill('#token', SECRET);
    await Promise.all([page.waitForURL(`${base}/status`), page.click('button[type=submit]')]);
    expect(await page.locator('section.task h2').allTextContents()).to.deep.equal(
      (await loadRegistry(TASKS)).names(),
    );
    expect(await page.locator(`a[href="/status/runs/${triggeredRun}"]`).count()).to.be.at.least(1);
    expect(await page.locator('#task-flushexpiredtokens_daily').textContent()).to.include('At 00:00 (UTC)');
    expect(problems).to.deep.equal([]);
  });

  it('shows the overdue task and the paused one, in words and not in colour alone', async () => {
    const flush = page.locator('#task-flushexpiredtokens_daily');
    expect(await flush.getAttribute('data-state')).to.equal('overdue');
    expect(await flush.locator('.notice').textContent()).to.match(/^Overdue: a run was due at/);
    const prune = page.locator('#task-prunetaskruns_weekly');
    expect(await prune.getAttribute('data-state')).to.equal('paused');
    expect(await prune.locator('.notice').textContent()).to.include('retention under review');
    expect(await prune.locator('button', { hasText: 'Resume' }).count()).to.equal(1);
    expect(await page.locator('meta[http-equiv="refresh"]').count()).to.equal(0);
    await screenshot('status.png');
  });

  it('opens a run’s log page from its link, with no console error', async () => {
    await page.click(`a[href="/status/runs/${triggeredRun}"] >> nth=0`);
    await page.waitForURL(`${base}/status/runs/${triggeredRun}`);
    const text = await page.locator('main').textContent();
    expect(text).to.include('prunetaskruns_weekly').and.to.include('retentionDays');
    expect(await page.locator('td.lvl').count()).to.be.at.least(1);
    expect(problems).to.deep.equal([]);
    await page.goBack();
  });

  it('fits a 375 px wide screen without horizontal scrolling', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    for (const path of ['/status', `/status/runs/${triggeredRun}`]) {
      await page.goto(`${base}${path}`);
      const width = Number(await page.evaluate('document.documentElement.scrollWidth'));
      expect(width, path).to.be.at.most(375);
    }
    await page.goto(`${base}/status`);
    await screenshot('status-375.png');
    expect(problems).to.deep.equal([]);
  });

  async function screenshot(name: string): Promise<void> {
    const png = await page.screenshot({ fullPage: true });
    expect(png.length).to.be.above(1000);
    if (process.env.UPDATE_SCREENSHOT === '1') await writeFile(new URL(name, DOCS), png);
  }
});

describe('status page browser suite without chromium', () => {
  const skipped = new Error('skipped');
  const context = {
    skip(): never {
      throw skipped;
    },
  };
  let ci: string | undefined;
  beforeEach(() => {
    ci = process.env.CI;
  });
  afterEach(() => {
    if (ci === undefined) delete process.env.CI;
    else process.env.CI = ci;
  });

  it('skips loudly, naming the suite and the reason, outside CI', () => {
    delete process.env.CI;
    const warned: unknown[][] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => warned.push(args);
    try {
      expect(() => requireChromium(context, SUITE, null)).to.throw(skipped);
    } finally {
      console.warn = warn;
    }
    expect(String(warned[0]?.[0]))
      .to.include(`SKIPPED: ${SUITE}`)
      .and.to.include('chromium is not installed');
  });

  it('fails on CI, which installs chromium', () => {
    process.env.CI = 'true';
    expect(() => requireChromium(context, SUITE, null)).to.throw(
      /chromium is not installed: \.ci\/run installs it/,
    );
  });

  it('hands the binary over when it is there', () => {
    expect(requireChromium(context, SUITE, '/usr/bin/chromium')).to.equal('/usr/bin/chromium');
  });
});
