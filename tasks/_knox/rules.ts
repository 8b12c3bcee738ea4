/**
 * django-rest-knox's tokens, for knoxexpiredtokens_daily. Not a task. (Knox is not in Debian:
 * the table is made by its migrations 0001 to 0009, replayed in test/django/standins/knox.)
 *
 * Upstream has no command: `TokenAuthentication._cleanup_token` (knox/auth.py, 5.0) deletes a
 * user's tokens whose `expiry < now` (strictly before; tokens without an expiry never) only when
 * that same user authenticates again, so the tokens of users who never come back stay for ever.
 * This deletes the same tokens for every user. Nothing points at a token; `expiry` has no index:
 * batches walk the primary key (`digest`).
 */
import type { DeleteRule } from '../_shared/batchDelete.js';

export const AUTH_TOKEN = 'knox_authtoken';
export const HINT = 'knox in INSTALLED_APPS';

export function expiredTokenRule(now: string): DeleteRule {
  return { name: AUTH_TOKEN, table: AUTH_TOKEN, key: 'digest', where: 't.expiry < $1', values: [now] };
}
