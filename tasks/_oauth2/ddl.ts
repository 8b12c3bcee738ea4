// Written by test/django/write-ddl.ts from a database migrated by django-oauth-toolkit 1.7.0
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "oauth2_provider_application", "oauth2_provider_idtoken", "oauth2_provider_accesstoken", "oauth2_provider_refreshtoken", "oauth2_provider_grant" as Django's migrations make them on PostgreSQL,
 * unless they exist; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const OAUTH2_DDL = `do $$
begin
  if to_regclass('oauth2_provider_application') is null then
    CREATE TABLE oauth2_provider_accesstoken (
        id bigint NOT NULL,
        token character varying(255) NOT NULL,
        expires timestamp with time zone NOT NULL,
        scope text NOT NULL,
        application_id bigint,
        user_id integer,
        created timestamp with time zone NOT NULL,
        updated timestamp with time zone NOT NULL,
        source_refresh_token_id bigint,
        id_token_id bigint
    );
    CREATE SEQUENCE oauth2_provider_accesstoken_id_seq
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE oauth2_provider_accesstoken_id_seq OWNED BY oauth2_provider_accesstoken.id;
    CREATE TABLE oauth2_provider_application (
        id bigint NOT NULL,
        client_id character varying(100) NOT NULL,
        redirect_uris text NOT NULL,
        client_type character varying(32) NOT NULL,
        authorization_grant_type character varying(32) NOT NULL,
        client_secret character varying(255) NOT NULL,
        name character varying(255) NOT NULL,
        user_id integer,
        skip_authorization boolean NOT NULL,
        created timestamp with time zone NOT NULL,
        updated timestamp with time zone NOT NULL,
        algorithm character varying(5) NOT NULL
    );
    CREATE SEQUENCE oauth2_provider_application_id_seq
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE oauth2_provider_application_id_seq OWNED BY oauth2_provider_application.id;
    CREATE TABLE oauth2_provider_grant (
        id bigint NOT NULL,
        code character varying(255) NOT NULL,
        expires timestamp with time zone NOT NULL,
        redirect_uri text NOT NULL,
        scope text NOT NULL,
        application_id bigint NOT NULL,
        user_id integer NOT NULL,
        created timestamp with time zone NOT NULL,
        updated timestamp with time zone NOT NULL,
        code_challenge character varying(128) NOT NULL,
        code_challenge_method character varying(10) NOT NULL,
        nonce character varying(255) NOT NULL,
        claims text NOT NULL
    );
    CREATE SEQUENCE oauth2_provider_grant_id_seq
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE oauth2_provider_grant_id_seq OWNED BY oauth2_provider_grant.id;
    CREATE TABLE oauth2_provider_idtoken (
        id bigint NOT NULL,
        jti uuid NOT NULL,
        expires timestamp with time zone NOT NULL,
        scope text NOT NULL,
        created timestamp with time zone NOT NULL,
        updated timestamp with time zone NOT NULL,
        application_id bigint,
        user_id integer
    );
    CREATE SEQUENCE oauth2_provider_idtoken_id_seq
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE oauth2_provider_idtoken_id_seq OWNED BY oauth2_provider_idtoken.id;
    CREATE TABLE oauth2_provider_refreshtoken (
        id bigint NOT NULL,
        token character varying(255) NOT NULL,
        access_token_id bigint,
        application_id bigint NOT NULL,
        user_id integer NOT NULL,
        created timestamp with time zone NOT NULL,
        updated timestamp with time zone NOT NULL,
        revoked timestamp with time zone
    );
    CREATE SEQUENCE oauth2_provider_refreshtoken_id_seq
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE oauth2_provider_refreshtoken_id_seq OWNED BY oauth2_provider_refreshtoken.id;
    ALTER TABLE oauth2_provider_accesstoken ALTER COLUMN id SET DEFAULT nextval('oauth2_provider_accesstoken_id_seq'::regclass);
    ALTER TABLE oauth2_provider_application ALTER COLUMN id SET DEFAULT nextval('oauth2_provider_application_id_seq'::regclass);
    ALTER TABLE oauth2_provider_grant ALTER COLUMN id SET DEFAULT nextval('oauth2_provider_grant_id_seq'::regclass);
    ALTER TABLE oauth2_provider_idtoken ALTER COLUMN id SET DEFAULT nextval('oauth2_provider_idtoken_id_seq'::regclass);
    ALTER TABLE oauth2_provider_refreshtoken ALTER COLUMN id SET DEFAULT nextval('oauth2_provider_refreshtoken_id_seq'::regclass);
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_accesstoken_id_token_id_key UNIQUE (id_token_id);
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_accesstoken_pkey PRIMARY KEY (id);
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_accesstoken_source_refresh_token_id_key UNIQUE (source_refresh_token_id);
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_accesstoken_token_key UNIQUE (token);
    ALTER TABLE oauth2_provider_application ADD CONSTRAINT oauth2_provider_application_client_id_key UNIQUE (client_id);
    ALTER TABLE oauth2_provider_application ADD CONSTRAINT oauth2_provider_application_pkey PRIMARY KEY (id);
    ALTER TABLE oauth2_provider_grant ADD CONSTRAINT oauth2_provider_grant_code_key UNIQUE (code);
    ALTER TABLE oauth2_provider_grant ADD CONSTRAINT oauth2_provider_grant_pkey PRIMARY KEY (id);
    ALTER TABLE oauth2_provider_idtoken ADD CONSTRAINT oauth2_provider_idtoken_jti_key UNIQUE (jti);
    ALTER TABLE oauth2_provider_idtoken ADD CONSTRAINT oauth2_provider_idtoken_pkey PRIMARY KEY (id);
    ALTER TABLE oauth2_provider_refreshtoken ADD CONSTRAINT oauth2_provider_refreshtoken_access_token_id_key UNIQUE (access_token_id);
    ALTER TABLE oauth2_provider_refreshtoken ADD CONSTRAINT oauth2_provider_refreshtoken_pkey PRIMARY KEY (id);
    ALTER TABLE oauth2_provider_refreshtoken ADD CONSTRAINT oauth2_provider_refreshtoken_token_revoked_af8a5134_uniq UNIQUE (token, revoked);
    CREATE INDEX oauth2_provider_accesstoken_application_id_b22886e1 ON oauth2_provider_accesstoken USING btree (application_id);
    CREATE INDEX oauth2_provider_accesstoken_token_8af090f8_like ON oauth2_provider_accesstoken USING btree (token varchar_pattern_ops);
    CREATE INDEX oauth2_provider_accesstoken_user_id_6e4c9a65 ON oauth2_provider_accesstoken USING btree (user_id);
    CREATE INDEX oauth2_provider_application_client_id_03f0cc84_like ON oauth2_provider_application USING btree (client_id varchar_pattern_ops);
    CREATE INDEX oauth2_provider_application_client_secret_53133678 ON oauth2_provider_application USING btree (client_secret);
    CREATE INDEX oauth2_provider_application_client_secret_53133678_like ON oauth2_provider_application USING btree (client_secret varchar_pattern_ops);
    CREATE INDEX oauth2_provider_application_user_id_79829054 ON oauth2_provider_application USING btree (user_id);
    CREATE INDEX oauth2_provider_grant_application_id_81923564 ON oauth2_provider_grant USING btree (application_id);
    CREATE INDEX oauth2_provider_grant_code_49ab4ddf_like ON oauth2_provider_grant USING btree (code varchar_pattern_ops);
    CREATE INDEX oauth2_provider_grant_user_id_e8f62af8 ON oauth2_provider_grant USING btree (user_id);
    CREATE INDEX oauth2_provider_idtoken_application_id_08c5ff4f ON oauth2_provider_idtoken USING btree (application_id);
    CREATE INDEX oauth2_provider_idtoken_user_id_dd512b59 ON oauth2_provider_idtoken USING btree (user_id);
    CREATE INDEX oauth2_provider_refreshtoken_application_id_2d1c311b ON oauth2_provider_refreshtoken USING btree (application_id);
    CREATE INDEX oauth2_provider_refreshtoken_user_id_da837fce ON oauth2_provider_refreshtoken USING btree (user_id);
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_acce_application_id_b22886e1_fk_oauth2_pr FOREIGN KEY (application_id) REFERENCES oauth2_provider_application(id) DEFERRABLE INITIALLY DEFERRED;
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_acce_id_token_id_85db651b_fk_oauth2_pr FOREIGN KEY (id_token_id) REFERENCES oauth2_provider_idtoken(id) DEFERRABLE INITIALLY DEFERRED;
    ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_acce_source_refresh_token_e66fbc72_fk_oauth2_pr FOREIGN KEY (source_refresh_token_id) REFERENCES oauth2_provider_refreshtoken(id) DEFERRABLE INITIALLY DEFERRED;
    ALTER TABLE oauth2_provider_grant ADD CONSTRAINT oauth2_provider_gran_application_id_81923564_fk_oauth2_pr FOREIGN KEY (application_id) REFERENCES oauth2_provider_application(id) DEFERRABLE INITIALLY DEFERRED;
    ALTER TABLE oauth2_provider_idtoken ADD CONSTRAINT oauth2_provider_idto_application_id_08c5ff4f_fk_oauth2_pr FOREIGN KEY (application_id) REFERENCES oauth2_provider_application(id) DEFERRABLE INITIALLY DEFERRED;
    ALTER TABLE oauth2_provider_refreshtoken ADD CONSTRAINT oauth2_provider_refr_access_token_id_775e84e8_fk_oauth2_pr FOREIGN KEY (access_token_id) REFERENCES oauth2_provider_accesstoken(id) DEFERRABLE INITIALLY DEFERRED;
    ALTER TABLE oauth2_provider_refreshtoken ADD CONSTRAINT oauth2_provider_refr_application_id_2d1c311b_fk_oauth2_pr FOREIGN KEY (application_id) REFERENCES oauth2_provider_application(id) DEFERRABLE INITIALLY DEFERRED;
    if to_regclass('auth_user') is not null then
      ALTER TABLE oauth2_provider_accesstoken ADD CONSTRAINT oauth2_provider_accesstoken_user_id_6e4c9a65_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
      ALTER TABLE oauth2_provider_application ADD CONSTRAINT oauth2_provider_application_user_id_79829054_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
      ALTER TABLE oauth2_provider_grant ADD CONSTRAINT oauth2_provider_grant_user_id_e8f62af8_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
      ALTER TABLE oauth2_provider_idtoken ADD CONSTRAINT oauth2_provider_idtoken_user_id_dd512b59_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
      ALTER TABLE oauth2_provider_refreshtoken ADD CONSTRAINT oauth2_provider_refreshtoken_user_id_da837fce_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
    end if;
  end if;
end $$;`;
