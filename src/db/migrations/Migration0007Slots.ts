import { Migration } from '@mikro-orm/migrations';

/**
 * Scheduled runs identified by their slot (src/core/slots.ts):
 * - `task_run.slot`: the scheduled moment a run is for; null for a run asked for by hand. Its
 *   idempotency key is `slot:<moment>`, so the unique index on keys already makes one slot one
 *   run (a failed one may be tried again, as the next attempt); this column is for reading.
 * - `task_run.duplicate_fires`: how many more times schedulers fired the slot after this run
 *   started, and were answered with it instead of a second run.
 */
export class Migration0007Slots extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "taskgate"."task_run"
      add column "slot" timestamptz null,
      add column "duplicate_fires" integer not null default 0;`);
    this.addSql(`create index "task_run_slot_index" on "taskgate"."task_run" ("task", "slot" desc)
      where "slot" is not null;`);
  }

  override async down(): Promise<void> {
    this.addSql('drop index if exists "taskgate"."task_run_slot_index";');
    this.addSql(`alter table "taskgate"."task_run" drop column "slot", drop column "duplicate_fires";`);
  }
}
