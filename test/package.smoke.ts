/**
 * taskgate as a package a user's project depends on, the way a new user meets it: packed with
 * `npm pack`, a project scaffolded from the tarball by `taskgate init … --yes` inside an app's
 * repository, the docs' example task added, then the commands the README gives, the scaffold's
 * own render.yaml build and start commands, and a trigger over HTTP. Slow (npm installs): run by
 * `npm run test:production` and CI, not by `npm test`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { builtinTaskNames } from '../src/core/registry.js';
import { freePort } from '../src/db/embedded.js';
import { ROOT, runProcess } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TEST_SECRET } from './support/runner.js';

const env = { PATH: process.env.PATH, HOME: process.env.HOME };

/** The docs' example task: the first TypeScript block of docs/writing-tasks.md that defines one. */
async function docsExample(): Promise<{ name: string; source: string }> {
  const page = await readFile(path.join(ROOT, 'docs/writing-tasks.md'), 'utf8');
  const source = [...page.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((block) => block.includes('defineTask('));
  expect(source, 'docs/writing-tasks.md has an example task').to.be.a('string');
  const name = /name: '([a-z0-9_]+)'/.exec(source!)![1]!;
  return { name, source: source! };
}

async function sh(command: string, args: string[], cwd: string, extra: Record<string, string> = {}) {
  const result = await runProcess(command, args, { cwd, env: { ...env, ...extra }, timeoutMs: 300_000 });
  return { ...result, output: `${command} ${args.join(' ')}\n${result.stdout}${result.stderr}` };
}

describe('taskgate as a package: npm pack, taskgate init, a project of its own', function () {
  this.timeout(600_000);
  let work: string;
  let tarball: string;
  let app: string;
  let project: string;
  let db: TestDatabase;
  let example: { name: string; source: string };
  const figures: Record<string, number | string> = {};

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'taskgate-package-'));
    db = await createTestDatabase();
    example = await docsExample();
  });
  after(async () => {
    process.stderr.write(`      package figures: ${JSON.stringify(figures)}\n`);
    await db?.drop();
    await rm(work, { recursive: true, force: true });
  });

  it('packs what runs and nothing else: the bin, the bundle with every built-in task, the types', async () => {
    const started = performance.now();
    const packed = await sh('npm', ['pack', '--json', '--pack-destination', work], ROOT);
    expect(packed.code, packed.output).to.equal(0);
    figures.packMs = Math.round(performance.now() - started);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      size: number;
      unpackedSize: number;
      files: { path: string }[];
    }[];
    tarball = path.join(work, info!.filename);
    figures.tarballKB = Math.round(info!.size / 1024);
    figures.unpackedKB = Math.round(info!.unpackedSize / 1024);
    figures.files = info!.files.length;
    const files = info!.files.map((f) => f.path);
    expect(files).to.include.members([
      'package.json',
      'bin/taskgate.js',
      'dist/src/cli/main.js',
      'dist/src/index.js',
      'dist/index.d.ts',
      'dist/taskgate.config.schema.json',
      ...(await builtinTaskNames()).map((name) => `dist/tasks/${name}.js`),
    ]);
    const shipped = files.filter(
      (f) => /^(src|test|bench|scripts|tasks|docs|\.github)\//.test(f) || f.endsWith('.map'),
    );
    expect(shipped, 'no source, tests, benchmarks or source maps').to.deep.equal([]);
  });

  it('scaffolds a project in a subfolder of an app repository with `npx --package <tarball> taskgate init … --yes`', async () => {
    app = path.join(work, 'djangoapp');
    await mkdir(app);
    await writeFile(path.join(app, 'manage.py'), '');
    expect((await sh('git', ['init', '-q'], app)).code).to.equal(0);
    const started = performance.now();
    const init = await sh(
      'npx',
      [
        '--yes',
        '--package',
        tarball,
        'taskgate',
        'init',
        'chores',
        '--yes',
        '--tasks',
        'flushexpiredtokens_daily',
        '--taskgate',
        `file:${tarball}`,
      ],
      app,
    );
    figures.initMs = Math.round(performance.now() - started);
    expect(init.code, init.output).to.equal(0);
    project = path.join(app, 'chores');
    expect(init.stdout)
      .to.include('gh secret set CRON_SECRET_KEY')
      .and.include('gh variable set TASKGATE_URL');
    expect(init.stdout).to.include('New > Blueprint');
    // The workflow, the Blueprint and dependabot's config at the repository's root; the rest in chores/.
    for (const file of ['.github/workflows/taskgate.yml', '.github/dependabot.yml', 'render.yaml']) {
      await stat(path.join(app, file));
    }
    expect((await readdir(project)).sort()).to.include.members([
      '.env.sample',
      '.gitignore',
      'README.md',
      'package.json',
      'package-lock.json',
      'taskgate.config.json',
      'tasks',
      'tsconfig.json',
      'node_modules',
    ]);
    const config = JSON.parse(await readFile(path.join(project, 'taskgate.config.json'), 'utf8'));
    expect(Object.keys(config.tasks)).to.deep.equal(['flushexpiredtokens_daily']);
    const schema = path.join(project, config.$schema);
    expect(JSON.parse(await readFile(schema, 'utf8')).type, 'the $schema resolves').to.equal('object');
    const readme = await readFile(path.join(project, 'README.md'), 'utf8');
    expect(readme.split('\n').length, 'a README of a screen or two').to.be.below(80);
  });

  it("takes the docs' example task and lists it beside the chosen built-in task", async () => {
    await writeFile(path.join(project, 'tasks', `${example.name}.ts`), example.source);
    const list = await sh('npx', ['taskgate', 'list', '--json'], project);
    expect(list.code, list.output).to.equal(0);
    const names = (JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name);
    expect(names).to.deep.equal([example.name, 'flushexpiredtokens_daily'].sort());
  });

  it('dry-runs the example against a Django-shaped database, compiling it on the way, with no build', async () => {
    const run = await sh('npx', ['taskgate', 'run', example.name, '--dry-run', '--json'], project, {
      DATABASE_URL: db.url,
    });
    expect(run.code, run.output).to.equal(0);
    expect(JSON.parse(run.stdout)).to.include({ task: example.name, status: 'succeeded', dryRun: true });
  });

  it('writes the workflow at the repository root with `workflow --write`, and `--check` then passes', async () => {
    const write = await sh('npx', ['taskgate', 'workflow', '--write'], project);
    expect(write.code, write.output).to.equal(0);
    expect(write.stdout).to.equal('wrote ../.github/workflows/taskgate.yml\n');
    const workflow = await readFile(path.join(app, '.github/workflows/taskgate.yml'), 'utf8');
    expect(workflow).to.include(example.name).and.include('flushexpiredtokens_daily');
    const check = await sh('npx', ['taskgate', 'workflow', '--check'], project);
    expect(check.code, check.output).to.equal(0);
  });

  describe("the scaffold's render.yaml, as Render runs it", () => {
    let blueprint: { rootDir: string; buildCommand: string; startCommand: string };
    let child: ChildProcess | undefined;
    after(() => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
    });

    it('builds with its buildCommand (NODE_ENV=production, as Render builds)', async () => {
      blueprint = parseYaml(await readFile(path.join(app, 'render.yaml'), 'utf8')).services[0];
      expect(blueprint.rootDir).to.equal('chores');
      await rm(path.join(project, 'node_modules'), { recursive: true, force: true });
      const started = performance.now();
      const build = await sh('sh', ['-c', blueprint.buildCommand], path.join(app, blueprint.rootDir), {
        NODE_ENV: 'production',
      });
      figures.renderBuildMs = Math.round(performance.now() - started);
      expect(build.code, build.output).to.equal(0);
      expect(build.stdout).to.match(
        new RegExp(`tasks: ${[example.name, 'flushexpiredtokens_daily'].sort().join(', ')}`),
      );
    });

    it('starts with its startCommand, node as the process, and runs the example when triggered over HTTP', async () => {
      const port = await freePort();
      child = spawn('sh', ['-c', `exec ${blueprint.startCommand}`], {
        cwd: project,
        env: {
          ...env,
          NODE_ENV: 'production',
          DATABASE_URL: db.url,
          CRON_SECRET_KEY: TEST_SECRET,
          HOST: '127.0.0.1',
          PORT: String(port),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (chunk) => (output += chunk));
      child.stderr!.on('data', (chunk) => (output += chunk));
      const started = performance.now();
      while (!output.includes('taskgate is listening')) {
        expect(child.exitCode, output).to.equal(null);
        expect(performance.now() - started, output).to.be.below(60_000);
        await delay(50);
      }
      figures.startToListeningMs = Math.round(performance.now() - started);
      const comm = (await readFile(`/proc/${child.pid}/comm`, 'utf8')).trim();
      expect(comm, 'the process Render signals is node').to.equal('node');
      const answer = await fetch(`http://127.0.0.1:${port}/cron/${example.name}`, {
        method: 'POST',
        headers: { 'X-Cron-Secret': TEST_SECRET, 'Content-Type': 'application/json' },
        body: JSON.stringify({ dryRun: true }),
      });
      const body = (await answer.json()) as Record<string, unknown>;
      expect(answer.status, JSON.stringify(body)).to.equal(200);
      expect(body).to.include({ status: 'success', task: example.name });
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
    });

    it('fails the same build on a type error in a task, naming its file and line', async () => {
      await writeFile(
        path.join(project, 'tasks', 'broken_daily.ts'),
        `import { defineTask, z } from 'taskgate';

export default defineTask({
  name: 'broken_daily',
  description: 'Does not type-check.',
  schedule: null,
  params: z.strictObject({}),
  async run({ db }) {
    const n: number = (await db.query('select 1')).rows;
    return { n };
  },
});
`,
      );
      const build = await sh('sh', ['-c', blueprint.buildCommand], project, { NODE_ENV: 'production' });
      expect(build.code).to.equal(1);
      expect(build.stderr).to.match(/tasks\/broken_daily\.ts\(9,11\): error TS2322/);
      await rm(path.join(project, 'tasks', 'broken_daily.ts'));
    });
  });
});
