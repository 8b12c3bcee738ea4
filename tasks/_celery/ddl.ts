// Written by test/django/write-ddl.ts from a database migrated by django-celery-results 2.4.0
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "django_celery_results_taskresult", "django_celery_results_groupresult", "django_celery_results_chordcounter" as Django's migrations make them on PostgreSQL,
 * unless they exist; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const CELERY_RESULTS_DDL = `do $$
begin
  if to_regclass('django_celery_results_taskresult') is null then
    CREATE TABLE django_celery_results_chordcounter (
        id integer NOT NULL,
        group_id character varying(255) NOT NULL,
        sub_tasks text NOT NULL,
        count integer NOT NULL,
        CONSTRAINT django_celery_results_chordcounter_count_check CHECK ((count >= 0))
    );
    CREATE SEQUENCE django_celery_results_chordcounter_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE django_celery_results_chordcounter_id_seq OWNED BY django_celery_results_chordcounter.id;
    CREATE TABLE django_celery_results_groupresult (
        id integer NOT NULL,
        group_id character varying(255) NOT NULL,
        date_created timestamp with time zone NOT NULL,
        date_done timestamp with time zone NOT NULL,
        content_type character varying(128) NOT NULL,
        content_encoding character varying(64) NOT NULL,
        result text
    );
    CREATE SEQUENCE django_celery_results_groupresult_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE django_celery_results_groupresult_id_seq OWNED BY django_celery_results_groupresult.id;
    CREATE TABLE django_celery_results_taskresult (
        id integer NOT NULL,
        task_id character varying(255) NOT NULL,
        status character varying(50) NOT NULL,
        content_type character varying(128) NOT NULL,
        content_encoding character varying(64) NOT NULL,
        result text,
        date_done timestamp with time zone NOT NULL,
        traceback text,
        meta text,
        task_args text,
        task_kwargs text,
        task_name character varying(255),
        worker character varying(100),
        date_created timestamp with time zone NOT NULL,
        periodic_task_name character varying(255)
    );
    CREATE SEQUENCE django_celery_results_taskresult_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE django_celery_results_taskresult_id_seq OWNED BY django_celery_results_taskresult.id;
    ALTER TABLE django_celery_results_chordcounter ALTER COLUMN id SET DEFAULT nextval('django_celery_results_chordcounter_id_seq'::regclass);
    ALTER TABLE django_celery_results_groupresult ALTER COLUMN id SET DEFAULT nextval('django_celery_results_groupresult_id_seq'::regclass);
    ALTER TABLE django_celery_results_taskresult ALTER COLUMN id SET DEFAULT nextval('django_celery_results_taskresult_id_seq'::regclass);
    ALTER TABLE django_celery_results_chordcounter ADD CONSTRAINT django_celery_results_chordcounter_group_id_key UNIQUE (group_id);
    ALTER TABLE django_celery_results_chordcounter ADD CONSTRAINT django_celery_results_chordcounter_pkey PRIMARY KEY (id);
    ALTER TABLE django_celery_results_groupresult ADD CONSTRAINT django_celery_results_groupresult_group_id_key UNIQUE (group_id);
    ALTER TABLE django_celery_results_groupresult ADD CONSTRAINT django_celery_results_groupresult_pkey PRIMARY KEY (id);
    ALTER TABLE django_celery_results_taskresult ADD CONSTRAINT django_celery_results_taskresult_pkey PRIMARY KEY (id);
    ALTER TABLE django_celery_results_taskresult ADD CONSTRAINT django_celery_results_taskresult_task_id_key UNIQUE (task_id);
    CREATE INDEX django_cele_date_cr_bd6c1d_idx ON django_celery_results_groupresult USING btree (date_created);
    CREATE INDEX django_cele_date_cr_f04a50_idx ON django_celery_results_taskresult USING btree (date_created);
    CREATE INDEX django_cele_date_do_caae0e_idx ON django_celery_results_groupresult USING btree (date_done);
    CREATE INDEX django_cele_date_do_f59aad_idx ON django_celery_results_taskresult USING btree (date_done);
    CREATE INDEX django_cele_status_9b6201_idx ON django_celery_results_taskresult USING btree (status);
    CREATE INDEX django_cele_task_na_08aec9_idx ON django_celery_results_taskresult USING btree (task_name);
    CREATE INDEX django_cele_worker_d54dd8_idx ON django_celery_results_taskresult USING btree (worker);
    CREATE INDEX django_celery_results_chordcounter_group_id_1f70858c_like ON django_celery_results_chordcounter USING btree (group_id varchar_pattern_ops);
    CREATE INDEX django_celery_results_groupresult_group_id_a085f1a9_like ON django_celery_results_groupresult USING btree (group_id varchar_pattern_ops);
    CREATE INDEX django_celery_results_taskresult_task_id_de0d95bf_like ON django_celery_results_taskresult USING btree (task_id varchar_pattern_ops);
  end if;
end $$;`;
