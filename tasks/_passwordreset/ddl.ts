// Written by test/django/write-ddl.ts from a database migrated by django-rest-passwordreset 1.6's migrations 0001 to 0005
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "django_rest_passwordreset_resetpasswordtoken" as Django's migrations make them on PostgreSQL,
 * unless it exists; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const PASSWORDRESET_DDL = `do $$
begin
  if to_regclass('django_rest_passwordreset_resetpasswordtoken') is null then
    CREATE TABLE django_rest_passwordreset_resetpasswordtoken (
        created_at timestamp with time zone NOT NULL,
        key character varying(64) NOT NULL,
        ip_address inet,
        user_agent character varying(512) NOT NULL,
        user_id integer NOT NULL,
        id integer NOT NULL
    );
    CREATE SEQUENCE django_rest_passwordreset_resetpasswordtoken_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE django_rest_passwordreset_resetpasswordtoken_id_seq OWNED BY django_rest_passwordreset_resetpasswordtoken.id;
    ALTER TABLE django_rest_passwordreset_resetpasswordtoken ALTER COLUMN id SET DEFAULT nextval('django_rest_passwordreset_resetpasswordtoken_id_seq'::regclass);
    ALTER TABLE django_rest_passwordreset_resetpasswordtoken ADD CONSTRAINT django_rest_passwordreset_resetpasswordtoken_key_f1b65873_uniq UNIQUE (key);
    ALTER TABLE django_rest_passwordreset_resetpasswordtoken ADD CONSTRAINT django_rest_passwordreset_resetpasswordtoken_pkey PRIMARY KEY (id);
    CREATE INDEX django_rest_passwordreset_resetpasswordtoken_key_f1b65873_like ON django_rest_passwordreset_resetpasswordtoken USING btree (key varchar_pattern_ops);
    CREATE INDEX django_rest_passwordreset_resetpasswordtoken_user_id_e8015b11 ON django_rest_passwordreset_resetpasswordtoken USING btree (user_id);
    CREATE INDEX drpr_token_created_at_idx ON django_rest_passwordreset_resetpasswordtoken USING btree (created_at);
    if to_regclass('auth_user') is not null then
      ALTER TABLE django_rest_passwordreset_resetpasswordtoken ADD CONSTRAINT django_rest_password_user_id_e8015b11_fk_auth_user FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
    end if;
  end if;
end $$;`;
