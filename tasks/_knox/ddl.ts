// Written by test/django/write-ddl.ts from a database migrated by django-rest-knox 5.0's migrations 0001 to 0009
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "knox_authtoken" as Django's migrations make them on PostgreSQL,
 * unless it exists; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const KNOX_DDL = `do $$
begin
  if to_regclass('knox_authtoken') is null then
    CREATE TABLE knox_authtoken (
        digest character varying(128) NOT NULL,
        created timestamp with time zone NOT NULL,
        user_id integer NOT NULL,
        expiry timestamp with time zone,
        token_key character varying(25) NOT NULL
    );
    ALTER TABLE knox_authtoken ADD CONSTRAINT knox_authtoken_pkey PRIMARY KEY (digest);
    CREATE INDEX knox_authtoken_digest_188c7e77_like ON knox_authtoken USING btree (digest varchar_pattern_ops);
    CREATE INDEX knox_authtoken_token_key_8f4f7d47 ON knox_authtoken USING btree (token_key);
    CREATE INDEX knox_authtoken_token_key_8f4f7d47_like ON knox_authtoken USING btree (token_key varchar_pattern_ops);
    CREATE INDEX knox_authtoken_user_id_e5a5d899 ON knox_authtoken USING btree (user_id);
    if to_regclass('auth_user') is not null then
      ALTER TABLE knox_authtoken ADD CONSTRAINT knox_authtoken_user_id_e5a5d899_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
    end if;
  end if;
end $$;`;
