import { Migration } from '@mikro-orm/migrations';

/**
 * What an operator does to runs and tasks, and what a run said.
 *
 * - `task_run.status` gains `cancelled`: a run an operator stopped, told apart from one a
 *   shutdown or a time-out interrupted.
 * - `task_run.cancel_*`: a cancel request, written by whichever process received it. The process
 *   running the run reads it with its lease renewal (src/core/leases.ts), so a cancel reaches the
 *   run wherever it runs, through plain statements that a transaction pooler passes.
 * - `task_run.rerun_of`, `rerun_reason`: the run a rerun repeats. No foreign key: pruning the
 *   old run must not touch (or be held up by) the rerun that points at it.
 * - `run_log`: the lines a run logged, bounded, in a table of their own so that listing runs never
 *   reads them; they go with their run (on delete cascade) when the history is pruned.
 * - `task_pause`: one row per task that was ever paused; the task is paused while the row is
 *   not resumed and its `until` (when set) is still ahead. The row keeps who paused and resumed it.
 */
export class Migration0005OperatorControls extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table "taskgate"."task_run" drop constraint "task_run_status_check";');
    this.addSql(`alter table "taskgate"."task_run" add constraint "task_run_status_check"
      check ("status" in ('running', 'succeeded', 'failed', 'interrupted', 'abandoned', 'cancelled'));`);
    this.addSql(`alter table "taskgate"."task_run"
      add column "cancel_requested_at" timestamptz null,
      add column "cancel_requested_by" text null,
      add column "cancel_reason" text null,
      add column "rerun_of" uuid null,
      add column "rerun_reason" text null;`);
    this.addSql(`create table "taskgate"."run_log" (
      "run_id" uuid primary key references "taskgate"."task_run" ("id") on delete cascade,
      "lines" jsonb not null default '[]',
      "bytes" integer not null default 0,
      "dropped" integer not null default 0
    );`);
    this.addSql(`create table "taskgate"."task_pause" (
      "task" text primary key,
      "reason" text not null,
      "paused_by" text not null,
      "paused_at" timestamptz not null default clock_timestamp(),
      "until" timestamptz null,
      "resumed_at" timestamptz null,
      "resumed_by" text null,
      "resume_reason" text null
    );`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "taskgate"."task_pause";');
    this.addSql('drop table if exists "taskgate"."run_log";');
    this.addSql(`alter table "taskgate"."task_run"
      drop column "cancel_requested_at", drop column "cancel_requested_by", drop column "cancel_reason",
      drop column "rerun_of", drop column "rerun_reason";`);
    this.addSql(`update "taskgate"."task_run" set "status" = 'interrupted' where "status" = 'cancelled';`);
    this.addSql('alter table "taskgate"."task_run" drop constraint "task_run_status_check";');
    this.addSql(`alter table "taskgate"."task_run" add constraint "task_run_status_check"
      check ("status" in ('running', 'succeeded', 'failed', 'interrupted', 'abandoned'));`);
  }
}
