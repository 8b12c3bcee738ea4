import { Migration } from '@mikro-orm/migrations';

/**
 * Run coordination that holds behind a transaction pooler and through lost connections.
 *
 * - `task_lease`: one row per task while a run of it is in progress, naming the run and expiring
 *   unless the run's process renews it. A lease is a row, not a session's lock: it belongs to no
 *   connection, so a pooler sharing server connections, a terminated backend or a restarted server
 *   cannot lose it or hand it to someone else, and a dead process's lease simply expires.
 * - `task_run.attempt`: a retry with the same idempotency key after a failed, interrupted or
 *   abandoned run is a new attempt of that key. Only a running or succeeded run holds its key, so
 *   the unique index now covers those alone.
 */
export class Migration0004Leases extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "taskgate"."task_lease" (
      "task" text primary key,
      "run_id" uuid not null,
      "holder" text not null,
      "acquired_at" timestamptz not null default clock_timestamp(),
      "expires_at" timestamptz not null
    );`);
    this.addSql('alter table "taskgate"."task_run" add column "attempt" integer not null default 1;');
    this.addSql('drop index "taskgate"."task_run_idempotency_key_uniq";');
    this.addSql(`create unique index "task_run_idempotency_key_uniq" on "taskgate"."task_run" ("task", "idempotency_key")
      where "idempotency_key" is not null and "status" in ('running', 'succeeded');`);
    this.addSql(`create index "task_run_idempotency_key_idx" on "taskgate"."task_run" ("task", "idempotency_key", "attempt" desc)
      where "idempotency_key" is not null;`);
  }

  override async down(): Promise<void> {
    this.addSql('drop index "taskgate"."task_run_idempotency_key_idx";');
    this.addSql('drop index "taskgate"."task_run_idempotency_key_uniq";');
    this.addSql(`create unique index "task_run_idempotency_key_uniq" on "taskgate"."task_run" ("task", "idempotency_key")
      where "idempotency_key" is not null;`);
    this.addSql('alter table "taskgate"."task_run" drop column "attempt";');
    this.addSql('drop table if exists "taskgate"."task_lease";');
  }
}
