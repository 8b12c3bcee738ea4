/**
 * django-reversion's revisions, for deleterevisions_daily. Not a task.
 *
 * Upstream: `manage.py deleterevisions [--days N] [--keep K]` (reversion/management/commands/
 * deleterevisions.py, the same from 5.0.4 to 6.1) decides, in one transaction:
 * - its versions: those of each registered model (`--app_label` narrows them) stored for the
 *   model's database (`Version.db`, "default" unless routed elsewhere);
 * - with `--keep K`: only the versions of objects that have more than K of them, and the K newest
 *   (by version id) of each such object keep their revisions;
 * - deletes the revisions holding one of those versions, created strictly before now - N days
 *   (`date_created__lt`), except the kept ones; Django's CASCADE deletes each deleted revision's
 *   versions, of every object in it.
 * That decision does not change as revisions go (an object keeps more than K versions while one
 * to delete is left, and its K newest are never deleted), so each batch can ask it again of its
 * own revisions: one pass over the revisions' primary key, each revision judged by index probes
 * on its versions (the (db, content_type_id, object_id, revision_id) key Django makes).
 */
import type { SqlClient } from '../../src/db/sql.js';
import type { DeleteRule } from '../_shared/batchDelete.js';

export const REVISION = 'reversion_revision';
export const VERSION = 'reversion_version';
export const HINT = 'reversion in INSTALLED_APPS';

/** A version of a chosen model ($2: the database, $4: the `app_label.model` names, when given). */
const chosen = (models: boolean) =>
  `v.db = $2${
    models
      ? ` and v.content_type_id in (select ct.id from django_content_type as ct
                                     where ct.app_label || '.' || ct.model = any($4::text[]))`
      : ''
  }`;
const VERSIONS_OF_ITS_OBJECT = `(select count(*) from ${VERSION} as o
    where o.db = v.db and o.content_type_id = v.content_type_id and o.object_id = v.object_id)`;
const NEWER_VERSIONS_OF_ITS_OBJECT = `(select count(*) from ${VERSION} as o
    where o.db = v.db and o.content_type_id = v.content_type_id and o.object_id = v.object_id and o.id > v.id)`;

export function staleRevisionsRule(options: {
  cutoff: string;
  modelDb: string;
  /** `app_label.model`, lower case; null: every model that has versions. */
  models: string[] | null;
  keep: number;
}): DeleteRule {
  const CHOSEN = chosen(options.models !== null);
  // $3: keep. Without it, every version of a chosen model counts and no revision is kept.
  const where =
    options.keep === 0
      ? `t.date_created < $1 and $3::int = 0
    and exists (select from ${VERSION} as v where v.revision_id = t.id and ${CHOSEN})`
      : `t.date_created < $1
    and exists (select from ${VERSION} as v
                 where v.revision_id = t.id and ${CHOSEN} and ${VERSIONS_OF_ITS_OBJECT} > $3)
    and not exists (select from ${VERSION} as v
                     where v.revision_id = t.id and ${CHOSEN}
                       and ${VERSIONS_OF_ITS_OBJECT} > $3 and ${NEWER_VERSIONS_OF_ITS_OBJECT} < $3)`;
  return {
    name: REVISION,
    table: REVISION,
    key: 'id',
    where,
    values: [options.cutoff, options.modelDb, options.keep, ...(options.models ? [options.models] : [])],
    dependents: [{ table: VERSION, column: 'revision_id', onDelete: 'cascade' }],
  };
}

/**
 * Foreign keys to the revisions besides the versions' (a project's own "meta" models): Django
 * applies their on_delete, which the database does not know, so the task stops and names them.
 */
export async function otherKeysToRevisions(db: SqlClient): Promise<string[]> {
  const { rows } = await db.query<{ key: string }>(
    `select format('"%s"."%s"', c.conrelid::regclass, a.attname) as key
       from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
      where c.contype = 'f' and c.confrelid = to_regclass($1) and c.conrelid <> to_regclass($2)
      order by 1`,
    [REVISION, VERSION],
  );
  return rows.map((r) => r.key);
}
