import { Cron } from 'croner';
import { instantOf, isTimeZone, offsetsBetween, transitionsBetween, wallDate } from './zone.js';

/**
 * The years the UTC expressions of a zoned schedule cover: fixed, so that the generated workflow
 * does not change with the day it is generated on (only with the zone rules Node.js carries).
 */
const ZONE_SPAN = { from: new Date(Date.UTC(2024, 0, 1)), days: 12 * 366 };

/** A zone's offsets and transitions over ZONE_SPAN, read once a zone (a few thousand samples). */
const zoneRules = new Map<
  string,
  { offsets: number[]; transitions: ReturnType<typeof transitionsBetween> }
>();
function rulesOf(zone: string) {
  let rules = zoneRules.get(zone);
  if (!rules) {
    rules = {
      offsets: offsetsBetween(ZONE_SPAN.from, ZONE_SPAN.days, zone),
      transitions: transitionsBetween(ZONE_SPAN.from, ZONE_SPAN.days, zone),
    };
    zoneRules.set(zone, rules);
  }
  return rules;
}

/**
 * A task's schedule: a 5-field cron expression, in the subset GitHub Actions accepts (numbers,
 * names, `*`, `,`, `-`, `/`; no seconds, no `L`/`W`/`#`, no `@daily`), read in UTC or in the
 * IANA time zone the task names. In a zone, a moment that a DST change skips runs once at the
 * transition, and one that it repeats runs once, at its first occurrence (src/core/zone.ts).
 *
 * Its scheduled moments are the slots that every scheduler fires (src/core/slots.ts).
 */
export class Schedule {
  readonly expression: string;
  /** The IANA time zone the expression is read in; null for UTC. */
  readonly timeZone: string | null;
  /** Matches wall dates (the zone's local time held in UTC fields), or instants when in UTC. */
  private readonly cron: Cron;

  constructor(expression: string, timeZone: string | null = null) {
    const fields = expression.trim().split(/\s+/);
    if (fields.length !== 5)
      throw new Error(`"${expression}" must have 5 fields (minute hour day month weekday)`);
    if (!fields.every((field) => /^[0-9A-Za-z*,/-]+$/.test(field))) {
      throw new Error(`"${expression}" uses characters GitHub Actions cron does not accept`);
    }
    if (timeZone !== null && !isTimeZone(timeZone)) {
      throw new Error(`time zone "${timeZone}" is not an IANA time zone (such as Europe/Berlin)`);
    }
    try {
      this.cron = new Cron(fields.join(' '), { timezone: 'UTC', mode: '5-part', paused: true });
    } catch (error) {
      throw new Error(`"${expression}" is not a valid cron expression: ${(error as Error).message}`);
    }
    this.expression = fields.join(' ');
    this.timeZone = timeZone === 'UTC' || timeZone === 'Etc/UTC' ? null : timeZone;
  }

  /** The zone it is read in, for people: `UTC` or the IANA name. */
  get zone(): string {
    return this.timeZone ?? 'UTC';
  }

  /**
   * "At 00:00 (UTC)" for `0 0 * * *`. cronstrue is loaded on first use: `serve` and `run` start
   * without it, and only `list`, `status` and GET /cron say schedules in words.
   */
  async describe(): Promise<string> {
    const { default: cronstrue } = await import('cronstrue');
    return `${cronstrue.toString(this.expression, { use24HourTimeFormat: true, verbose: false })} (${this.zone})`;
  }

  /** The first scheduled moment strictly after `from`. */
  next(from: Date): Date | null {
    const zone = this.timeZone;
    if (!zone) return this.cron.nextRun(from);
    // Walk the wall-clock occurrences from a little before `from`'s wall time (an overlap puts
    // wall time back by up to an hour or so) to the first whose instant is after `from`.
    let wall: Date | null = new Date(wallDate(from, zone).getTime() - 3 * 3_600_000);
    for (let step = 0; step < 10_000 && wall; step++) {
      wall = this.cron.nextRun(wall);
      if (!wall) return null;
      const instant = instantOf(wall, zone);
      if (instant.getTime() > from.getTime()) return instant;
    }
    return null;
  }

  /** The last scheduled moment at or before `at`. */
  previous(at: Date): Date | null {
    const zone = this.timeZone;
    if (!zone) return this.cron.previousRuns(1, new Date(at.getTime() + 1000))[0] ?? null;
    let wall: Date | null = new Date(wallDate(at, zone).getTime() + 3 * 3_600_000 + 1000);
    for (let step = 0; step < 10_000 && wall; step++) {
      wall = this.cron.previousRuns(1, wall)[0] ?? null;
      if (!wall) return null;
      const instant = instantOf(wall, zone);
      if (instant.getTime() <= at.getTime()) return instant;
    }
    return null;
  }

