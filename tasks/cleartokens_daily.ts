import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { OAUTH2_DDL } from './_oauth2/ddl.js';
import {
  ACCESS,
  CURRENT_TOOLKIT,
  clearExpiredRules,
  HINT,
  ID_TOKEN,
  REFRESH,
  TABLES,
} from './_oauth2/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import {
  atLeast,
  batchParams,
  before,
  microseconds,
  optionalNumber,
  release,
  runPack,
  SECOND,
  yes,
} from './_shared/pack.js';

const settings = z.object({
  OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS: optionalNumber('seconds').describe(
    "OAUTH2_PROVIDER['REFRESH_TOKEN_EXPIRE_SECONDS'], in seconds; unset or 0 (upstream's default): refresh tokens do not age out",
  ),
  OAUTH2_PROVIDER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS: optionalNumber('seconds').describe(
    "OAUTH2_PROVIDER['REFRESH_TOKEN_GRACE_PERIOD_SECONDS'] (3.4.0 and later: revoked refresh tokens are kept that long); unset: 0",
  ),
  OAUTH2_PROVIDER_REFRESH_TOKEN_REUSE_PROTECTION: yes.describe(
    "OAUTH2_PROVIDER['REFRESH_TOKEN_REUSE_PROTECTION'] (3.4.0 and later: revoked refresh tokens are kept until they expire)",
  ),
  DJANGO_OAUTH_TOOLKIT_VERSION: release(CURRENT_TOOLKIT).describe(
    "the django-oauth-toolkit release the application runs: cleartokens' rules changed in 2.3.0, 3.4.0 and 3.4.1",
  ),
});
type Settings = z.output<typeof settings>;

function rulesAt(now: Date, s: Settings) {
  const expire = s.OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS;
  const grace = s.OAUTH2_PROVIDER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS;
  const expireMicros = expire ? microseconds(expire, SECOND) : 0n;
  const graceMicros = grace ? microseconds(grace, SECOND) : 0n;
  // Python: `if REFRESH_TOKEN_EXPIRE_SECONDS:` (0 is none) and `if refresh_revoked_at:` (None is none).
  const refreshExpireAt = expireMicros > 0n ? before(now, expireMicros) : null;
  const refreshRevokedAt =
    atLeast(s.DJANGO_OAUTH_TOOLKIT_VERSION, '3.4.0') && s.OAUTH2_PROVIDER_REFRESH_TOKEN_REUSE_PROTECTION
      ? refreshExpireAt
      : before(now, graceMicros);
  const cutoffs = { now: before(now, 0n), refreshExpireAt, refreshRevokedAt };
  return { cutoffs, rules: clearExpiredRules(s.DJANGO_OAUTH_TOOLKIT_VERSION, cutoffs) };
}

/** django-oauth-toolkit's `manage.py cleartokens`, rule by rule, in batches (./_oauth2/rules.ts). */
export default defineTask({
  name: 'cleartokens_daily',
  description:
    "Deletes django-oauth-toolkit's expired and revoked tokens and expired grants (manage.py cleartokens), in its order, in short batches.",
  schedule: '20 0 * * *',
  params: z.strictObject({ ...batchParams }),
  queryTimeoutMs: 60_000,
  settings,
  run: ({ params, db, now, signal, dryRun, logger, settings }) => {
    const { cutoffs, rules } = rulesAt(now, settings);
    const named = Object.fromEntries(
      Object.entries(cutoffs).filter((entry): entry is [string, string] => entry[1] !== null),
    );
    return runPack(
      { db, params, signal, dryRun, logger },
      { tables: TABLES, hint: HINT, cutoffs: named, rules },
    );
  },
  check: ({ db, settings }) =>
    packChecks(db, 'cleartokens_daily', {
      tables: TABLES,
      hint: HINT,
      foreignKeys: [
        { table: ACCESS, column: 'source_refresh_token_id', references: REFRESH },
        { table: REFRESH, column: 'access_token_id', references: ACCESS },
        { table: ACCESS, column: 'id_token_id', references: ID_TOKEN },
      ],
      // The rules read every table, delete from each, and empty the columns pointing at a deleted token.
      grants: [
        { table: REFRESH, privileges: ['SELECT', 'DELETE', 'UPDATE'] },
        { table: ACCESS, privileges: ['SELECT', 'DELETE', 'UPDATE'] },
        { table: ID_TOKEN, privileges: ['SELECT', 'DELETE'] },
        { table: 'oauth2_provider_grant', privileges: ['SELECT', 'DELETE'] },
      ],
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const parts: string[] = [];
        for (const rule of rulesAt(rows[0]!.now as Date, settings).rules) {
          parts.push(`${count(await countMatching(db, rule))} ${rule.name}`);
        }
        return `the next run deletes at least: ${parts.join(', ')}`;
      },
    }),
  prepareDevDatabase: (db) => db.query(OAUTH2_DDL).then(() => undefined),
});
