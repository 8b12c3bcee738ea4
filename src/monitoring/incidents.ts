import type { SqlClient } from '../db/sql.js';

/**
 * Incidents: a task that failed or turned overdue, from the moment it is noticed until it
 * recovers. One open row per task and kind is all PostgreSQL allows (a partial unique index), so
 * whichever replica or restart notices it first opens it, and its alert goes out once. The SQL,
 * one named function a statement.
 */
export type IncidentKind = 'failed' | 'overdue';

export interface Incident {
  id: string;
  task: string;
  kind: IncidentKind;
  details: Record<string, unknown>;
  openedAt: string;
  sentAt: string | null;
  resolvedAt: string | null;
}

type Row = Record<string, unknown>;

const toIncident = (row: Row): Incident => ({
  id: String(row.id),
  task: String(row.task),
  kind: row.kind as IncidentKind,
  details: (row.details ?? {}) as Record<string, unknown>,
  openedAt: new Date(row.opened_at as string).toISOString(),
  sentAt: row.sent_at ? new Date(row.sent_at as string).toISOString() : null,
  resolvedAt: row.resolved_at ? new Date(row.resolved_at as string).toISOString() : null,
});

/** Opens an incident, claimed for sending; null when one of that kind is already open for the task. */
export async function openIncident(
  db: SqlClient,
  task: string,
  kind: IncidentKind,
  details: Record<string, unknown>,
): Promise<Incident | null> {
  const { rows } = await db.query(
    `insert into taskgate.incident (task, kind, details, sent_at) values ($1, $2, $3::jsonb, now())
     on conflict (task, kind) where resolved_at is null do nothing
     returning *`,
    [task, kind, JSON.stringify(details)],
  );
  return rows[0] ? toIncident(rows[0]) : null;
}

/** Resolves the task's open incidents (of one kind, or all); returns those this call resolved. */
export async function resolveIncidents(
  db: SqlClient,
  task: string,
  kind?: IncidentKind,
): Promise<Incident[]> {
  const { rows } = await db.query(
    `update taskgate.incident set resolved_at = now()
      where task = $1 and resolved_at is null and ($2::text is null or kind = $2)
      returning *`,
    [task, kind ?? null],
  );
  return rows.map(toIncident);
}

/** Open incidents whose alert did not get through, claimed for another try. */
export async function claimUnsent(db: SqlClient): Promise<Incident[]> {
  const { rows } = await db.query(
    `update taskgate.incident set sent_at = now() where resolved_at is null and sent_at is null returning *`,
  );
  return rows.map(toIncident);
}

/** Gives an incident back for a later try after its alert failed. */
export async function releaseIncident(db: SqlClient, id: string): Promise<void> {
  await db.query('update taskgate.incident set sent_at = null where id = $1', [id]);
}
