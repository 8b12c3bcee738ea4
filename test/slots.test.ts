import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Cron } from 'croner';
import request from 'supertest';
import { z } from 'zod';
import { loadConfig } from '../src/config.js';
import { InternalClock } from '../src/core/clock.js';
import { loadRegistry, type Registry, validateTask } from '../src/core/registry.js';
import { Runner } from '../src/core/runner.js';
import { Schedule } from '../src/core/schedule.js';
import { databaseNow, earlyWindowMs, recentSlotsOf, slotAt, slotSpanAt } from '../src/core/slots.js';
import { localTime } from '../src/core/zone.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventually } from './support/eventually.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';
import { LogCapture } from './support/logs.js';
import { QSTASH_CURRENT_KEY, QSTASH_NEXT_KEY, qstashToken } from './support/qstash.js';
import { TEST_SECRET } from './support/secrets.js';

const SLOT_TASKS = fileURLToPath(new URL('./fixtures/tasks-slots/', import.meta.url));
const at = (iso: string) => new Date(iso);
const iso = (dates: (Date | null)[]) => dates.map((d) => d?.toISOString() ?? null);

describe('schedules in a time zone', () => {
  it('run once at the transition on a day DST skips their time (Europe/Berlin, 2026-03-29)', () => {
    const half = new Schedule('30 2 * * *', 'Europe/Berlin');
    expect(iso(half.upcoming(at('2026-03-27T12:00:00Z'), 3))).to.deep.equal([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST, the transition
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
    // Two moments in the gap (02:00 and 02:30) are one run at the transition, not two, not none.
    const both = new Schedule('0,30 2 * * *', 'Europe/Berlin');
    expect(iso(both.upcoming(at('2026-03-28T23:00:00Z'), 2))).to.deep.equal([
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:00:00.000Z',
    ]);
  });

  it('run once on a day DST repeats their time (America/New_York, 2026-11-01), at its first occurrence', () => {
    const schedule = new Schedule('0,30 1 * * *', 'America/New_York');
    expect(iso(schedule.upcoming(at('2026-11-01T04:00:00Z'), 4))).to.deep.equal([
      '2026-11-01T05:00:00.000Z', // 01:00 EDT
      '2026-11-01T05:30:00.000Z', // 01:30 EDT; 01:00 and 01:30 EST (06:00Z, 06:30Z) do not run again
      '2026-11-02T06:00:00.000Z', // 01:00 EST
      '2026-11-02T06:30:00.000Z',
    ]);
    // Seen from inside the repeated hour, the latest slot is still the first 01:30.
    expect(schedule.previous(at('2026-11-01T06:45:00Z'))?.toISOString()).to.equal('2026-11-01T05:30:00.000Z');
  });

  it('map a fire to its own slot across both transitions, whatever a test clock reads', () => {
    const berlin = new Schedule('30 2 * * *', 'Europe/Berlin');
    expect(slotAt(berlin, at('2026-03-29T00:59:55Z'))?.toISOString(), '5 s early').to.equal(
      '2026-03-29T01:00:00.000Z',
    );
    expect(slotAt(berlin, at('2026-03-29T04:00:00Z'))?.toISOString(), '3 h late').to.equal(
      '2026-03-29T01:00:00.000Z',
    );
    const ny = new Schedule('30 1 * * *', 'America/New_York');
    // The repeated 01:30 (EST, 06:30Z) is not a slot: a fire then is for the first one.
    expect(slotAt(ny, at('2026-11-01T06:30:00Z'))?.toISOString()).to.equal('2026-11-01T05:30:00.000Z');
  });

  it('give GitHub UTC crons that fire at every slot, DST days included', () => {
    // The weeks around 2026's transitions in Europe (03-29, 10-25), the US (03-08, 11-01) and
    // Australia (04-05, 10-04), where a wrong shift would show.
    const spans = [
      [at('2026-03-01T00:00:00Z'), at('2026-04-15T00:00:00Z')],
      [at('2026-09-25T00:00:00Z'), at('2026-11-10T00:00:00Z')],
    ] as const;
    for (const [expression, zone] of [
      ['30 2 * * *', 'Europe/Berlin'],
      ['0 1 * * MON', 'Europe/Berlin'],
      ['0,30 1 * * *', 'America/New_York'],
      ['0 2 * * *', 'America/New_York'],
      ['45 23 * * 1-5', 'America/New_York'],
      ['0 3 1 * *', 'Asia/Kolkata'],
      ['*/20 9-17 * * *', 'Australia/Adelaide'],
    ] as const) {
      const schedule = new Schedule(expression, zone);
      const crons = schedule
        .utcExpressions()
        .map((utc) => new Cron(utc, { timezone: 'UTC', mode: '5-part', paused: true }));
      let slots = 0;
      for (const [from, to] of spans) {
        for (let slot = schedule.next(from); slot && slot < to; slot = schedule.next(slot)) {
          slots++;
          expect(
            crons.some((cron) => cron.match(slot!)),
            `${expression} in ${zone}: no UTC cron fires at ${slot.toISOString()}`,
          ).to.equal(true);
        }
      }
      expect(slots, expression).to.be.greaterThan(2);
    }
    expect(new Schedule('0 0 * * *').utcExpressions()).to.deep.equal(['0 0 * * *']);
  });

  it('are told in their zone and in UTC', () => {
    expect(localTime(at('2026-12-08T02:00:00Z'), 'Europe/Berlin')).to.equal('2026-12-08T03:00:00+01:00');
    expect(localTime(at('2026-12-08T02:00:00Z'), 'Asia/Kolkata')).to.equal('2026-12-08T07:30:00+05:30');
    expect(localTime(at('2026-12-08T02:00:00Z'), 'UTC')).to.equal('2026-12-08T02:00:00Z');
  });

  it('refuse a time zone that is not an IANA name, naming the task file', () => {
    expect(() =>
      validateTask('zoned.ts', {
        name: 'zoned',
        description: 'Runs at three.',
        schedule: '0 3 * * *',
        timeZone: 'Berlin',
        params: z.strictObject({}),
        run: async () => ({}),
      }),
    ).to.throw(/^tasks\/zoned\.ts: schedule time zone "Berlin" is not an IANA time zone/);
  });
});

describe('slots: which scheduled moment a fire is for', () => {
  const daily = new Schedule('0 0 * * *');
  const minutely = new Schedule('* * * * *');

  it('takes a fire a few seconds early as its slot, and a late one, hours late, as its own too', () => {
    expect(slotAt(daily, at('2026-12-07T23:59:55Z'))?.toISOString()).to.equal('2026-12-08T00:00:00.000Z');
    expect(slotAt(daily, at('2026-12-08T00:00:05Z'))?.toISOString()).to.equal('2026-12-08T00:00:00.000Z');
    expect(slotAt(daily, at('2026-12-08T05:00:00Z'))?.toISOString()).to.equal('2026-12-08T00:00:00.000Z');
    // Not a few seconds early: the day before's.
    expect(slotAt(daily, at('2026-12-07T23:00:00Z'))?.toISOString()).to.equal('2026-12-07T00:00:00.000Z');
  });

  it('fits the early window to the schedule: 5 minutes at most, half the gap between slots', () => {
    expect(earlyWindowMs(daily, at('2026-12-08T00:00:00Z'))).to.equal(5 * 60_000);
    expect(earlyWindowMs(minutely, at('2026-12-08T00:01:00Z'))).to.equal(30_000);
    expect(slotAt(minutely, at('2026-12-08T00:00:31Z'))?.toISOString()).to.equal('2026-12-08T00:01:00.000Z');
    expect(slotAt(minutely, at('2026-12-08T00:00:29Z'))?.toISOString()).to.equal('2026-12-08T00:00:00.000Z');
  });

  it('gives the span of fire times that are for one slot, exactly, DST days and repeated looks included', () => {
    // By the rule itself, without the span or its memo: the next moment when within its early window, else the latest.
    const byRule = (schedule: Schedule, now: Date) => {
      const next = schedule.next(now);
      if (next && next.getTime() - now.getTime() <= earlyWindowMs(schedule, next)) return next;
      return schedule.previous(now);
    };
    const schedules = [
      daily,
      minutely,
      new Schedule('*/7 * * * *'),
      new Schedule('30 2 * * *', 'Europe/Berlin'),
      new Schedule('0,30 1 * * *', 'America/New_York'),
    ];
    const starts = [at('2026-03-28T20:00:00Z'), at('2026-10-31T22:00:00Z'), at('2026-12-07T23:40:00Z')];
    for (const schedule of schedules) {
      for (const start of starts) {
        // Looks walking forward, then one far back, in steps that land on edges and between them.
        const looks = Array.from({ length: 120 }, (_, i) => new Date(start.getTime() + i * 97_000));
        for (const look of [...looks, start]) {
          const span = slotSpanAt(schedule, look)!;
          const label = `${schedule.expression} ${schedule.zone} at ${look.toISOString()}`;
          expect(span.slot.toISOString(), label).to.equal(byRule(schedule, look)?.toISOString());
          expect(byRule(schedule, span.from)?.toISOString(), `${label}: from`).to.equal(
            span.slot.toISOString(),
          );
          const last = new Date(span.until!.getTime() - 1);
          expect(byRule(schedule, last)?.toISOString(), `${label}: until`).to.equal(span.slot.toISOString());
          expect(byRule(schedule, span.until!)?.getTime(), `${label}: next`).to.be.above(span.slot.getTime());
          expect(byRule(schedule, new Date(span.from.getTime() - 1))?.getTime()).to.be.below(
            span.slot.getTime(),
          );
        }
      }
    }
  });
});

describe('slots on a real PostgreSQL', () => {
  let db: TestDatabase;
  let registry: Registry;
  const runners: Runner[] = [];
  const logs = new LogCapture();

  const replica = () => {
    const config = loadConfig({ NODE_ENV: 'test', CRON_SECRET_KEY: TEST_SECRET, RUN_LEASE_MS: '5000' });
    const logger = createLogger({ level: 'info', pretty: false, destination: logs });
    const runner = new Runner({ db: db.sql, registry, logger, config, pollMs: 20 });
    runners.push(runner);
    return runner;
  };
  const runsOf = async (task: string) =>
    (
      await db.sql.query<{ status: string; trigger: string; slot: Date | null; duplicate_fires: number }>(
        'select status, trigger, slot, duplicate_fires from taskgate.task_run where task = $1 order by started_at',
        [task],
      )
    ).rows;

  before(async () => {
    db = await createTestDatabase();
    registry = await loadRegistry(SLOT_TASKS);
  });
  afterEach(async () => {
    await db.sql.query('truncate taskgate.task_run cascade');
  });
  after(async () => {
    for (const runner of runners) await runner.close(0);
    await db.drop();
  });

  it('runs one slot once when three replicas and several schedulers fire it at once, counting the rest', async () => {
    const [a, b, c] = [replica(), replica(), replica()];
    const fires = [a, b, c, a, b, c].map((runner, i) =>
      runner.start({ task: 'minutely', trigger: ['clock', 'github', 'qstash'][i % 3]!, scheduled: {} }),
    );
    const started = await Promise.allSettled(fires);
    const fresh = started.filter((s) => s.status === 'fulfilled' && !s.value.replayed);
    expect(fresh, JSON.stringify(started.map((s) => s.status))).to.have.length(1);
    const run = (fresh[0] as PromiseFulfilledResult<{ run: { id: string } }>).value.run;
    await a.wait(run.id).catch(() => b.wait(run.id));
    const runs = await runsOf('minutely');
    expect(runs).to.have.length(1);
    const now = await databaseNow(db.sql);
    expect(runs[0]!.slot?.toISOString()).to.equal(
      slotAt(registry.require('minutely').schedule!, now)?.toISOString(),
    );
    // Every fire but the first was answered with its run, or found the task busy with it.
    expect(runs[0]!.duplicate_fires).to.be.within(1, 5);
  });

  it('answers a fire of a slot that already ran in one statement and no transaction, counting it', async () => {
    const schedule = registry.require('minutely').schedule!;
    // Away from the moments (:00 and :30, the early window's edge) where the slot of a fire changes.
    while ([28, 29, 30, 31, 58, 59, 0, 1].includes((await databaseNow(db.sql)).getUTCSeconds())) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const slot = slotAt(schedule, await databaseNow(db.sql))!;
    const before = new Date(schedule.previous(new Date(slot.getTime() - 1))!);
    const { rows } = await db.sql.query<{ id: string }>(
      `insert into taskgate.task_run (task, trigger, status, idempotency_key, slot)
       values ('minutely', 'github', 'succeeded', $1, $2), ('minutely', 'github', 'succeeded', $3, $4)
       returning id`,
      [`slot:${slot.toISOString()}`, slot, `slot:${before.toISOString()}`, before],
    );
    const sent: string[] = [];
    const counted = new Proxy(db.sql, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (property === 'query' || property === 'transaction') sent.push(String(property));
          return value.apply(target, args);
        };
      },
    });
    const config = loadConfig({ NODE_ENV: 'test', CRON_SECRET_KEY: TEST_SECRET });
    const logger = createLogger({ level: 'info', pretty: false, destination: logs });
    const runner = new Runner({ db: counted, registry, logger, config });
    runners.push(runner);
    const fired = await runner.start({ task: 'minutely', trigger: 'vercel', scheduled: {} });
    expect(fired.replayed).to.equal(true);
    expect(fired.run.id).to.equal(rows[0]!.id);
    expect(sent, 'the look-up, checked on the database clock, that counts it').to.deep.equal(['query']);
    const counts = await db.sql.query<{ duplicate_fires: number }>(
      'select duplicate_fires from taskgate.task_run where task = $1 order by slot desc',
      ['minutely'],
    );
    expect(counts.rows.map((r) => r.duplicate_fires)).to.deep.equal([1, 0]);
    // A fire for the older slot by name (as catch-up gives it) is answered with that slot's run.
    const older = await runner.start({ task: 'minutely', trigger: 'catch-up', scheduled: { slot: before } });
    expect([older.replayed, older.run.id]).to.deep.equal([true, rows[1]!.id]);
  });

  it('runs a slot again, as the next attempt, when its run failed', async () => {
    const runner = replica();
    const slot = registry.require('minutely').schedule!.previous(await databaseNow(db.sql))!;
    await db.sql.query(
      `insert into taskgate.task_run (task, trigger, status, idempotency_key, slot, attempt)
       values ('minutely', 'github', 'failed', $1, $2, 1)`,
      [`slot:${slot.toISOString()}`, slot],
    );
    const { run, replayed } = await runner.start({ task: 'minutely', trigger: 'clock', scheduled: { slot } });
    expect(replayed).to.equal(false);
    expect(run).to.include({ attempt: 2, slot: slot.toISOString() });
    await runner.wait(run.id);
  });

  it('runs an on-demand task asked for by a scheduler as it is asked, with no slot', async () => {
    const { run } = await replica().start({ task: 'on_demand', trigger: 'cron', scheduled: {} });
    expect(run.slot).to.equal(null);
  });

  it('catches up the latest missed slot once, never one already run, and not for a task that opts out', async () => {
    const runner = replica();
    const logger = createLogger({ level: 'info', pretty: false, destination: logs });
    const clock = new InternalClock({ runner, registry, db: db.sql, logger }, { fire: false });
    await clock.start();
    const caught = await runsOf('minutely');
    expect(caught.map((r) => r.trigger)).to.deep.equal(['catch-up']);
    const latest = registry.require('minutely').schedule!.previous(await databaseNow(db.sql))!;
    expect(caught[0]!.slot!.getTime()).to.be.at.most(latest.getTime());
    await runner.wait((await db.sql.query<{ id: string }>('select id from taskgate.task_run')).rows[0]!.id);
    await clock.catchUp();
    const again = await runsOf('minutely');
    // Once more only if a new minute began meanwhile: never two runs of one slot.
    expect(new Set(again.map((r) => r.slot!.toISOString())).size).to.equal(again.length);
    expect(await runsOf('berlin_night'), 'catchUp: none').to.deep.equal([]);
    clock.stop();
  });

  it('catches up when a request finds the process was suspended: its wall clock ran on, its monotonic clock did not', async () => {
    const runner = replica();
    const logger = createLogger({ level: 'info', pretty: false, destination: logs });
    const clock = new InternalClock({ runner, registry, db: db.sql, logger }, { fire: false });
    try {
      clock.noteActivity();
      clock.noteActivity();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await runsOf('minutely'), 'a request like any other catches nothing up').to.deep.equal([]);
      const realNow = Date.now;
      // Two minutes on the wall clock, none on the monotonic one: what a suspended host's process sees.
      Date.now = () => realNow() + 120_000;
      try {
        clock.noteActivity();
      } finally {
        Date.now = realNow;
      }
      await eventually(async () => (await runsOf('minutely')).length > 0, 10_000);
      expect((await runsOf('minutely')).map((r) => r.trigger)).to.deep.equal(['catch-up']);
    } finally {
      clock.stop();
      await runner.close(5_000);
    }
  });

  it('tells each slot’s fate: ran (by whom, duplicates), failed, missed', async () => {
    const schedule = registry.require('minutely').schedule!;
    const now = await databaseNow(db.sql);
    const [s1, s2] = [
      schedule.previous(now)!,
      schedule.previous(new Date(schedule.previous(now)!.getTime() - 1))!,
    ];
    await db.sql.query(
      `insert into taskgate.task_run (task, trigger, status, idempotency_key, slot, duplicate_fires)
       values ('minutely', 'github', 'succeeded', $1, $2, 3), ('minutely', 'vercel', 'failed', $3, $4, 0)`,
      [`slot:${s1.toISOString()}`, s1, `slot:${s2.toISOString()}`, s2],
    );
    // Looked at a second after s1: the next slot is not yet in its early window.
    const slots = (await recentSlotsOf(db.sql, registry.list(), new Date(s1.getTime() + 1000), 4)).get(
      'minutely',
    )!;
    expect(slots.map((s) => [s.fate, s.firedBy, s.duplicates])).to.deep.equal([
      ['ran', 'github', 3],
      ['failed', 'vercel', 0],
      // Within the task's grace: not missed yet.
      ['due', null, 0],
      ['due', null, 0],
    ]);
    const late = new Date(now.getTime() + 2 * 3_600_000);
    const later = (await recentSlotsOf(db.sql, registry.list(), late, 200)).get('minutely')!;
    expect(later.at(-1)!.fate).to.equal('missed');
  });
});

