import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../../src/config.js';
import { loadRegistry, type Registry } from '../../src/core/registry.js';
import { Runner } from '../../src/core/runner.js';
import { Db } from '../../src/db/sql.js';
import { createApp } from '../../src/http/app.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { TEST_SECRET } from './secrets.js';

export { eventually } from './eventually.js';

export const COORDINATION_TASKS = fileURLToPath(new URL('../fixtures/tasks-coordination/', import.meta.url));

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The table the `exclusive` fixture task writes its start and end into. */
export async function createExecTable(url: string): Promise<void> {
  await withClient(url, (c) =>
    c.query(`create table if not exists coord_exec (
      run_id uuid primary key, pid int not null, started_at timestamptz not null, ended_at timestamptz)`),
  );
}

export interface Execution {
  runId: string;
  pid: number;
  startedAt: Date;
  endedAt: Date | null;
}

/** Every execution of `exclusive`, by start. */
export async function executions(url: string): Promise<Execution[]> {
  const { rows } = await withClient(url, (c) =>
    c.query('select run_id, pid, started_at, ended_at from coord_exec order by started_at'),
  );
  return rows.map((r) => ({ runId: r.run_id, pid: r.pid, startedAt: r.started_at, endedAt: r.ended_at }));
}

/** Pairs of executions that overlapped in time (an unfinished one lasts for ever). */
export function overlapping(list: Execution[]): [Execution, Execution][] {
  const pairs: [Execution, Execution][] = [];
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const a = list[i]!;
      const b = list[j]!;
      const aEnd = a.endedAt?.getTime() ?? Number.POSITIVE_INFINITY;
      const bEnd = b.endedAt?.getTime() ?? Number.POSITIVE_INFINITY;
      if (a.startedAt.getTime() < bEnd && b.startedAt.getTime() < aEnd) pairs.push([a, b]);
    }
  }
  return pairs;
}

export interface Replica {
  base: string;
  db: Db;
  runner: Runner;
  registry: Registry;
  close(): Promise<void>;
}

/**
 * A taskgate in this process (its own pool: one replica), listening on a free port, with the
 * coordination fixture tasks unless a registry is given.
 */
export async function startReplica(
  url: string,
  env: Record<string, string> = {},
  options: { registry?: Registry; logger?: Logger } = {},
): Promise<Replica> {
  const config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: url, CRON_SECRET_KEY: TEST_SECRET, ...env });
  const logger = options.logger ?? createLogger({ level: 'silent', pretty: false });
  const registry = options.registry ?? (await loadRegistry(COORDINATION_TASKS));
  const db = new Db({
    url,
    max: config.database.poolMax,
    queryTimeoutMs: config.database.queryTimeoutMs,
    connectTimeoutMs: config.database.connectTimeoutMs,
  });
  const runner = new Runner({ db, registry, logger, config, pollMs: 100 });
  const app = createApp({ db, logger, config, registry, runner });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    db,
    runner,
    registry,
    async close() {
      await runner.close(0);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await db.close();
    },
  };
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
  ms: number;
}

/** POST /cron/<task> with the test secret. */
export async function trigger(
  base: string,
  task: string,
  body: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`${base}/cron/${task}`, {
    method: 'POST',
    headers: { 'X-Cron-Secret': TEST_SECRET, 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? JSON.parse(text) : {},
    headers: res.headers,
    ms: performance.now() - started,
  };
}
