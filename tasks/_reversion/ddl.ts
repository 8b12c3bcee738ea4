// Written by test/django/write-ddl.ts from a database migrated by django-reversion 5.0.4
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "reversion_revision", "reversion_version" as Django's migrations make them on PostgreSQL,
 * unless they exist; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const REVERSION_DDL = `do $$
begin
  if to_regclass('reversion_revision') is null then
    CREATE TABLE reversion_revision (
        id integer NOT NULL,
        date_created timestamp with time zone NOT NULL,
        comment text NOT NULL,
        user_id integer
    );
    CREATE SEQUENCE reversion_revision_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE reversion_revision_id_seq OWNED BY reversion_revision.id;
    CREATE TABLE reversion_version (
        id integer NOT NULL,
        object_id character varying(191) NOT NULL,
        format character varying(255) NOT NULL,
        serialized_data text NOT NULL,
        object_repr text NOT NULL,
        content_type_id integer NOT NULL,
        revision_id integer NOT NULL,
        db character varying(191) NOT NULL
    );
    CREATE SEQUENCE reversion_version_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE reversion_version_id_seq OWNED BY reversion_version.id;
    ALTER TABLE reversion_revision ALTER COLUMN id SET DEFAULT nextval('reversion_revision_id_seq'::regclass);
    ALTER TABLE reversion_version ALTER COLUMN id SET DEFAULT nextval('reversion_version_id_seq'::regclass);
    ALTER TABLE reversion_revision ADD CONSTRAINT reversion_revision_pkey PRIMARY KEY (id);
    ALTER TABLE reversion_version ADD CONSTRAINT reversion_version_db_content_type_id_objec_b2c54f65_uniq UNIQUE (db, content_type_id, object_id, revision_id);
    ALTER TABLE reversion_version ADD CONSTRAINT reversion_version_pkey PRIMARY KEY (id);
    CREATE INDEX reversion_revision_date_created_96f7c20c ON reversion_revision USING btree (date_created);
    CREATE INDEX reversion_revision_user_id_17095f45 ON reversion_revision USING btree (user_id);
    CREATE INDEX reversion_v_content_f95daf_idx ON reversion_version USING btree (content_type_id, db);
    CREATE INDEX reversion_version_content_type_id_7d0ff25c ON reversion_version USING btree (content_type_id);
    CREATE INDEX reversion_version_revision_id_af9f6a9d ON reversion_version USING btree (revision_id);
    ALTER TABLE reversion_version ADD CONSTRAINT reversion_version_revision_id_af9f6a9d_fk_reversion_revision_id FOREIGN KEY (revision_id) REFERENCES reversion_revision(id) DEFERRABLE INITIALLY DEFERRED;
    if to_regclass('auth_user') is not null then
      ALTER TABLE reversion_revision ADD CONSTRAINT reversion_revision_user_id_17095f45_fk_auth_user_id FOREIGN KEY (user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
    end if;
    if to_regclass('django_content_type') is not null then
      ALTER TABLE reversion_version ADD CONSTRAINT reversion_version_content_type_id_7d0ff25c_fk_django_co FOREIGN KEY (content_type_id) REFERENCES django_content_type(id) DEFERRABLE INITIALLY DEFERRED;
    end if;
  end if;
end $$;`;
