import type { Argv } from 'yargs';
import { bootstrap } from './context.js';
import { printLine } from './output.js';

/** `init` and `build`: the commands that make and build a project depending on taskgate. */
export function registerProjectCommands(cli: Argv): Argv {
  return cli
    .command(
      'init [dir]',
      'scaffold a project that depends on taskgate: config, tasks/, the GitHub workflow, render.yaml, a README',
      (y) =>
        y
          .positional('dir', {
            type: 'string',
            describe: 'the project folder (asked for; default: taskgate)',
          })
          .option('yes', {
            alias: 'y',
            type: 'boolean',
            default: false,
            describe:
              'ask nothing: the tasks of --tasks, or those whose tables DATABASE_URL has, or the default',
          })
          .option('tasks', {
            type: 'string',
            describe: 'the built-in tasks to run, comma-separated (taskgate list --builtin shows them)',
          })
          .option('database-url', {
            type: 'string',
            describe:
              "your app's database, to offer the tasks whose tables are there (default: DATABASE_URL)",
          })
          .option('taskgate', {
            type: 'string',
            describe: 'what package.json depends on (default: ^ this version; a tarball path works)',
          })
          .option('install', {
            type: 'boolean',
            default: true,
            describe: 'run npm install (--no-install skips it)',
          })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite files that exist' }),
      async (argv) => {
        const { init } = await import('../project/init.js');
        if (!argv.yes && !process.stdin.isTTY) {
          const { TaskgateError } = await import('../errors.js');
          throw new TaskgateError(
            'INVALID_PARAMS',
            'taskgate init asks questions in a terminal; for scripts and CI: taskgate init <dir> --yes [--tasks a,b]',
          );
        }
        await init({
          dir: argv.dir,
          tasks: argv.tasks
            ?.split(',')
            .map((name) => name.trim())
            .filter(Boolean),
          databaseUrl: argv.databaseUrl ?? (process.env.DATABASE_URL || undefined),
          taskgateSpec: argv.taskgate,
          interactive: !argv.yes,
          install: argv.install,
          force: argv.force,
          print: (text) => process.stdout.write(text),
        });
      },
    )
    .command(
      'build',
      "type-check and compile the project's own tasks (a deploy's build command; a type error fails it)",
      (y) => y,
      async () => {
        const { config } = bootstrap({ database: false });
        const { buildProject } = await import('../project/build.js');
        const report = await buildProject(config);
        printLine(
          `${report.compiled > 0 ? `compiled ${report.compiled} TypeScript file${report.compiled === 1 ? '' : 's'}; ` : ''}` +
            `tasks: ${report.tasks.join(', ') || '(none)'}`,
        );
      },
    );
}
