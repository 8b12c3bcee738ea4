import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { loadRegistry } from '../src/core/registry.js';
import { freePort } from '../src/db/embedded.js';
import { ROOT, runProcess } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { type CodeBlock, codeBlocks, type DocPage, docPages } from './support/docs.js';

/**
 * Runs every ```sh block of the README and docs/ that can run on this machine, as a reader runs
 * them: page by page, top to bottom, in one bash session per page (so a `cd` or a variable carries
 * to the next block), each command's failure failing the page. A block that cannot run here is
 * marked by an HTML comment just above it, `<!-- not run: REASON -->`, and counted by its reason.
 *
 * Where a reader is when the commands run:
 * - in a project made by the real `taskgate init chores --yes` inside a repository folder, with its
 *   dependencies in place: taskgate is this checkout (linked, as `npm link` would), TypeScript and
 *   Node's types are this checkout's. The README starts at the repository's root, before the
 *   project's first command; every page of docs/ starts in the project's folder;
 * - with the task examples the page shows written into the project's tasks/, as the page tells;
 * - against a database of the test's own, shaped as Django leaves it (simplejwt's and the session
 *   tables): for the README, before taskgate has touched it; for docs/, with taskgate's schema
 *   migrated, as a deployment leaves it. It is DATABASE_URL in the environment, which wins over the
 *   `.env` where the README puts the reader's own URL;
 * - with CRON_SECRET_KEY set, and, for a page whose commands call taskgate over HTTP, TASKGATE_URL
 *   naming a `taskgate serve` of that project on a free port;
 * - with HOME a folder of the test's own, whose .curlrc makes curl fail on an HTTP error answer
 *   (so that a command answered 4xx or 5xx fails its block, as a reader would see it fail).
 *
 * One shortcut: `npx <bin>` of a bin the project has installed runs that bin, as npx does, without
 * npx's own start (about half a second of CPU each time, some thirty times); any other npx is npx.
 */

/** npx for a bin in the project's node_modules/.bin, from wherever the reader is in the project. */
const NPX = `npx() {
  local dir=$PWD
  while [ "$dir" != / ]; do
    if [ -x "$dir/node_modules/.bin/$1" ]; then "$dir/node_modules/.bin/$1" "\${@:2}"; return; fi
    dir=$(dirname "$dir")
  done
  command npx "$@"
}`;

const run = promisify(execFile);

/** What the docs' commands use besides node and npm. */
const TOOLS: [tool: string, ...args: string[]][] = [
  ['bash', '--version'],
  ['curl', '--version'],
  ['openssl', 'version'],
];

/** Fences that hold shell commands must say `sh`, so that none escapes this test. */
const OTHER_SHELLS = new Set(['bash', 'shell', 'zsh', 'console', 'shell-session']);

/** A reader needs a running taskgate for these. */
const needsServer = (code: string) => /\$TASKGATE_URL|\btaskgate trigger\b|\bstatus --url\b/.test(code);

/** What a reader does at one point of a page: run a block of commands, or write a task module. */
interface Step {
  block: CodeBlock;
  /** The task's name, when the step writes the page's example into the project's tasks/. */
  task?: string;
}

interface Page {
  page: DocPage;
  /** Its shell blocks, run or not. */
  blocks: CodeBlock[];
  steps: Step[];
}

const TASK_NAME = /^\s*name:\s*'([a-z0-9_]+)'/m;

const PAGES: Page[] = docPages().map((page) => {
  const all = codeBlocks(page);
  const steps = all.flatMap((block): Step[] => {
    if (block.lang === 'sh') return block.notRun === undefined ? [{ block }] : [];
    const task = block.lang === 'ts' ? TASK_NAME.exec(block.code)?.[1] : undefined;
    return task && block.code.includes('defineTask(') ? [{ block, task }] : [];
  });
  return { page, blocks: all.filter((block) => block.lang === 'sh'), steps };
});

/**
 * taskgate as a project's dependency, standing for the package with this checkout: its bin and
 * package.json are the checkout's (the bin runs the source), and its entry point, which the build
 * makes from src/index.ts, re-exports src/index.ts.
 */
