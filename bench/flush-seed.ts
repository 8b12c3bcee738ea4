import { readFile } from 'node:fs/promises';
import type pg from 'pg';

/**
 * Test data for bench/flush.ts: simplejwt's tables exactly as Django creates them, filled the way
 * pg_restore fills a table (rows first, then indexes and foreign keys), which takes seconds where
 * row-by-row index upkeep and a million deferred foreign key checks would take minutes.
 */
const DJANGO_DDL = new URL('../test/fixtures/django-token-tables.sql', import.meta.url);
export const OUTSTANDING = 'token_blacklist_outstandingtoken';
export const BLACKLIST = 'token_blacklist_blacklistedtoken';
const USERS = 10_000;

/** The token tables' secondary indexes and constraints (all but primary keys), to drop and recreate. */
function secondaryObjectsSql(): string {
  return `select format('alter table %s drop constraint %I', conrelid::regclass, conname) as drop_sql,
                 format('alter table %s add constraint %I %s', conrelid::regclass, conname,
                        pg_get_constraintdef(oid)) as create_sql,
                 case contype when 'f' then 2 else 1 end as stage
            from pg_constraint
           where conrelid = any($1::regclass[]) and contype in ('u', 'f')
          union all
          select format('drop index %s', indexrelid::regclass), pg_get_indexdef(indexrelid), 1
            from pg_index
           where indrelid = any($1::regclass[])
             and not exists (select from pg_constraint where conindid = indexrelid)
           order by 3`;
}

function insertUsersSql(): string {
  return `insert into auth_user (password, is_superuser, username, first_name, last_name, email,
                                 is_staff, is_active, date_joined)
          select 'pbkdf2_sha256$870000$bench$hash', false, 'user' || u, '', '', 'user' || u || '@example.com',
                 false, true, now() - interval '400 days'
            from generate_series(1, $1::int) as u`;
}

/**
 * $1 rows. Every other token is expired (by 1 to 28 days; the others stay live for over a day),
 * so every page mixes expired and live rows: the hardest layout for a keyset walk, which cannot skip a page. 1% have no user, 1% no
 * created_at. The token text is JWT-shaped, about 300 characters, as simplejwt stores it.
 */
function insertTokensSql(): string {
  return `insert into ${OUTSTANDING} (token, created_at, expires_at, user_id, jti)
          select 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6MTczMDAwMDAwMCwiaWF0IjoxNzI5OTEzNjAwLCJqdGkiOiI'
                   || m || 'IiwidXNlcl9pZCI6' || (i % ${USERS}) || 'LCJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJhdWQiOiJleGFtcGxlLWFwcCJ9.'
                   || m || upper(m),
                 case when i % 97 = 0 then null else expires - interval '1 day' end,
                 expires,
                 case when i % 100 = 0 then null else 1 + i % ${USERS} end,
                 m
            from generate_series(1, $1::int) as i,
                 lateral (select md5(i::text) as m,
                                 case when i % 2 = 0 then now() - interval '1 day' * (1 + i % 28)
                                      else now() + interval '1 day' + interval '1 second' * (i % 86400) end as expires) as row`;
}

/** Every fifth token is blacklisted, live or expired alike. */
function insertBlacklistSql(): string {
  return `insert into ${BLACKLIST} (blacklisted_at, token_id)
          select coalesce(created_at, expires_at - interval '1 day') + interval '1 hour', id
            from ${OUTSTANDING}
           where id % 5 = 0`;
}

export interface SeedCounts {
  tokens: number;
  expired: number;
  blacklisted: number;
  expiredBlacklisted: number;
  avgTokenLength: number;
}

/** Creates Django's tables in an empty database and fills them with `rows` tokens. */
export async function seedTokens(client: pg.Client, rows: number): Promise<SeedCounts> {
  await client.query(await readFile(DJANGO_DDL, 'utf8'));
  const { rows: objects } = await client.query(secondaryObjectsSql(), [[OUTSTANDING, BLACKLIST]]);
  for (const object of [...objects].reverse()) await client.query(object.drop_sql);
  await client.query(insertUsersSql(), [USERS]);
  await client.query(insertTokensSql(), [rows]);
  await client.query(insertBlacklistSql());
  for (const object of objects) await client.query(object.create_sql);
  await client.query(`vacuum analyze auth_user, ${OUTSTANDING}, ${BLACKLIST}`);
  const { rows: counts } = await client.query(
    `select count(*)::int as tokens,
            count(*) filter (where o.expires_at <= now())::int as expired,
            count(b.id)::int as blacklisted,
            count(b.id) filter (where o.expires_at <= now())::int as "expiredBlacklisted",
            round(avg(length(o.token)))::int as "avgTokenLength"
       from ${OUTSTANDING} as o left join ${BLACKLIST} as b on b.token_id = o.id`,
  );
  return counts[0] as SeedCounts;
}
