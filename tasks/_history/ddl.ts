// Written by test/django/write-ddl.ts from a database migrated by django-simple-history 3.1.1, for a model `Item(name, shelf)` of an app `inventory`
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * "inventory_historicalitem" as Django's migrations make them on PostgreSQL,
 * unless it exists; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const EXAMPLE_HISTORY_DDL = `do $$
begin
  if to_regclass('inventory_historicalitem') is null then
    CREATE TABLE inventory_historicalitem (
        id integer NOT NULL,
        name character varying(50) NOT NULL,
        history_id integer NOT NULL,
        history_date timestamp with time zone NOT NULL,
        history_change_reason character varying(100),
        history_type character varying(1) NOT NULL,
        history_user_id integer,
        shelf_id integer
    );
    CREATE SEQUENCE inventory_historicalitem_history_id_seq
        AS integer
        START WITH 1
        INCREMENT BY 1
        NO MINVALUE
        NO MAXVALUE
        CACHE 1;
    ALTER SEQUENCE inventory_historicalitem_history_id_seq OWNED BY inventory_historicalitem.history_id;
    ALTER TABLE inventory_historicalitem ALTER COLUMN history_id SET DEFAULT nextval('inventory_historicalitem_history_id_seq'::regclass);
    ALTER TABLE inventory_historicalitem ADD CONSTRAINT inventory_historicalitem_pkey PRIMARY KEY (history_id);
    CREATE INDEX inventory_historicalitem_history_date_0e0a006a ON inventory_historicalitem USING btree (history_date);
    CREATE INDEX inventory_historicalitem_history_user_id_d65a1b04 ON inventory_historicalitem USING btree (history_user_id);
    CREATE INDEX inventory_historicalitem_id_c89fe6a0 ON inventory_historicalitem USING btree (id);
    CREATE INDEX inventory_historicalitem_shelf_id_b67e76f0 ON inventory_historicalitem USING btree (shelf_id);
    if to_regclass('auth_user') is not null then
      ALTER TABLE inventory_historicalitem ADD CONSTRAINT inventory_historical_history_user_id_d65a1b04_fk_auth_user FOREIGN KEY (history_user_id) REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED;
    end if;
  end if;
end $$;`;