async function linkedPackage(into: string): Promise<string> {
  const folder = path.join(into, 'taskgate');
  await mkdir(path.join(folder, 'dist/src'), { recursive: true });
  await symlink(path.join(ROOT, 'package.json'), path.join(folder, 'package.json'));
  await symlink(path.join(ROOT, 'bin'), path.join(folder, 'bin'));
  const entry = pathToFileURL(path.join(ROOT, 'src/index.ts')).href;
  await writeFile(path.join(folder, 'dist/src/index.js'), `export * from '${entry}';\n`);
  return folder;
}

/** The project `taskgate init` makes, with its dependencies in place: made once, copied per page. */
async function scaffold(into: string, taskgate: string): Promise<void> {
  const tasks = (await loadRegistry()).names().join(',');
  await run(
    process.execPath,
    [path.join(ROOT, 'bin/taskgate.js'), 'init', 'chores', '--yes', '--tasks', tasks, '--no-install'],
    { cwd: into, env: { PATH: process.env.PATH, HOME: into } },
  );
  const modules = path.join(into, 'chores', 'node_modules');
  await mkdir(path.join(modules, '.bin'), { recursive: true });
  await mkdir(path.join(modules, '@types'));
  await symlink(taskgate, path.join(modules, 'taskgate'));
  await symlink(path.join(ROOT, 'node_modules/typescript'), path.join(modules, 'typescript'));
  await symlink(path.join(ROOT, 'node_modules/@types/node'), path.join(modules, '@types/node'));
  await symlink('../taskgate/bin/taskgate.js', path.join(modules, '.bin/taskgate'));
}

/** A database as Django leaves it: its tables, and nothing of taskgate's. */
async function djangoDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrated: false });
  for (const task of (await loadRegistry()).list()) await task.definition.prepareDevDatabase?.(db.sql);
  return db;
}

