import type pg from 'pg';

/**
 * django-oauth-toolkit rows on both sides of every cutoff of cleartokens, for a NOW and an
 * expiry E of one hour (test/pack-equality.test.ts, test/pack.test.ts). Names say what each row is
 * for; `tag` columns (the token text) carry the name, so a test can say which rows remain.
 */
export async function seedOauth2(c: pg.Client, now: Date): Promise<void> {
  const at = (offset: string) => `('${now.toISOString()}'::timestamptz + interval '${offset}')`;
  const user = (
    await c.query(
      `insert into auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
       values ('!', false, 'ada', '', '', '', false, true, now()) returning id`,
    )
  ).rows[0]!.id as number;
  const app = (
    await c.query(
      `insert into oauth2_provider_application (client_id, redirect_uris, client_type, authorization_grant_type,
         client_secret, name, user_id, skip_authorization, created, updated, algorithm)
       values ('client', '', 'confidential', 'password', 'secret', 'app', $1, false, now(), now(), '') returning id`,
      [user],
    )
  ).rows[0]!.id as number;
  const ids: Record<string, number> = {};
  const idToken = async (name: string, expires: string) => {
    ids[name] = (
      await c.query(
        `insert into oauth2_provider_idtoken (jti, expires, scope, created, updated, application_id, user_id)
         values (md5($1)::uuid, ${at(expires)}, 'openid', now(), now(), $2, $3) returning id`,
        [name, app, user],
      )
    ).rows[0]!.id;
  };
  const access = async (name: string, expires: string, idTokenName?: string) => {
    ids[name] = (
      await c.query(
        `insert into oauth2_provider_accesstoken (token, expires, scope, application_id, user_id, created, updated, id_token_id)
         values ($1, ${at(expires)}, 'read', $2, $3, now(), now(), $4) returning id`,
        [name, app, user, idTokenName ? ids[idTokenName] : null],
      )
    ).rows[0]!.id;
  };
  const refresh = async (name: string, accessName: string | null, revoked: string | null) => {
    ids[name] = (
      await c.query(
        `insert into oauth2_provider_refreshtoken (token, access_token_id, application_id, user_id, created, updated, revoked)
         values ($1, $2, $3, $4, now(), now(), ${revoked === null ? 'null' : at(revoked)}) returning id`,
        [name, accessName ? ids[accessName] : null, app, user],
      )
    ).rows[0]!.id;
  };
  await idToken('id-expired-alone', '-1 microsecond');
  await idToken('id-at-now-alone', '0 seconds');
  await idToken('id-expired-with-access', '-1 day');
  await idToken('id-live', '1 day');
  await access('at-before-E', '-1 hour -1 microsecond');
  await access('at-at-E', '-1 hour');
  await access('at-after-E', '-1 hour +1 microsecond');
  await access('at-expired-alone', '-1 microsecond');
  await access('at-at-now-alone', '0 seconds');
  await access('at-live-alone', '1 day');
  await access('at-expired-with-id', '-2 days', 'id-expired-with-access');
  await access('at-live-revoked-refresh', '1 day');
  await refresh('rt-of-at-before-E', 'at-before-E', null);
  await refresh('rt-of-at-at-E', 'at-at-E', null);
  await refresh('rt-of-at-after-E-revoked-before-E', 'at-after-E', '-1 hour -1 microsecond');
  await refresh('rt-revoked-at-E', null, '-1 hour');
  await refresh('rt-revoked-long-ago', null, '-3 days');
  await refresh('rt-revoked-just-now', null, '-1 second');
  await refresh('rt-orphan', null, null);
  await refresh('rt-of-live', 'at-live-alone', null);
  await refresh('rt-of-live-revoked-after-E', 'at-live-revoked-refresh', '-30 minutes');
  // Access tokens minted from refresh tokens that a rule deletes: their source is set to null.
  await c.query(`update oauth2_provider_accesstoken set source_refresh_token_id = $1 where id = $2`, [
    ids['rt-revoked-long-ago'],
    ids['at-live-alone'],
  ]);
  await c.query(`update oauth2_provider_accesstoken set source_refresh_token_id = $1 where id = $2`, [
    ids['rt-of-at-after-E-revoked-before-E'],
    ids['at-expired-with-id'],
  ]);
  for (const [code, expires] of [
    ['grant-expired', '-1 microsecond'],
    ['grant-at-now', '0 seconds'],
    ['grant-live', '10 minutes'],
  ] as const) {
    await c.query(
      `insert into oauth2_provider_grant (code, expires, redirect_uri, scope, application_id, user_id, created, updated,
         code_challenge, code_challenge_method, nonce, claims)
       values ($1, ${at(expires)}, 'https://example.com/cb', 'read', $2, $3, now(), now(), '', '', '', '')`,
      [code, app, user],
    );
  }
}
