import { setTimeout as delay } from 'node:timers/promises';
import { type CliResult, runProcess } from './cli.js';

/**
 * A Docker engine, driven through the `docker` and `docker-compose` commands as a person drives
 * it. Containers run with the host's network (`--network host`): it reaches the test PostgreSQL
 * on the host's loopback and needs no bridge, which the machines of `.ci/run` do not have (there
 * `../shared/tools/docker-offline` starts the engine and builds the base image).
 */
const env = () => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
});

export function docker(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return runProcess('docker', args, { env: env(), timeoutMs });
}

/** Runs `docker …`, failing with its output unless it exits 0; its stdout, trimmed. */
export async function dockerOk(args: string[], timeoutMs = 60_000): Promise<string> {
  const result = await docker(args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(`docker ${args.join(' ')} exited ${result.code}:\n${result.stdout}${result.stderr}`);
  }
  return result.stdout.trim();
}

let composeCommand: Promise<string[]> | undefined;

/** `docker-compose` (v1, as Debian packages it), or else Compose v2's `docker compose`. */
function composeCommandLine(): Promise<string[]> {
  composeCommand ??= runProcess('docker-compose', ['version'], { env: env(), timeoutMs: 20_000 }).then(
    (result) => (result.code === 0 ? ['docker-compose'] : ['docker', 'compose']),
    () => ['docker', 'compose'],
  );
  return composeCommand;
}

/** Compose with the environment given and nothing else. */
export async function compose(
  args: string[],
  extraEnv: Record<string, string> = {},
  timeoutMs = 300_000,
): Promise<CliResult> {
  const [command, ...first] = await composeCommandLine();
  return runProcess(command!, [...first, ...args], { env: { ...env(), ...extraEnv }, timeoutMs });
}

/** A service's published ports from `compose config`, as `host_ip:published:target` (v1 and v2 print them differently). */
export function publishedPorts(service: { ports?: unknown[] }): string[] {
  return (service.ports ?? []).map((port) =>
    typeof port === 'string'
      ? port.replace(/\/tcp$/, '')
      : (({ host_ip, published, target }) => `${host_ip ?? ''}:${published}:${target}`)(
          port as { host_ip?: string; published: string | number; target: number },
        ),
  );
}

let answers: Promise<boolean> | undefined;

/** Whether a Docker engine answers (asked once per process). */
function dockerAnswers(): Promise<boolean> {
  answers ??= docker(['info', '--format', '{{.ServerVersion}}'], 20_000).then(
    (result) => result.code === 0 && result.stdout.trim() !== '',
    () => false,
  );
  return answers;
}

/**
 * Skips the suite loudly when no Docker engine answers; under CI (where `.ci/run` starts one)
 * fails instead.
 */
export async function requireDocker(context: Mocha.Context, suite: string): Promise<void> {
  if (await dockerAnswers()) return;
  if (process.env.CI) {
    throw new Error('no Docker engine answers: .ci/run starts one (../shared/tools/docker-offline)');
  }
  process.stderr.write(`\n!!! SKIPPED: ${suite} (no Docker engine answers: docker info fails) !!!\n\n`);
  context.skip();
}

/** Runs `sh -c script` in a new container of `image` (as root when asked), removed after; its stdout. */
export function shellIn(image: string, script: string, options: { root?: boolean } = {}): Promise<string> {
  const user = options.root ? ['--user', 'root'] : [];
  return dockerOk(['run', '--rm', ...user, '--entrypoint', 'sh', image, '-c', script]);
}

/** A container's state as `docker inspect` has it. */
export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  Health?: { Status: string; Log: { ExitCode: number; Output: string }[] };
}

export async function containerState(container: string): Promise<ContainerState> {
  return JSON.parse(await dockerOk(['inspect', '--format', '{{json .State}}', container])) as ContainerState;
}

/** Everything the container wrote so far, stdout and stderr. */
export async function containerLogs(container: string): Promise<string> {
  const result = await docker(['logs', container]);
  return result.stdout + result.stderr;
}

/** Polls the container's log until it includes `text`; fails with the log after `timeoutMs`. */
export async function untilLogged(container: string, text: string, timeoutMs: number): Promise<string> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const logs = await containerLogs(container);
    if (logs.includes(text)) return logs;
    const state = await containerState(container);
    if (!state.Running || performance.now() > until) {
      throw new Error(
        `"${text}" was not logged (container ${state.Status}, exit ${state.ExitCode}):\n${logs}`,
      );
    }
    await delay(200);
  }
}
