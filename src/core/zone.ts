/**
 * Wall-clock time in an IANA time zone, for schedules that name one. A wall-clock moment is held
 * as a Date whose UTC fields are the zone's local fields (a "wall date"), so that cron matching
 * can run on it in UTC and the zone's rules are applied only when it becomes an instant.
 *
 * Where the zone's clocks jump (DST), a wall moment is not one instant: in a gap (spring
 * forward) it is none, and it is taken as the transition, the first instant after the gap; in an
 * overlap (fall back) it is two, and the first is taken. So every wall moment is exactly one
 * instant, and the instants follow the wall moments' order (docs/writing-tasks.md, Time zones).
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let made = formatters.get(zone);
  if (!made) {
    made = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, made);
  }
  return made;
}

/** Whether `zone` is an IANA time zone this Node.js knows. */
export function isTimeZone(zone: string): boolean {
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/** The wall date of `instant` in `zone`. */
export function wallDate(instant: Date, zone: string): Date {
  const parts: Record<string, number> = {};
  for (const { type, value } of formatter(zone).formatToParts(instant)) parts[type] = Number(value);
  return new Date(
    Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!) +
      (((instant.getTime() % 1000) + 1000) % 1000),
  );
}

/** The zone's offset from UTC at `instant`, in ms (Berlin in winter: +3,600,000). */
function offsetAt(instant: Date, zone: string): number {
  return wallDate(instant, zone).getTime() - instant.getTime();
}

/** The one instant of a wall date: the first of two in an overlap, the transition in a gap. */
export function instantOf(wall: Date, zone: string): Date {
  const w = wall.getTime();
  // The zone's offsets a day either side bound every offset that can apply here.
  const offsets = [
    ...new Set([offsetAt(new Date(w - 86_400_000), zone), offsetAt(new Date(w + 86_400_000), zone)]),
  ];
  const candidates = offsets
    .map((offset) => w - offset)
    .filter((t) => wallDate(new Date(t), zone).getTime() === w)
    .sort((a, b) => a - b);
  if (candidates.length > 0) return new Date(candidates[0]!);
  // A gap: the first instant whose wall time is past `wall`, between the two offsets' readings.
  let lo = w - Math.max(...offsets);
  let hi = w - Math.min(...offsets);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wallDate(new Date(mid), zone).getTime() > w) hi = mid;
    else lo = mid;
  }
  return new Date(hi);
}

/** Every offset `zone` uses between `from` and `days` days later, sampled daily, in minutes. */
export function offsetsBetween(from: Date, days: number, zone: string): number[] {
  const seen = new Set<number>();
  for (let day = 0; day <= days; day++) {
    seen.add(offsetAt(new Date(from.getTime() + day * 86_400_000), zone) / 60_000);
  }
  return [...seen].sort((a, b) => a - b);
}

/** A moment the zone's offset changes: `before` and `after` in minutes. */
export interface Transition {
  at: Date;
  before: number;
  after: number;
}

/** The zone's offset changes between `from` and `days` days later. */
export function transitionsBetween(from: Date, days: number, zone: string): Transition[] {
  const found: Transition[] = [];
  let previous = offsetAt(from, zone);
  for (let day = 1; day <= days; day++) {
    const sample = new Date(from.getTime() + day * 86_400_000);
    const offset = offsetAt(sample, zone);
    if (offset === previous) continue;
    // The change lies in the day before this sample: find its instant.
    let lo = sample.getTime() - 86_400_000;
    let hi = sample.getTime();
    while (hi - lo > 1000) {
      const mid = Math.floor((lo + hi) / 2);
      if (offsetAt(new Date(mid), zone) === previous) lo = mid;
      else hi = mid;
    }
    found.push({ at: new Date(hi), before: previous / 60_000, after: offset / 60_000 });
    previous = offset;
  }
  return found;
}

/** `instant` as local time in `zone`, with its offset: `2026-12-08T03:00:00+01:00` (`Z` in UTC). */
export function localTime(instant: Date, zone: string): string {
  const offset = offsetAt(instant, zone) / 60_000;
  const wall = wallDate(instant, zone).toISOString().slice(0, 19);
  if (offset === 0) return `${wall}Z`;
  const sign = offset > 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `${wall}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
