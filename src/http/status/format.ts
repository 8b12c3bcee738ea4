/**
 * The status page's small words: HTML escaping (every value goes through `html`), times,
 * durations, what a run did, and the public face of an error.
 */

/** A fragment of HTML that is already safe to insert. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function piece(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(piece).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(value);
}

/** A tagged template: interpolated values are escaped unless they are Html (or arrays of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += piece(value) + strings[i + 1]!;
  });
  return new Html(out);
}

/** `2030-01-02 00:41 UTC`. */
export function formatTime(iso: string | null): string {
  if (!iso) return '–';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** `in 3 h`, `5 min ago`: a coarse distance from now. */
export function relative(iso: string | null, now: Date): string {
  if (!iso) return '';
  const ms = new Date(iso).getTime() - now.getTime();
  const abs = Math.abs(ms);
  if (abs < 5000) return 'just now';
  const [n, unit] =
    abs < 60_000
      ? [Math.round(abs / 1000), 's']
      : abs < 3_600_000
        ? [Math.round(abs / 60_000), 'min']
        : abs < 172_800_000
          ? [Math.round(abs / 3_600_000), 'h']
          : [Math.round(abs / 86_400_000), 'd'];
  return ms >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** `840 ms`, `12.3 s`, `4 min 05 s`. */
export function formatDuration(ms: number | null): string {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms >= 3_600_000) {
    const hours = Math.floor(ms / 3_600_000);
    const rest = Math.round((ms % 3_600_000) / 60_000);
    return rest ? `${hours} h ${rest} min` : `${hours} h`;
  }
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${String(seconds).padStart(2, '0')} s`;
}

/**
 * What a run did, from the counts in its result: `batches 1 · deleted 12`. Every number and every
 * true flag at the top level is told, in the order of their names (PostgreSQL keeps a result's
 * keys in its own order, shortest first, which is no order a reader would know); text may be
 * anything, and the run's page shows the rest.
 */
export function resultSummary(result: unknown): string {
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(result).sort(([a], [b]) => a.localeCompare(b, 'en'))) {
    if (typeof value === 'number' && Number.isFinite(value))
      parts.push(`${key} ${value.toLocaleString('en')}`);
    else if (typeof value === 'boolean' && value) parts.push(key);
  }
  return parts.join(' · ');
}

/** Words a driver or PostgreSQL uses in errors that would tell the database's insides. */
const DATABASE_WORDS =
  /\b(syntax error at or near|relation "[^"]*" does not exist|column "[^"]*" does not exist|violates [a-z ]*constraint|duplicate key|permission denied for|password authentication failed|no pg_hba\.conf|database "[^"]*" does not exist|role "[^"]*" does not exist|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|getaddrinfo|Connection terminated|connection timeout|terminating connection|SQLSTATE|current transaction is aborted|canceling statement|deadlock detected|could not serialize)\b/i;

/** A URL with credentials, or any postgres URL: never shown. */
const URLS = /\b(postgres(ql)?:\/\/\S+|[a-z][a-z0-9+.-]*:\/\/[^\s/@]+@\S+)/gi;

/**
 * A run's error as the page tells it: an error in the database's words becomes a plain sentence
 * (the log has the rest); URLs that may carry credentials are cut out of any other.
 */
export function publicError(error: string | null): string | null {
  if (error === null) return null;
  if (DATABASE_WORDS.test(error))
    return 'a database error stopped the run (its details are in the process log)';
  return error.replace(URLS, '[redacted]').slice(0, 500);
}
