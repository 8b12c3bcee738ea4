// Written by test/django/write-ddl.ts from a database migrated by django-axes 5.39.0
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "axes_accessattempt", "axes_accesslog", "axes_accessfailurelog" as Django's migrations make them on PostgreSQL,
 * unless they exist; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const AXES_DDL = `do $$
begin
  if to_regclass('axes_accessattempt') is null then
    CREATE TABLE axes_accessattempt (
        id integer NOT NULL,
        user_agent character varying(255) NOT NULL,
        ip_address inet,
        username character varying(255),
        http_accept character varying(1025) NOT NULL,
        path_info character varying(255) NOT NULL,
        attempt_time timestamp with time zone NOT NULL,
        get_data text NOT NULL,
        post_data text NOT NULL,
        failures_since_start integer NOT NULL,
        CONSTRAINT axes_accessattempt_failures_since_start_check CHECK ((failures_since_start >= 0))
    );
    CREATE SEQUENCE axes_accessattempt_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE axes_accessattempt_id_seq OWNED BY axes_accessattempt.id;
    CREATE TABLE axes_accessfailurelog (
        id integer NOT NULL,
        user_agent character varying(255) NOT NULL,
        ip_address inet,
        username character varying(255),
        http_accept character varying(1025) NOT NULL,
        path_info character varying(255) NOT NULL,
        attempt_time timestamp with time zone NOT NULL,
        locked_out boolean NOT NULL
    );
    CREATE SEQUENCE axes_accessfailurelog_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE axes_accessfailurelog_id_seq OWNED BY axes_accessfailurelog.id;
    CREATE TABLE axes_accesslog (
        id integer NOT NULL,
        user_agent character varying(255) NOT NULL,
        ip_address inet,
        username character varying(255),
        http_accept character varying(1025) NOT NULL,
        path_info character varying(255) NOT NULL,
        attempt_time timestamp with time zone NOT NULL,
        logout_time timestamp with time zone
    );
    CREATE SEQUENCE axes_accesslog_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE axes_accesslog_id_seq OWNED BY axes_accesslog.id;
    ALTER TABLE axes_accessattempt ALTER COLUMN id SET DEFAULT nextval('axes_accessattempt_id_seq'::regclass);
    ALTER TABLE axes_accessfailurelog ALTER COLUMN id SET DEFAULT nextval('axes_accessfailurelog_id_seq'::regclass);
    ALTER TABLE axes_accesslog ALTER COLUMN id SET DEFAULT nextval('axes_accesslog_id_seq'::regclass);
    ALTER TABLE axes_accessattempt ADD CONSTRAINT axes_accessattempt_pkey PRIMARY KEY (id);
    ALTER TABLE axes_accessattempt ADD CONSTRAINT axes_accessattempt_username_ip_address_user_agent_8ea22282_uniq UNIQUE (username, ip_address, user_agent);
    ALTER TABLE axes_accessfailurelog ADD CONSTRAINT axes_accessfailurelog_pkey PRIMARY KEY (id);
    ALTER TABLE axes_accesslog ADD CONSTRAINT axes_accesslog_pkey PRIMARY KEY (id);
    CREATE INDEX axes_accessattempt_ip_address_10922d9c ON axes_accessattempt USING btree (ip_address);
    CREATE INDEX axes_accessattempt_user_agent_ad89678b ON axes_accessattempt USING btree (user_agent);
    CREATE INDEX axes_accessattempt_user_agent_ad89678b_like ON axes_accessattempt USING btree (user_agent varchar_pattern_ops);
    CREATE INDEX axes_accessattempt_username_3f2d4ca0 ON axes_accessattempt USING btree (username);
    CREATE INDEX axes_accessattempt_username_3f2d4ca0_like ON axes_accessattempt USING btree (username varchar_pattern_ops);
    CREATE INDEX axes_accessfailurelog_ip_address_2e9f5a7f ON axes_accessfailurelog USING btree (ip_address);
    CREATE INDEX axes_accessfailurelog_user_agent_ea145dda ON axes_accessfailurelog USING btree (user_agent);
    CREATE INDEX axes_accessfailurelog_user_agent_ea145dda_like ON axes_accessfailurelog USING btree (user_agent varchar_pattern_ops);
    CREATE INDEX axes_accessfailurelog_username_a8b7e8a4 ON axes_accessfailurelog USING btree (username);
    CREATE INDEX axes_accessfailurelog_username_a8b7e8a4_like ON axes_accessfailurelog USING btree (username varchar_pattern_ops);
    CREATE INDEX axes_accesslog_ip_address_86b417e5 ON axes_accesslog USING btree (ip_address);
    CREATE INDEX axes_accesslog_user_agent_0e659004 ON axes_accesslog USING btree (user_agent);
    CREATE INDEX axes_accesslog_user_agent_0e659004_like ON axes_accesslog USING btree (user_agent varchar_pattern_ops);
    CREATE INDEX axes_accesslog_username_df93064b ON axes_accesslog USING btree (username);
    CREATE INDEX axes_accesslog_username_df93064b_like ON axes_accesslog USING btree (username varchar_pattern_ops);
  end if;
end $$;`;
