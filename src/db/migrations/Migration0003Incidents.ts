import { Migration } from '@mikro-orm/migrations';

/**
 * Incidents taskgate has alerted about: a task that failed, or one that missed its run. The
 * partial unique index allows one open incident per task and kind, so however many replicas (or
 * restarts of a sleeping host) notice the same trouble, one of them inserts the row and alerts;
 * the others find it there. A success resolves the task's open incidents.
 */
export class Migration0003Incidents extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "taskgate"."incident" (
      "id" uuid primary key default gen_random_uuid(),
      "task" text not null,
      "kind" text not null check ("kind" in ('failed', 'overdue')),
      "details" jsonb not null default '{}',
      "opened_at" timestamptz not null default now(),
      "sent_at" timestamptz null,
      "resolved_at" timestamptz null
    );`);
    this.addSql(
      'create unique index "incident_open_uniq" on "taskgate"."incident" ("task", "kind") where "resolved_at" is null;',
    );
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "taskgate"."incident";');
  }
}
