import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/embedded.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(ROOT, 'src/cli/main.ts');

/**
 * The working folder of every taskgate a test spawns: it has no `.env` and no `.data/`, so what a
 * spawned command reads is the environment the test gives it and never the clone's (a developer's
 * `.env` with a secret in it, or the embedded database of their `npm start`). Only the committed
 * workflow is linked in, for `workflow --check` and doctor.
 */
export const WORKDIR = (() => {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'taskgate-cwd-'));
  // embedded PostgreSQL runs as another user when the tests run as root
  chmodSync(folder, 0o755);
  symlinkSync(path.join(ROOT, '.github'), path.join(folder, '.github'));
  // `node --import tsx` finds tsx from the working folder
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(folder, 'node_modules'));
  process.once('exit', () => rmSync(folder, { recursive: true, force: true }));
  return folder;
})();

/** This repository's taskgate.config.json: it chooses every built-in task. */
const PROJECT_CONFIG = path.join(ROOT, 'taskgate.config.json');

/**
 * The environment of a spawned taskgate: only what the test gives, plus the repository's config
 * (every built-in task) unless the test names a tasks folder of its own (then only its tasks).
 * `serve` takes a port the system picks unless the test says which: never 3000, which the quick
 * start's server may hold while the tests run.
 */
export function childEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const project = env.TASKS_DIR || env.TASKGATE_CONFIG ? {} : { TASKGATE_CONFIG: PROJECT_CONFIG };
  return { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', PORT: '0', ...project, ...env };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end with only the environment given, collecting its output; killed after `timeoutMs`. */
export function runProcess(
  command: string,
  args: string[],
  options: { env: Record<string, string | undefined>; cwd?: string; timeoutMs: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs the real `taskgate` command in a child process, with only the environment given. */
export function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  return runProcess(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: WORKDIR,
    env: childEnv(env),
    timeoutMs,
  });
}

export interface Served {
  child: ChildProcess;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Everything it printed so far, stdout and stderr. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the real `taskgate serve` on a free loopback port and resolves once it listens. */
export async function startServe(env: Record<string, string>): Promise<Served> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
    cwd: WORKDIR,
    env: childEnv({ HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  for (let waited = 0; !output.includes('taskgate is listening'); waited += 50) {
    if (child.exitCode !== null || waited > 30_000) {
      child.kill('SIGKILL');
      throw new Error(`serve did not start:\n${output}`);
    }
    await delay(50);
  }
  return { child, base: `http://127.0.0.1:${port}`, output: () => output, exited };
}
