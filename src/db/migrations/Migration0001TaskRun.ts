import { Migration } from '@mikro-orm/migrations';

/**
 * taskgate's run history, in taskgate's own schema. Migrations create taskgate's tables only,
 * never the application's: a wrong DATABASE_URL must show up as missing tables, not be filled
 * with empty ones. (Earlier versions of this migration also created the first task's tables
 * when they were absent; databases that hold them keep them as they are.)
 */
export class Migration0001TaskRun extends Migration {
  override async up(): Promise<void> {
    this.addSql('create schema if not exists "taskgate";');
    this.addSql(`create table "taskgate"."task_run" (
      "id" uuid primary key default gen_random_uuid(),
      "task" text not null,
      "trigger" text not null,
      "params" jsonb not null default '{}',
      "dry_run" boolean not null default false,
      "status" text not null check ("status" in ('running', 'succeeded', 'failed', 'interrupted', 'abandoned')),
      "result" jsonb null,
      "error" text null,
      "started_at" timestamptz not null default now(),
      "finished_at" timestamptz null,
      "duration_ms" integer null,
      "idempotency_key" text null
    );`);
    this.addSql(
      'create index "task_run_task_started_at_idx" on "taskgate"."task_run" ("task", "started_at" desc);',
    );
    this.addSql('create index "task_run_started_at_idx" on "taskgate"."task_run" ("started_at");');
    this.addSql(
      `create index "task_run_running_idx" on "taskgate"."task_run" ("task") where "status" = 'running';`,
    );
    this.addSql(`create unique index "task_run_idempotency_key_uniq" on "taskgate"."task_run" ("task", "idempotency_key")
      where "idempotency_key" is not null;`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "taskgate"."task_run";');
  }
}
