import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Argv } from 'yargs';
import { loadRegistry } from '../core/registry.js';
import { generateWorkflow, WORKFLOW_PATH } from '../scheduling/workflow.js';
import { bootstrap } from './context.js';
import { EXIT } from './exit.js';

/** `taskgate workflow`: prints, writes or checks the GitHub Actions workflow made from the registry. */
export function registerWorkflowCommand(cli: Argv): Argv {
  return cli.command(
    'workflow',
    'print the GitHub Actions workflow that schedules the tasks (--write saves it, --check compares)',
    (y) =>
      y
        .option('check', {
          type: 'boolean',
          describe: 'exit 1 with a diff when the committed workflow is not what the tasks need',
        })
        .option('write', { type: 'boolean', describe: 'write the workflow to --file' })
        .option('file', { type: 'string', default: WORKFLOW_PATH, describe: 'the committed workflow' })
        .conflicts('check', 'write'),
    async (argv) => {
      const { config } = bootstrap();
      const expected = generateWorkflow((await loadRegistry(config.tasksDir, config.environment)).list());
      const file = path.resolve(argv.file);
      if (argv.write) {
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, expected);
        process.stdout.write(`wrote ${argv.file}\n`);
        return;
      }
      if (!argv.check) {
        process.stdout.write(expected);
        return;
      }
      const committed = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
      if (committed === expected) {
        process.stdout.write(`${argv.file} is up to date\n`);
        return;
      }
      // Loaded here: only a workflow out of date needs a diff.
      const { createTwoFilesPatch } = await import('diff');
      process.stdout.write(
        committed === null
          ? `${argv.file} does not exist.\n`
          : createTwoFilesPatch(
              `${argv.file} (committed)`,
              `${argv.file} (from tasks/)`,
              committed,
              expected,
            ),
      );
      process.stderr.write(
        `taskgate: ${argv.file} is out of date with tasks/: run \`npm run -s taskgate -- workflow --write\` and commit it\n`,
      );
      process.exitCode = EXIT.failed;
    },
  );
}