describe('HTTP: scheduled fires', () => {
  let db: TestDatabase;
  let app: TestApp;
  const PUBLIC_URL = 'https://taskgate.example.com';
  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(
      db.sql,
      {
        AUTH_FAILURE_LIMIT: '1000',
        QSTASH_CURRENT_SIGNING_KEY: QSTASH_CURRENT_KEY,
        QSTASH_NEXT_SIGNING_KEY: QSTASH_NEXT_KEY,
        PUBLIC_URL,
        ALLOW_GET_TRIGGERS: 'true',
      },
      { tasksDir: SLOT_TASKS },
    );
  });
  after(async () => {
    await app.close();
    await db.drop();
  });

  const post = (headers: Record<string, string>, body = '{}', path = '/cron/minutely') =>
    request(app.callback).post(path).set('Content-Type', 'application/json').set(headers).send(body);

  it('takes X-Cron-Scheduler (or ?scheduler=) as a scheduled fire: one run for the slot, the scheduler its trigger', async () => {
    const first = await post({ 'X-Cron-Secret': SECRET, 'X-Cron-Scheduler': 'cron-job-org' });
    expect(first.status, JSON.stringify(first.body)).to.equal(200);
    const second = await request(app.callback)
      .post('/cron/minutely?scheduler=uptime-robot')
      .set('X-Cron-Secret', SECRET)
      .send({});
    expect(second.status).to.equal(200);
    expect(second.headers['idempotent-replayed']).to.equal('true');
    expect(second.body.runId).to.equal(first.body.runId);
    const { body } = await request(app.callback).get('/cron/runs?task=minutely').set('X-Cron-Secret', SECRET);
    expect(body.runs).to.have.length(1);
    expect(body.runs[0]).to.include({ trigger: 'cron-job-org', duplicateFires: 1 });
    expect(body.runs[0].slot).to.be.a('string');
  });

  it('takes a QStash schedule’s delivery (Upstash-Schedule-Id) as a fire of the same slot', async () => {
    const url = `${PUBLIC_URL}/cron/minutely`;
    const res = await post({
      'Upstash-Signature': qstashToken(QSTASH_CURRENT_KEY, url, '{}'),
      'Upstash-Schedule-Id': 'scd_1',
      'Upstash-Message-Id': 'msg_1',
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const slots = await request(app.callback)
      .get('/cron/slots?task=minutely&limit=2')
      .set('X-Cron-Secret', SECRET);
    expect(slots.status).to.equal(200);
    const latest = slots.body.slots.find((s: { runId: string | null }) => s.runId === res.body.runId);
    expect(latest, JSON.stringify(slots.body)).to.include({ task: 'minutely', fate: 'ran' });
  });

  it('refuses a scheduler name that is malformed or taskgate’s own, and a scheduled dry run', async () => {
    for (const name of ['GitHub', 'a b', 'clock', 'catch-up', 'x'.repeat(40)]) {
      const res = await post({ 'X-Cron-Secret': SECRET, 'X-Cron-Scheduler': name });
      expect(res.status, name).to.equal(400);
      expect(res.body.code).to.equal('BAD_REQUEST');
    }
    const dry = await post({ 'X-Cron-Secret': SECRET, 'X-Cron-Scheduler': 'github' }, '{"dryRun":true}');
    expect(dry.status).to.equal(400);
    expect(dry.body.code).to.equal('INVALID_PARAMS');
  });

  it('answers GET /cron/slots with 400 for an unknown query and 404 for an unknown task', async () => {
    expect(
      (await request(app.callback).get('/cron/slots?limit=0').set('X-Cron-Secret', SECRET)).status,
    ).to.equal(400);
    const res = await request(app.callback).get('/cron/slots?task=nope').set('X-Cron-Secret', SECRET);
    expect(res.status).to.equal(404);
    expect(res.body.code).to.equal('TASK_NOT_FOUND');
  });

  it('maps a GET seen seconds before and after a minute to that minute’s slot, on the database clock', async function () {
    this.timeout(90_000);
    // Wait until the database clock reads 57 s into a minute: the fire is 3 s early.
    for (;;) {
      const seconds = (await databaseNow(db.sql)).getUTCSeconds();
      if (seconds >= 57 && seconds < 59) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const early = await request(app.callback).get('/cron/minutely').set('Authorization', `Bearer ${SECRET}`);
    expect(early.status, JSON.stringify(early.body)).to.equal(200);
    const { rows } = await db.sql.query<{ slot: Date; started_at: Date }>(
      'select slot, started_at from taskgate.task_run where id = $1',
      [early.body.runId],
    );
    expect(rows[0]!.slot.getTime(), 'the slot is the coming minute').to.be.greaterThan(
      rows[0]!.started_at.getTime(),
    );
    expect(rows[0]!.slot.getUTCSeconds()).to.equal(0);
    // A few seconds after the minute began, a late fire finds the same slot's run.
    while ((await databaseNow(db.sql)).getTime() < rows[0]!.slot.getTime() + 3_000) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const late = await request(app.callback).get('/cron/minutely').set('Authorization', `Bearer ${SECRET}`);
    expect(late.status).to.equal(200);
    expect(late.headers['idempotent-replayed']).to.equal('true');
    expect(late.body.runId).to.equal(early.body.runId);
  });
});
