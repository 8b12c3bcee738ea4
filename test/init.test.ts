import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { childEnv, ROOT, runProcess } from './support/cli.js';

/** The bin itself: in a clone it runs the source under tsx, found from the bin's own folder. */
const BIN = path.join(ROOT, 'bin/taskgate.js');

import { createTestDatabase, type TestDatabase } from './support/database.js';

/**
 * `taskgate init` without installing (the package test installs, from a tarball): what it writes
 * where, what it refuses, and what it finds in a database. Run from the source, in folders of the
 * test's own.
 */
const init = (cwd: string, args: string[], env: Record<string, string> = {}) =>
  runProcess(process.execPath, [BIN, 'init', ...args, '--no-install'], {
    cwd,
    env: childEnv({ TASKGATE_CONFIG: '', ...env }),
    timeoutMs: 60_000,
  });

describe('taskgate init', function () {
  this.timeout(90_000);
  let work: string;
  let db: TestDatabase;
  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'taskgate-init-'));
    db = await createTestDatabase();
  });
  after(async () => {
    await db.drop();
    await rm(work, { recursive: true, force: true });
  });

  /** A fresh repository folder (git init'ed when `git`), with `files` already in it. */
  async function repository(name: string, options: { git?: boolean; files?: Record<string, string> } = {}) {
    const dir = path.join(work, name);
    await mkdir(dir);
    if (options.git !== false) await mkdir(path.join(dir, '.git'));
    for (const [file, content] of Object.entries(options.files ?? {})) {
      await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await writeFile(path.join(dir, file), content);
    }
    return dir;
  }

  it('writes the project in a subfolder and the workflow, Blueprint and dependabot at the repository root', async () => {
    const repo = await repository('app');
    const result = await init(repo, [
      'chores',
      '--yes',
      '--tasks',
      'flushexpiredtokens_daily,clearsessions_daily',
    ]);
    expect(result.code, result.stderr).to.equal(0);
    const project = path.join(repo, 'chores');
    const config = JSON.parse(await readFile(path.join(project, 'taskgate.config.json'), 'utf8'));
    expect(config).to.deep.equal({
      $schema: './node_modules/taskgate/dist/taskgate.config.schema.json',
      tasks: { clearsessions_daily: {}, flushexpiredtokens_daily: {} },
      workflow: '../.github/workflows/taskgate.yml',
    });
    const pkg = JSON.parse(await readFile(path.join(project, 'package.json'), 'utf8'));
    expect(pkg).to.include({ name: 'chores', private: true, type: 'module' });
    expect(pkg.dependencies.taskgate).to.match(/^\^\d+\.\d+\.\d+$/);
    expect(pkg.scripts.build).to.equal('taskgate build');
    const blueprint = parseYaml(await readFile(path.join(repo, 'render.yaml'), 'utf8')).services[0];
    expect(blueprint).to.include({
      rootDir: 'chores',
      buildCommand: 'npm ci --include=dev --omit=optional && npm run build',
      startCommand: 'node_modules/.bin/taskgate serve',
      healthCheckPath: '/healthz',
    });
    expect(blueprint.region).to.be.a('string');
    const dependabot = parseYaml(await readFile(path.join(repo, '.github/dependabot.yml'), 'utf8'));
    expect(dependabot.updates[0]).to.include({ 'package-ecosystem': 'npm', directory: '/chores' });
    const workflow = await readFile(path.join(repo, '.github/workflows/taskgate.yml'), 'utf8');
    expect(workflow).to.include('"0 0 * * *" # flushexpiredtokens_daily');
    expect(workflow).to.include('"15 0 * * *" # clearsessions_daily');
    for (const file of [
      'tsconfig.json',
      'tasks/_example.ts',
      '.env.sample',
      '.gitignore',
      'README.md',
      'Dockerfile',
    ]) {
      expect(existsSync(path.join(project, file)), file).to.equal(true);
    }
    expect(await readFile(path.join(project, '.env.sample'), 'utf8')).to.include(
      '# DJANGO_SESSION_TABLE=django_session',
    );
    expect(result.stdout).to.include('gh secret set CRON_SECRET_KEY');
    expect(result.stdout).to.include('gh variable set TASKGATE_URL --body https://chores.onrender.com');
    expect(result.stdout).to.include('git add chores render.yaml .github');
  });

  it('checks the workflow it wrote as current, from the project folder', async () => {
    const repo = await repository('checked');
    expect((await init(repo, ['jobs', '--yes', '--tasks', 'prunetaskruns_weekly'])).code).to.equal(0);
    const check = await runProcess(process.execPath, [BIN, 'workflow', '--check'], {
      cwd: path.join(repo, 'jobs'),
      env: childEnv({ TASKGATE_CONFIG: '' }),
      timeoutMs: 30_000,
    });
    expect(check.code, check.stdout + check.stderr).to.equal(0);
    expect(check.stdout).to.equal('../.github/workflows/taskgate.yml is up to date\n');
  });

  it('leaves an existing render.yaml and dependabot.yml alone, saying where the service went and what to add', async () => {
    const repo = await repository('onrender', {
      files: { 'render.yaml': 'services: []\n', '.github/dependabot.yml': 'version: 2\nupdates: []\n' },
    });
    const result = await init(repo, ['chores', '--yes']);
    expect(result.code, result.stderr).to.equal(0);
    expect(await readFile(path.join(repo, 'render.yaml'), 'utf8')).to.equal('services: []\n');
    expect(await readFile(path.join(repo, '.github/dependabot.yml'), 'utf8')).to.equal(
      'version: 2\nupdates: []\n',
    );
    expect(
      parseYaml(await readFile(path.join(repo, 'chores/render.yaml'), 'utf8')).services[0].rootDir,
    ).to.equal('chores');
    expect(result.stdout).to.include(
      "render.yaml exists: the service is in chores/render.yaml; add it to render.yaml's services",
    );
    expect(result.stdout).to.include('.github/dependabot.yml exists and was left alone');
  });

  it('refuses to overwrite a file, listing each, and writes nothing; --force overwrites', async () => {
    const repo = await repository('again');
    expect((await init(repo, ['chores', '--yes'])).code).to.equal(0);
    await writeFile(path.join(repo, 'chores/README.md'), 'mine\n');
    const again = await init(repo, ['chores', '--yes', '--tasks', 'clearsessions_daily']);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.match(
      /^taskgate: these files exist and would be overwritten: chores\/package\.json, /,
    );
    expect(await readFile(path.join(repo, 'chores/README.md'), 'utf8')).to.equal('mine\n');
    const forced = await init(repo, ['chores', '--yes', '--tasks', 'clearsessions_daily', '--force']);
    expect(forced.code, forced.stderr).to.equal(0);
    expect(await readFile(path.join(repo, 'chores/README.md'), 'utf8')).to.include('clearsessions_daily');
  });

  it('outside a repository writes everything into the project folder', async () => {
    const plain = await repository('plain', { git: false });
    expect((await init(plain, ['.', '--yes'])).code).to.equal(0);
    const blueprint = parseYaml(await readFile(path.join(plain, 'render.yaml'), 'utf8')).services[0];
    expect(blueprint.rootDir).to.equal(undefined);
    expect(existsSync(path.join(plain, '.github/workflows/taskgate.yml'))).to.equal(true);
    const config = JSON.parse(await readFile(path.join(plain, 'taskgate.config.json'), 'utf8'));
    expect(config.workflow).to.equal(undefined);
  });

  it('chooses the tasks whose tables the database has, and says which it found', async () => {
    // The test database has every built-in task's tables (the development tables).
    const repo = await repository('detected');
    const result = await init(repo, ['chores', '--yes'], { DATABASE_URL: db.url });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(
      /looked in database ".*": .*clearsessions_daily, .*flushexpiredtokens_daily, .*prunetaskruns_weekly/,
    );
    await db.sql.query('alter table django_session rename to django_session_gone');
    try {
      const repo2 = await repository('detected2');
      const without = await init(repo2, ['chores', '--yes'], { DATABASE_URL: db.url });
      const config = JSON.parse(await readFile(path.join(repo2, 'chores/taskgate.config.json'), 'utf8'));
      expect(Object.keys(config.tasks), without.stdout).to.not.include('clearsessions_daily');
      expect(Object.keys(config.tasks)).to.include('flushexpiredtokens_daily');
    } finally {
      await db.sql.query('alter table django_session_gone rename to django_session');
    }
  });

  it('refuses an unknown task with exit 2, listing the built-in ones', async () => {
    const repo = await repository('unknown');
    const result = await init(repo, ['chores', '--yes', '--tasks', 'flushexpiredtoken_daily']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(
      /no built-in task named "flushexpiredtoken_daily" \(built-in tasks: .*flushexpiredtokens_daily/,
    );
    expect(existsSync(path.join(repo, 'chores'))).to.equal(false);
  });

  it('without a terminal and without --yes, says how to run it in a script, exit 2', async () => {
    const repo = await repository('script');
    const result = await runProcess(process.execPath, [BIN, 'init', 'chores'], {
      cwd: repo,
      env: childEnv({ TASKGATE_CONFIG: '' }),
      timeoutMs: 30_000,
    });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('taskgate init <dir> --yes [--tasks a,b]');
  });

  it('asks in a terminal: the folder, the database, the tasks (those found selected), then writes them', async function () {
    if (!existsSync('/usr/bin/script')) this.skip();
    const repo = await repository('asked');
    // script(1) gives init a terminal; keys are typed once each question is on the screen.
    const child = spawn(
      '/usr/bin/script',
      ['-qfec', `stty cols 120 rows 40; exec node ${BIN} init --no-install`, '/dev/null'],
      {
        cwd: repo,
        env: childEnv({ TASKGATE_CONFIG: '', TERM: 'xterm' }) as NodeJS.ProcessEnv,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let screen = '';
    child.stdout.on('data', (chunk) => (screen += chunk));
    child.stderr.on('data', (chunk) => (screen += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const answer = async (question: RegExp, keys: string) => {
      // Colours and cursor moves apart, the screen's text.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the terminal codes it removes
      const text = () => screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
      for (let waited = 0; !question.test(text()); waited += 50) {
        if (waited > 30_000) throw new Error(`no question ${question} on the screen:\n${text()}`);
        await delay(50);
      }
      screen = '';
      child.stdin.write(keys);
    };
    await answer(/Folder for the project/, '\x15chores\r'); // ^U clears the suggested name
    await answer(/DATABASE_URL of your app/, `${db.url}\r`);
    // The tasks found are selected: the cursor is on the first (axesexpireattempts_hourly); space drops it.
    await answer(/Built-in tasks \(those whose tables are there are selected\)/, ' \r');
    expect(await exited, screen).to.equal(0);
    const config = JSON.parse(await readFile(path.join(repo, 'chores/taskgate.config.json'), 'utf8'));
    expect(Object.keys(config.tasks)).to.not.include('axesexpireattempts_hourly');
    expect(Object.keys(config.tasks)).to.include.members([
      'clearsessions_daily',
      'flushexpiredtokens_daily',
      'prunetaskruns_weekly',
    ]);
  });
});