  /** The next `count` scheduled moments after `from`. */
  upcoming(from: Date, count: number): Date[] {
    const moments: Date[] = [];
    for (let at: Date | null = from; moments.length < count; ) {
      at = this.next(at);
      if (!at) break;
      moments.push(at);
    }
    return moments;
  }

  /**
   * UTC cron expressions that fire at every moment that can be one of this schedule's slots, for
   * schedulers that know only UTC (GitHub Actions). In UTC, the expression itself. In a zone, the
   * zone's wall times shifted by each offset it uses in the next two years; where a shift crosses
   * midnight the day fields widen. Firing more often than the schedule is harmless: each fire is
   * mapped to its slot, and a slot runs once (src/core/slots.ts).
   */
  utcExpressions(): string[] {
    const zone = this.timeZone;
    if (!zone) return [this.expression];
    const [minute, hour, dom, month, dow] = this.expression.split(' ') as [
      string,
      string,
      string,
      string,
      string,
    ];
    // The wall (hour, minute) pairs, from one day of the minute and hour fields alone.
    const day = new Cron(`${minute} ${hour} * * *`, { timezone: 'UTC', mode: '5-part', paused: true });
    const pairs = day.nextRuns(1440, new Date(Date.UTC(2000, 0, 1) - 1)).filter((d) => d.getUTCDate() === 1);
    const { offsets, transitions } = rulesOf(zone);
    const weekdays = dom === '*' && month === '*' && dow !== '*' ? weekdaysOf(dow) : null;
    // Minutes of each (UTC hour, day fields), then hours merged where those agree.
    const byHour = new Map<string, Set<number>>();
    for (const wall of pairs) {
      for (const offset of offsets) {
        const total = wall.getUTCHours() * 60 + wall.getUTCMinutes() - offset;
        const shift = Math.floor(total / 1440);
        const minutes = ((total % 1440) + 1440) % 1440;
        let days: string;
        if (dom === '*' && month === '*' && dow === '*') days = '* * *';
        else if (shift === 0) days = `${dom} ${month} ${dow}`;
        else if (weekdays)
          days = `* * ${list([...new Set(weekdays.map((d) => (((d + shift) % 7) + 7) % 7))], 7)}`;
        else days = '* * *';
        const key = `${Math.floor(minutes / 60)}|${days}`;
        const set = byHour.get(key) ?? new Set<number>();
        set.add(minutes % 60);
        byHour.set(key, set);
      }
    }
    const lines = new Map<string, number[]>();
    for (const [key, minutes] of byHour) {
      const [h, days] = key.split('|') as [string, string];
      const line = `${list([...minutes], 60)}|${days}`;
      lines.set(line, [...(lines.get(line) ?? []), Number(h)]);
    }
    const expressions = [...lines].map(([line, hours]) => {
      const [minutes, days] = line.split('|') as [string, string];
      return `${minutes} ${list(hours, 24)} ${days}`;
    });
    // A wall time a spring-forward skips is the transition itself: fire then, on the days it can be.
    const gaps = new Map<string, Set<number>>();
    for (const { at, before, after } of transitions) {
      if (after <= before) continue;
      const skippedFrom = at.getUTCHours() * 60 + at.getUTCMinutes() + before;
      const skipped = pairs.some((wall) => {
        const minute =
          (((wall.getUTCHours() * 60 + wall.getUTCMinutes() - skippedFrom) % 1440) + 1440) % 1440;
        return minute < after - before;
      });
      if (!skipped) continue;
      const key = `${at.getUTCMinutes()} ${at.getUTCHours()}|${at.getUTCMonth() + 1}`;
      gaps.set(key, (gaps.get(key) ?? new Set()).add(at.getUTCDate()));
    }
    for (const [key, days] of gaps) {
      const [time, month] = key.split('|') as [string, string];
      expressions.push(`${time} ${list([...days], 31)} ${month} *`);
    }
    return [...new Set(expressions)].sort();
  }
}

/** The weekdays (0 = Sunday) a day-of-week field names. */
function weekdaysOf(field: string): number[] {
  const week = new Cron(`0 0 * * ${field}`, { timezone: 'UTC', mode: '5-part', paused: true });
  // A week from a Sunday.
  return week
    .nextRuns(7, new Date(Date.UTC(2023, 0, 1) - 1))
    .filter((d) => d.getTime() < Date.UTC(2023, 0, 8))
    .map((d) => d.getUTCDay());
}

/** A cron field listing `values` of a field of `size` values: `*`, ranges where they run on. */
function list(values: number[], size: number): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  if (sorted.length === size) return '*';
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j - i >= 2 ? `${sorted[i]}-${sorted[j]}` : sorted.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',');
}
