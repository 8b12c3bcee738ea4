/**
 * `taskgate doctor`: what an operator would otherwise find out at 3 a.m., checked in a few seconds
 * and without writing anything. Each check gives one verdict; any `fail` makes the command exit 1.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Registry } from '../core/registry.js';
import { describeDatabase } from '../db/connect.js';
import { pendingMigrations } from '../db/migrations/pending.js';
import { throughTransactionPooler } from '../db/pooler.js';
import type { Db } from '../db/sql.js';
import { compareWorkflow, generateWorkflow, staleReason } from '../scheduling/workflow.js';
import type { CheckResult } from '../task.js';

export type { CheckResult };

export interface DoctorInput {
  config: Config;
  registry: Registry;
  /** The open database, or why it could not be opened. */
  database: { db: Db; url: string } | { error: Error };
  /** The committed scheduler workflow. */
  workflowFile: string;
}

/** Host and database clocks further apart than this are worth a look (ms). */
const CLOCK_WARN_MS = 5_000;

export async function runDoctor(input: DoctorInput): Promise<CheckResult[]> {
  const { config, registry, database } = input;
  const checks: CheckResult[] = [];
  if ('error' in database) {
    checks.push({ name: 'database', verdict: 'fail', message: database.error.message });
    checks.push({ name: 'database checks', verdict: 'skip', message: 'skipped: no database to check' });
  } else {
    try {
      checks.push(...(await databaseChecks(database.db, database.url, config, registry)));
    } catch (error) {
      checks.push({ name: 'database', verdict: 'fail', message: (error as Error).message });
    }
  }
  checks.push(...secretChecks(config));
  checks.push(await workflowCheck(registry, input.workflowFile));
  return checks;
}

async function databaseChecks(
  db: Db,
  url: string,
  config: Config,
  registry: Registry,
): Promise<CheckResult[]> {
  const checks: CheckResult[] = [];
  const before = Date.now();
  let row: Record<string, unknown>;
  try {
    row = (
      await db.query(
        `select current_setting('server_version') as version, current_database() as name,
                  extract(epoch from clock_timestamp()) * 1000 as now_ms`,
      )
    ).rows[0]!;
  } catch (error) {
    return [{ name: 'database', verdict: 'fail', message: (error as Error).message }];
  }
  const after = Date.now();
  checks.push({
    name: 'database',
    verdict: 'ok',
    message: `PostgreSQL ${row.version} answers: database ${describeDatabase(url)} (${after - before} ms)`,
  });

  checks.push(
    (await throughTransactionPooler(db))
      ? {
          name: 'pooler',
          verdict: 'warn',
          message:
            'connections go through a transaction pooler (PgBouncer transaction mode or alike): a session ' +
            "keeps no state between its transactions. taskgate's migrations lock per transaction and work " +
            "through it; keep the pooler's pool larger than the number of tasks that run at once",
        }
      : {
          name: 'pooler',
          verdict: 'ok',
          message: 'each connection keeps its own PostgreSQL backend (direct, or a session pooler)',
        },
  );

  const pending = await pendingMigrations(db);
  checks.push(
    pending.length === 0
      ? { name: 'schema', verdict: 'ok', message: "taskgate's schema is migrated" }
      : {
          // Not a failure: `serve` applies them at start (a first deploy, an upgrade), and `run` before its run.
          name: 'schema',
          verdict: 'warn',
          message:
            `${pending.length} migration(s) of taskgate's own schema not applied yet (${pending.join(', ')}): ` +
            '`taskgate serve` applies them when it starts, or run `taskgate migrate`',
        },
  );

  for (const task of registry.list()) {
    if (!task.definition.check) continue;
    let findings: CheckResult[];
    try {
      findings = await task.definition.check({ db, settings: task.settings });
    } catch (error) {
      findings = [{ name: task.definition.name, verdict: 'fail', message: (error as Error).message }];
    }
    // A chore the application does not have (no sessions in the database, say) is a task to drop.
    const drop = config.project.tasks[task.definition.name]
      ? `; if this application does not need it, remove "${task.definition.name}" from taskgate.config.json`
      : '';
    checks.push(
      ...findings.map((f) => (f.verdict === 'fail' && drop ? { ...f, message: `${f.message}${drop}` } : f)),
    );
  }

  // The database clock decides cutoffs and run times; the host's signs and checks signed requests.
  const skew = Math.round(Number(row.now_ms) - (before + after) / 2);
  const tolerance = config.http.signatureToleranceSeconds * 1000;
  const clock = `database clock ${skew >= 0 ? 'ahead of' : 'behind'} this host by ${Math.abs(skew)} ms`;
  checks.push(
    Math.abs(skew) <= CLOCK_WARN_MS
      ? { name: 'clock', verdict: 'ok', message: clock }
      : Math.abs(skew) < tolerance
        ? { name: 'clock', verdict: 'warn', message: `${clock}: synchronise the host's clock (NTP)` }
        : {
            name: 'clock',
            verdict: 'fail',
            message: `${clock}: beyond SIGNATURE_TOLERANCE_SECONDS, signed requests made here will be refused`,
          },
  );
  return checks;
}

/**
 * Whether a secret is set, and what is wrong with the credentials: doctor reports a weak or
 * repeated credential (loadConfig keeps it for doctor alone) where `serve` refuses to start.
 */
function secretChecks(config: Config): CheckResult[] {
  if (config.credentialProblems.length > 0) {
    return config.credentialProblems.map((problem) => ({
      name: 'secret',
      verdict: 'fail',
      message: `${problem}; \`taskgate serve\` refuses to start with it`,
    }));
  }
  const secret = config.secretGenerated ? undefined : config.secrets[0];
  if (!secret) {
    // doctor needs no secret (it may run where only DATABASE_URL is set); serve does.
    return [
      {
        name: 'secret',
        verdict: 'skip',
        message:
          config.env === 'production'
            ? 'CRON_SECRET_KEY is not set here: `taskgate serve` refuses to start without one'
            : 'CRON_SECRET_KEY is not set here: `taskgate serve` makes one up at each start (development only)',
      },
    ];
  }
  return [
    { name: 'secret', verdict: 'ok', message: 'CRON_SECRET_KEY set, and every credential set strong enough' },
  ];
}

async function workflowCheck(registry: Registry, file: string): Promise<CheckResult> {
  const shown = path.relative(process.cwd(), file) || file;
  const committed = await readFile(file, 'utf8').catch(() => null);
  const compared = compareWorkflow(committed, generateWorkflow(registry.list()));
  if (compared.state === 'missing') {
    return {
      name: 'workflow',
      verdict: 'skip',
      message: `no ${shown}: with GitHub Actions as the scheduler, run \`taskgate workflow --write\` and commit it`,
    };
  }
  return compared.state === 'current'
    ? { name: 'workflow', verdict: 'ok', message: `${shown} schedules every task as the project says` }
    : {
        name: 'workflow',
        verdict: 'fail',
        message: `${shown} ${staleReason(compared)}: run \`taskgate workflow --write\` and commit it`,
      };
}
