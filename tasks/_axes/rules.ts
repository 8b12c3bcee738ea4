/**
 * django-axes' records, for axesresetlogs_daily and axesexpireattempts_hourly. Not a task.
 *
 * Upstream (read from each release's axes/handlers/database.py and axes/attempts.py):
 * - `axes_reset_logs --age N` (default 30): `AccessLog.objects.filter(attempt_time__lte=now - N days)`,
 *   the same from 5.x to 8.3.1.
 * - the expiry of lock-outs, which axes runs on every login attempt, not as a command: with
 *   AXES_COOLOFF_TIME set, `AccessAttempt.objects.filter(attempt_time__lt=now - cool-off)` up to
 *   8.0, `attempt_time__lte` from 8.1.0; with AXES_USE_ATTEMPT_EXPIRATION (8.1.0 and later),
 *   attempts whose `AccessAttemptExpiration.expires_at <= now` instead. Deleting an attempt deletes
 *   its expiration row (on_delete CASCADE), where 8.1's table exists.
 * None of axes' timestamps is indexed: batches walk the primary key.
 */
import type { DeleteRule } from '../_shared/batchDelete.js';

export const ACCESS_LOG = 'axes_accesslog';
export const ACCESS_ATTEMPT = 'axes_accessattempt';
/** axes 8.1 and later. */
export const ATTEMPT_EXPIRATION = 'axes_accessattemptexpiration';
export const HINT = "django-axes in INSTALLED_APPS (axes' migrations)";
/** The release whose rules the tasks follow unless AXES_VERSION says otherwise. */
export const CURRENT_AXES = '8.3.1';

export function accessLogRule(cutoff: string): DeleteRule {
  return { name: ACCESS_LOG, table: ACCESS_LOG, key: 'id', where: 't.attempt_time <= $1', values: [cutoff] };
}

export function expiredAttemptsRule(options: {
  cutoff: string;
  inclusive: boolean;
  useExpiration: boolean;
  now: string;
  expirationTable: boolean;
}): DeleteRule {
  const where = options.useExpiration
    ? `exists (select from ${ATTEMPT_EXPIRATION} as e where e.access_attempt_id = t.id and e.expires_at <= $1)`
    : `t.attempt_time ${options.inclusive ? '<=' : '<'} $1`;
  return {
    name: ACCESS_ATTEMPT,
    table: ACCESS_ATTEMPT,
    key: 'id',
    where,
    values: [options.useExpiration ? options.now : options.cutoff],
    dependents: options.expirationTable
      ? [{ table: ATTEMPT_EXPIRATION, column: 'access_attempt_id', onDelete: 'cascade' }]
      : [],
  };
}
