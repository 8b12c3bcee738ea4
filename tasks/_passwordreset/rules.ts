/**
 * django-rest-passwordreset's tokens, for clearresetpasswordtokens_daily. Not a task. (Not in
 * Debian: the table is made by its migrations 0001 to 0005, replayed in
 * test/django/standins/django_rest_passwordreset.)
 *
 * Upstream: `manage.py clearresetpasswodtokens` (sic) deletes the tokens with
 * `created_at__lte=now - DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME hours` (default 24),
 * at or before (models.py, `clear_expired`, 1.6.0). Nothing points at a token. 1.6.0 indexes
 * `created_at` (migration 0005): batches walk that index where it exists, the primary key before.
 */
import type { DeleteRule } from '../_shared/batchDelete.js';

export const RESET_TOKEN = 'django_rest_passwordreset_resetpasswordtoken';
export const HINT = 'django_rest_passwordreset in INSTALLED_APPS';

export function expiredResetTokenRule(cutoff: string): DeleteRule {
  return {
    name: RESET_TOKEN,
    table: RESET_TOKEN,
    key: 'id',
    where: 't.created_at <= $1',
    values: [cutoff],
    indexed: 'created_at',
  };
}
