/**
 * django-oauth-toolkit's tokens, for cleartokens_daily. Not a task.
 *
 * Upstream: `manage.py cleartokens` is `oauth2_provider.models.clear_expired()`: queries run one
 * after the other, each to its end (in batches of CLEAR_EXPIRED_TOKENS_BATCH_SIZE), so a later one
 * sees what an earlier one deleted. Read from each release's models.py, with N the run's now, E
 * REFRESH_TOKEN_EXPIRE_SECONDS (unset or 0: none), G REFRESH_TOKEN_GRACE_PERIOD_SECONDS:
 *
 * | rule | up to 2.2 | 2.3 to 3.3 | 3.4.0 | 3.4.1 and later |
 * | --- | --- | --- | --- | --- |
 * | revoked refresh tokens | `revoked < N - E`, with E | same | `revoked <= N - G` (or N); with REFRESH_TOKEN_REUSE_PROTECTION `revoked <= N - E`, with E | same |
 * | orphaned refresh tokens | – | – | – | not revoked and no access token |
 * | expired refresh tokens | access token's `expires < N - E`, with E | same | same | not revoked, and `expires <= N - E`, with E |
 * | access tokens | no refresh token points at it, `expires < N` | same | same | same |
 * | ID tokens | – | no access token points at it, `expires < N` | same | same |
 * | grants | `expires < N` | same | same | same |
 *
 * What Django does to the rows pointing at a deleted one (its `on_delete`, applied by Django, not
 * by the database): a refresh token's `refreshed_access_token` (AccessToken.source_refresh_token)
 * is set to null; an access token's refresh token (RefreshToken.access_token) is set to null; an ID
 * token's access token (AccessToken.id_token, CASCADE) would be deleted, but the rule only takes ID
 * tokens no access token points at. Nothing points at a grant. None of the columns is indexed:
 * batches walk the primary keys.
 */
import type { DeleteRule } from '../_shared/batchDelete.js';
import { atLeast } from '../_shared/pack.js';

export const ACCESS = 'oauth2_provider_accesstoken';
export const REFRESH = 'oauth2_provider_refreshtoken';
export const ID_TOKEN = 'oauth2_provider_idtoken';
const GRANT = 'oauth2_provider_grant';
export const TABLES = [REFRESH, ACCESS, ID_TOKEN, GRANT];
export const HINT = 'oauth2_provider in INSTALLED_APPS';
/** The release whose rules apply unless DJANGO_OAUTH_TOOLKIT_VERSION says otherwise. */
export const CURRENT_TOOLKIT = '3.4.1';

export interface Cutoffs {
  /** The run's now. */
  now: string;
  /** now - REFRESH_TOKEN_EXPIRE_SECONDS, when that is set. */
  refreshExpireAt: string | null;
  /** The cutoff of revoked refresh tokens from 3.4.0 on: now - grace period, or refreshExpireAt with reuse protection. */
  refreshRevokedAt: string | null;
}

const refreshDependents = [
  { table: ACCESS, column: 'source_refresh_token_id', onDelete: 'set null' as const },
];

/** The rules of `clear_expired()` in `version`'s order. */
export function clearExpiredRules(version: string, cutoffs: Cutoffs): DeleteRule[] {
  const rules: DeleteRule[] = [];
  const refresh = (name: string, where: string, values: unknown[]) =>
    rules.push({ name, table: REFRESH, key: 'id', where, values, dependents: refreshDependents });
  const expiredAccess = (comparison: '<' | '<=') =>
    `exists (select from ${ACCESS} as a where a.id = t.access_token_id and a.expires ${comparison} $1)`;
  if (atLeast(version, '3.4.0')) {
    if (cutoffs.refreshRevokedAt)
      refresh('revokedRefreshTokens', 't.revoked <= $1', [cutoffs.refreshRevokedAt]);
    const current = atLeast(version, '3.4.1');
    if (current) refresh('orphanedRefreshTokens', 't.revoked is null and t.access_token_id is null', []);
    if (cutoffs.refreshExpireAt) {
      refresh(
        'expiredRefreshTokens',
        current ? `t.revoked is null and ${expiredAccess('<=')}` : expiredAccess('<'),
        [cutoffs.refreshExpireAt],
      );
    }
  } else if (cutoffs.refreshExpireAt) {
    refresh('revokedRefreshTokens', 't.revoked < $1', [cutoffs.refreshExpireAt]);
    refresh('expiredRefreshTokens', expiredAccess('<'), [cutoffs.refreshExpireAt]);
  }
  rules.push({
    name: 'accessTokens',
    table: ACCESS,
    key: 'id',
    where: `t.expires < $1 and not exists (select from ${REFRESH} as r where r.access_token_id = t.id)`,
    values: [cutoffs.now],
    dependents: [{ table: REFRESH, column: 'access_token_id', onDelete: 'set null' }],
  });
  if (atLeast(version, '2.3.0')) {
    rules.push({
      name: 'idTokens',
      table: ID_TOKEN,
      key: 'id',
      where: `t.expires < $1 and not exists (select from ${ACCESS} as a where a.id_token_id = t.id)`,
      values: [cutoffs.now],
    });
  }
  rules.push({ name: 'grants', table: GRANT, key: 'id', where: 't.expires < $1', values: [cutoffs.now] });
  return rules;
}
