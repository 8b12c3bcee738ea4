import { Migration } from '@mikro-orm/migrations';

/**
 * Every pause and resume of a task, as an audit trail: `task_pause` keeps only a task's last pause
 * and its resume, this keeps them all. A row is written by the very statement that pauses or
 * resumes (src/core/pauses.ts), so the two cannot disagree. Rows are never updated and are not
 * pruned with the run history: they are few (one per operator action).
 *
 * The pauses `task_pause` already holds become the first events, so the history starts with what
 * taskgate knew before it kept one.
 */
export class Migration0006PauseEvents extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "taskgate"."task_pause_event" (
      "id" bigint generated always as identity primary key,
      "task" text not null,
      "action" text not null check ("action" in ('paused', 'resumed')),
      "actor" text not null,
      "reason" text null,
      "until" timestamptz null,
      "at" timestamptz not null default clock_timestamp()
    );`);
    this.addSql(
      'create index "task_pause_event_task_at_index" on "taskgate"."task_pause_event" ("task", "at" desc);',
    );
    this.addSql(`insert into "taskgate"."task_pause_event" ("task", "action", "actor", "reason", "until", "at")
      select "task", 'paused', "paused_by", "reason", "until", "paused_at" from "taskgate"."task_pause"
      union all
      select "task", 'resumed', "resumed_by", "resume_reason", null, "resumed_at" from "taskgate"."task_pause"
       where "resumed_at" is not null
      order by 6;`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "taskgate"."task_pause_event";');
  }
}
