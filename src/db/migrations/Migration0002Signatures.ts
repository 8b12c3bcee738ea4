import { Migration } from '@mikro-orm/migrations';

/**
 * Signatures of signed HTTP requests already accepted. The primary key is what refuses a replay,
 * on one replica or many; a row is useless once its request is outside the tolerance window, so
 * rows carry their expiry and are pruned by it.
 */
export class Migration0002Signatures extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "taskgate"."seen_signature" (
      "signature" text primary key,
      "expires_at" timestamptz not null
    );`);
    this.addSql(
      'create index "seen_signature_expires_at_idx" on "taskgate"."seen_signature" ("expires_at");',
    );
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "taskgate"."seen_signature";');
  }
}