async function startServe(project: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(path.join(project, 'node_modules/.bin/taskgate'), ['serve'], {
    cwd: project,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  for (let waited = 0; ; waited += 100) {
    const ready = await fetch(`${env.TASKGATE_URL}/readyz`).then(
      (answer) => answer.ok,
      () => false,
    );
    if (ready) return child;
    if (child.exitCode !== null || waited > 60_000) {
      child.kill('SIGKILL');
      throw new Error(`taskgate serve did not start in the project:\n${output}`);
    }
    await delay(100);
  }
}

/**
 * One bash session for the page, its steps in the page's order, a marker before each: a block of
 * commands is sourced (so that `cd` and variables carry on), a task example is put where the page
 * tells the reader to put it.
 */
function session(steps: Step[], folder: string, project: string): string {
  return [
    'set -e',
    NPX,
    ...steps.map((step, index) =>
      [
        `echo "@@step ${index}" >&2`,
        step.task
          ? `cp '${folder}/step-${index}' '${project}/tasks/${step.task}.ts'`
          : `. '${folder}/step-${index}'`,
      ].join('\n'),
    ),
    'echo "@@done" >&2',
  ].join('\n');
}

const counts = { ran: 0, skipped: new Map<string, number>() };

describe('the commands of the README and docs/', function () {
  this.timeout(300_000);
  let scratch: string | undefined;
  let template: string;

  before(async function () {
    const missing = TOOLS.filter(([tool, ...args]) => spawnSync(tool, args).status !== 0).map(
      ([tool]) => tool,
    );
    if (missing.length > 0) {
      // CI has them all (.ci/run); there a missing one is a failure, not a skip.
      if (process.env.CI) throw new Error(`${missing.join(', ')} missing: the docs' commands need them`);
      console.warn(`\n  SKIPPED: the docs' commands need ${missing.join(', ')}, which are not installed\n`);
      this.skip();
    }
    scratch = await mkdtemp(path.join(os.tmpdir(), 'taskgate-docs-'));
    template = path.join(scratch, 'template');
    await mkdir(template);
    await scaffold(template, await linkedPackage(scratch));
  });
  after(async () => {
    if (!scratch) return;
    await rm(scratch, { recursive: true, force: true });
    const skipped = [...counts.skipped].map(([reason, n]) => `${reason} (${n})`).join(', ');
    process.stdout.write(
      `      docs: ran ${counts.ran} blocks; ` +
        `skipped ${[...counts.skipped.values()].reduce((a, b) => a + b, 0)} by their mark: ${skipped}\n`,
    );
  });

  it('are written as ```sh blocks, and each block not run says why', () => {
    const blocks = docPages().flatMap(codeBlocks);
    const other = blocks.filter((block) => OTHER_SHELLS.has(block.lang));
    expect(other.map((block) => `${block.file}:${block.line} (${block.lang})`)).to.deep.equal([]);
    const marked = blocks.filter((block) => block.notRun !== undefined && block.lang !== 'sh');
    expect(
      marked.map((block) => `${block.file}:${block.line}`),
      'a mark above a block that is not sh',
    ).to.deep.equal([]);
    expect(PAGES.flatMap((page) => page.steps.filter((step) => !step.task)).length).to.be.greaterThan(20);
  });

  for (const { page, blocks, steps } of PAGES) {
    if (blocks.length === 0) continue;
    const runnable = steps.filter((step) => !step.task);
    const title =
      runnable.length === 0
        ? `${page.file}: none can run here (${blocks.length} marked)`
        : `${page.file}: run in order, as a reader runs them (${runnable.length} of ${blocks.length} blocks)`;
    it(title, async () => {
      for (const block of blocks) {
        if (block.notRun !== undefined)
          counts.skipped.set(block.notRun, (counts.skipped.get(block.notRun) ?? 0) + 1);
      }
      if (runnable.length === 0) return;
      const here = await mkdtemp(path.join(scratch!, `${page.file.replace(/\W+/g, '-')}-`));
      const repository = path.join(here, 'app');
      const home = path.join(here, 'home');
      await cp(template, repository, { recursive: true, verbatimSymlinks: true });
      await mkdir(home);
      await writeFile(path.join(home, '.curlrc'), 'fail\n');
      const project = path.join(repository, 'chores');

      const readme = page.file === 'README.md';
      const db = readme ? await djangoDatabase() : await createTestDatabase();
      const env: Record<string, string> = {
        PATH: process.env.PATH!,
        HOME: home,
        LANG: 'C.UTF-8',
        DATABASE_URL: db.url,
        CRON_SECRET_KEY: randomBytes(32).toString('hex'),
        TASKGATE_URL: `http://127.0.0.1:${await freePort()}`,
        npm_config_update_notifier: 'false',
        npm_config_fund: 'false',
      };
      let server: ChildProcess | undefined;
      try {
        if (runnable.some((step) => needsServer(step.block.code))) {
          server = await startServe(project, { ...env, PORT: new URL(env.TASKGATE_URL!).port });
        }
        await Promise.all(
          steps.map((step, index) => writeFile(path.join(here, `step-${index}`), step.block.code)),
        );
        const result = await runProcess('bash', ['-c', session(steps, here, project)], {
          cwd: readme ? repository : project,
          env,
          timeoutMs: 240_000,
        });
        const failed = [...result.stderr.matchAll(/@@step (\d+)/g)].at(-1)?.[1];
        const done = result.stderr.includes('@@done');
        const block = failed === undefined ? undefined : steps[Number(failed)]!.block;
        expect(
          done && result.code === 0,
          `${block ? `${page.file}:${block.line}` : page.file} failed (exit ${result.code}):\n` +
            `${block?.code ?? ''}\n--- stdout\n${result.stdout.slice(-3000)}\n--- stderr\n${result.stderr.slice(-3000)}`,
        ).to.equal(true);
        counts.ran += runnable.length;
      } finally {
        server?.kill('SIGTERM');
        await new Promise((resolve) =>
          server && server.exitCode === null ? server.once('exit', resolve) : resolve(null),
        );
        await db.drop();
      }
    });
  }
});
