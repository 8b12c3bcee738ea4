import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BUILTIN_TASKS_DIR, loadRegistry, type RegisteredTask, Registry } from '../core/registry.js';
import { describeDatabase } from '../db/connect.js';
import { Db } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import { PROJECT_FILE } from '../projectFile.js';
import { generateWorkflow, WORKFLOW_PATH } from '../scheduling/workflow.js';
import { VERSION } from '../version.js';
import * as scaffold from './scaffold.js';

/**
 * `taskgate init [dir]`: scaffolds a project that depends on taskgate, so that using taskgate
 * never means forking it. It can write into a subfolder of an existing repository (a Django
 * app's, say): the scheduler workflow, the Render Blueprint and dependabot's config then go to
 * that repository's root. It never overwrites a file (`--force` does), and ends by printing the
 * next steps.
 */
export interface InitOptions {
  /** The project's folder; asked for when interactive, `taskgate` otherwise. */
  dir?: string;
  /** Built-in tasks to choose; asked for when interactive, otherwise those found or the default. */
  tasks?: string[];
  /** Where to look for the tasks' tables, to offer the tasks that apply there. */
  databaseUrl?: string;
  /** What package.json depends on: `^<this version>`, or a tarball or other npm spec. */
  taskgateSpec?: string;
  interactive: boolean;
  install: boolean;
  force: boolean;
  /** Where init's own messages go (stdout). */
  print(text: string): void;
}

/** What a project gets when nothing says otherwise: the flush, taskgate's first task, and its own pruning. */
const DEFAULT_TASKS = ['flushexpiredtokens_daily', 'prunetaskruns_weekly'];

interface Planned {
  file: string;
  content: string;
  /** Left alone when it exists (its content is then printed as a note), instead of a conflict. */
  optional?: string;
}

export async function init(options: InitOptions): Promise<void> {
  const prompts = options.interactive ? await import('@clack/prompts') : null;
  prompts?.intro(`taskgate ${VERSION}: a project of scheduled maintenance tasks`);
  const asked = <T>(value: T): Exclude<T, symbol> => {
    if (prompts?.isCancel(value)) {
      prompts.cancel('nothing written');
      throw new TaskgateError('INIT_CONFLICT', 'cancelled: nothing written');
    }
    return value as Exclude<T, symbol>;
  };

  const dir =
    options.dir ??
    (prompts
      ? asked(
          await prompts.text({
            message: 'Folder for the project (a subfolder of your app’s repository is fine)',
            initialValue: 'taskgate',
          }),
        )
      : 'taskgate');
  const projectDir = path.resolve(dir);

  const builtins = await loadRegistry(BUILTIN_TASKS_DIR, process.env);
  let databaseUrl = options.databaseUrl;
  if (!databaseUrl && prompts) {
    databaseUrl =
      asked(
        await prompts.password({
          message: 'DATABASE_URL of your app’s database, to see which tasks apply there (Enter to skip)',
          mask: '*',
        }),
      ) || undefined;
  }
  const found = databaseUrl ? await tasksWithTables(builtins, databaseUrl, options.print) : null;

  let chosen: string[];
  if (options.tasks) {
    chosen = options.tasks;
  } else if (prompts) {
    chosen = asked(
      await prompts.multiselect({
        message: found ? 'Built-in tasks (those whose tables are there are selected)' : 'Built-in tasks',
        options: builtins.list().map((task) => ({
          value: task.definition.name,
          label: task.definition.name,
          hint: task.definition.description,
        })),
        initialValues: found ?? DEFAULT_TASKS,
        required: false,
      }),
    );
  } else {
    chosen = found ?? DEFAULT_TASKS;
  }
  const unknown = chosen.filter((name) => !builtins.get(name));
  if (unknown.length > 0) {
    throw new TaskgateError(
      'INVALID_PARAMS',
      `no built-in task named ${unknown.map((n) => `"${n}"`).join(', ')} (built-in tasks: ${builtins.names().join(', ')})`,
    );
  }
  const tasks = new Registry(chosen.map((name) => builtins.require(name))).list();

  const root = repositoryRoot(projectDir) ?? projectDir;
  const fromRoot = path.relative(root, projectDir).split(path.sep).join('/');
  const workflowFile = path.join(root, WORKFLOW_PATH);
  const input: scaffold.ScaffoldInput = {
    name: packageName(projectDir),
    tasks,
    taskgateSpec: options.taskgateSpec ?? `^${VERSION}`,
    fromRoot,
    workflowPath: path.relative(projectDir, workflowFile).split(path.sep).join('/'),
  };
  const planned = plan(input, { projectDir, root, workflowFile });
  const notes = await write(planned, options.force);

  options.print(
    `\nwrote ${path.relative(process.cwd(), projectDir) || '.'}/ with ${tasks.length > 0 ? tasks.map((t) => t.definition.name).join(', ') : 'no built-in task yet'}\n`,
  );
  for (const note of notes) options.print(`${note}\n`);
  if (options.install) await npmInstall(projectDir);
  options.print(nextSteps(input, projectDir, root, tasks));
  prompts?.outro('done');
}

