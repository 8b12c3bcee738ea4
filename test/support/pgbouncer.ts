import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from '../../src/db/embedded.js';

/**
 * A real PgBouncer (the Debian package) in front of the test PostgreSQL: what Neon's and
 * Supabase's pooled URLs are. In transaction mode a client's server connection changes between
 * transactions, which is what breaks session state (advisory locks, SET, LISTEN).
 */
export interface PgBouncer {
  /** The same database as `targetUrl`, through PgBouncer. */
  url: string;
  stop(): Promise<void>;
}

/** The pgbouncer binary, or null when it is not installed (the suite then says so and skips). */
function pgbouncerBinary(): string | null {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * For a suite's `before`: skips it, loudly, when pgbouncer is missing, except on CI (which
 * installs it: .ci/run), where a missing one is a failure.
 */
export function requirePgBouncer(context: Mocha.Context, suite: string): void {
  if (pgbouncerBinary()) return;
  if (process.env.CI) throw new Error('pgbouncer is not installed: .ci/run installs it');
  process.stderr.write(
    `\n!!! SKIPPED: ${suite} (pgbouncer is not installed; apt-get install pgbouncer) !!!\n\n`,
  );
  context.skip();
}

/** PgBouncer refuses to run as root: as root it runs as the `postgres` user. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export async function startPgBouncer(options: {
  targetUrl: string;
  poolMode: 'transaction' | 'session';
  /** Server connections per database and user (default 20). */
  poolSize?: number;
}): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (!binary) throw new Error('pgbouncer is not installed (apt-get install pgbouncer)');
  const target = new URL(options.targetUrl);
  const user = decodeURIComponent(target.username || 'postgres');
  const password = decodeURIComponent(target.password);
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-pgbouncer-'));
  await chmod(dir, 0o777);
  const server = [
    `host=${target.hostname}`,
    `port=${target.port || 5432}`,
    `user=${user}`,
    ...(password ? [`password=${password}`] : []),
  ].join(' ');
  await writeFile(path.join(dir, 'users.txt'), `"${user}" ""\n`);
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = ${server}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      `pool_mode = ${options.poolMode}`,
      `default_pool_size = ${options.poolSize ?? 20}`,
      'max_client_conn = 1000',
      'ignore_startup_parameters = extra_float_digits,options,application_name',
      'server_reset_query = DISCARD ALL',
      '',
    ].join('\n'),
  );
  await chmod(path.join(dir, 'users.txt'), 0o644);
  await chmod(path.join(dir, 'pgbouncer.ini'), 0o644);

  let output = '';
  const child: ChildProcess = spawn(binary, [path.join(dir, 'pgbouncer.ini')], {
    ...runAs(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A test run that ends without stopping it (a time-out, an uncaught error) leaves no pgbouncer behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const url = new URL(options.targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  url.password = '';
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited at start:\n${output}`);
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 1_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      break;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (waited > 10_000) {
        child.kill('SIGKILL');
        throw new Error(`pgbouncer did not answer: ${(error as Error).message}\n${output}`);
      }
      await delay(100);
    }
  }
  return {
    url: url.toString(),
    async stop() {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null) {
        child.kill('SIGINT');
        await Promise.race([exited, delay(5_000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