/** The built-in tasks whose checks find nothing missing at `url` (their tables are there). */
async function tasksWithTables(
  builtins: Registry,
  url: string,
  print: (text: string) => void,
): Promise<string[] | null> {
  const db = new Db({ url, max: 1, queryTimeoutMs: 5_000, connectTimeoutMs: 5_000 });
  try {
    await db.query('select 1');
    const found: string[] = [];
    for (const task of builtins.list()) {
      const findings =
        (await task.definition.check?.({ db, settings: task.settings }).catch(() => null)) ?? [];
      if (findings !== null && !findings.some((f) => f.verdict === 'fail')) found.push(task.definition.name);
    }
    print(
      `looked in database ${describeDatabase(url)}: ${found.join(', ') || 'no built-in task has its tables there'}\n`,
    );
    return found;
  } catch (error) {
    print(
      `could not look in database ${describeDatabase(url)} (${(error as Error).message}): choosing without it\n`,
    );
    return null;
  } finally {
    await db.close();
  }
}

/** The nearest folder at or above `dir` holding `.git`, or null outside a repository. */
function repositoryRoot(dir: string): string | null {
  for (let at = dir; ; at = path.dirname(at)) {
    if (existsSync(path.join(at, '.git'))) return at;
    if (path.dirname(at) === at) return null;
  }
}

/** npm's rules: lower case, no spaces, URL-safe. */
function packageName(dir: string): string {
  const name = path
    .basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[._-]+/, '');
  return name || 'taskgate-project';
}

function plan(
  input: scaffold.ScaffoldInput,
  where: { projectDir: string; root: string; workflowFile: string },
): Planned[] {
  const inProject = (file: string, content: string): Planned => ({
    file: path.join(where.projectDir, file),
    content,
  });
  const files = [
    inProject('package.json', scaffold.packageJson(input)),
    inProject(PROJECT_FILE, scaffold.projectConfig(input)),
    inProject('tsconfig.json', scaffold.tsconfig()),
    inProject('tasks/_example.ts', scaffold.EXAMPLE_TASK),
    inProject(
      'README.md',
      scaffold.readme(input, (task) => task.definition.description),
    ),
    inProject('.env.sample', scaffold.envSample(input)),
    inProject('.gitignore', scaffold.gitignore()),
    inProject('Dockerfile', scaffold.dockerfile()),
    inProject('.dockerignore', scaffold.dockerignore()),
  ];
  if (input.tasks.some((task) => task.schedule)) {
    files.push({ file: where.workflowFile, content: generateWorkflow(input.tasks) });
  }
  files.push({
    file: path.join(where.root, 'render.yaml'),
    content: scaffold.renderYaml(input),
    // An app already on Render has its own Blueprint: the service goes beside the project instead.
    optional: input.fromRoot ? path.join(where.projectDir, 'render.yaml') : undefined,
  });
  files.push({
    file: path.join(where.root, '.github/dependabot.yml'),
    content: scaffold.dependabotYaml(input),
    optional: '',
  });
  return files;
}

/** Writes the files; refuses (listing them) when some exist, unless forced. Returns notes. */
async function write(files: Planned[], force: boolean): Promise<string[]> {
  const notes: string[] = [];
  const writes: { file: string; content: string }[] = [];
  const conflicts: string[] = [];
  for (const planned of files) {
    if (!existsSync(planned.file) || force) {
      writes.push(planned);
      continue;
    }
    const shown = path.relative(process.cwd(), planned.file);
    if (planned.optional === undefined) {
      conflicts.push(shown);
    } else if (planned.optional) {
      writes.push({ file: planned.optional, content: planned.content });
      notes.push(
        `${shown} exists: the service is in ${path.relative(process.cwd(), planned.optional)}; add it to ${shown}'s services`,
      );
    } else {
      notes.push(
        `${shown} exists and was left alone; to keep taskgate up to date, add to it:\n${planned.content}`,
      );
    }
  }
  if (conflicts.length > 0) {
    throw new TaskgateError(
      'INIT_CONFLICT',
      `these files exist and would be overwritten: ${conflicts.join(', ')} (choose another folder, or --force)`,
      { files: conflicts },
    );
  }
  for (const { file, content } of writes) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  return notes;
}

function npmInstall(cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const npm = spawn('npm', ['install', '--no-audit', '--no-fund'], {
      cwd,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    npm.on('error', (error) =>
      reject(new TaskgateError('INTERNAL', `npm install could not start: ${error.message}`)),
    );
    npm.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(
            new TaskgateError(
              'INTERNAL',
              `npm install failed (exit ${code}) in ${path.relative(process.cwd(), cwd) || '.'}: run it there again`,
            ),
          ),
    );
  });
}

function nextSteps(
  input: scaffold.ScaffoldInput,
  projectDir: string,
  root: string,
  tasks: RegisteredTask[],
): string {
  const cd = path.relative(process.cwd(), projectDir);
  const example = tasks[0]?.definition.name ?? '<task>';
  const added = [
    path.relative(process.cwd(), projectDir) || '.',
    ...(input.fromRoot
      ? [
          path.relative(process.cwd(), path.join(root, 'render.yaml')),
          path.relative(process.cwd(), path.join(root, '.github')),
        ]
      : []),
  ].join(' ');
  return `
Next steps:
  1. Try it on your database (a dry run deletes nothing):
       ${cd ? `cd ${cd}\n       ` : ''}DATABASE_URL=postgres://… npx taskgate doctor
       DATABASE_URL=postgres://… npx taskgate run ${example} --dry-run
  2. Commit and push:
       git add ${added} && git commit -m "Add taskgate" && git push
  3. Render: dashboard > New > Blueprint > this repository; paste DATABASE_URL (your app's database); Apply.
  4. GitHub, once Render has deployed it (in this repository, with the gh CLI):
       gh secret set CRON_SECRET_KEY      # paste the value from the Render service's Environment
       gh variable set TASKGATE_URL --body https://${input.name}.onrender.com
     The workflow then runs each task on its schedule; run one now from Actions > taskgate > Run workflow.
`;
}
