import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Argv } from 'yargs';
import { loadConfiguredTasks } from '../core/registry.js';
import { compareWorkflow, generateWorkflow, staleReason } from '../scheduling/workflow.js';
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
        .option('file', {
          type: 'string',
          describe: "the committed workflow (default: the project's, .github/workflows/taskgate.yml)",
        })
        .conflicts('check', 'write'),
    async (argv) => {
      const { config } = bootstrap({ database: false });
      const expected = generateWorkflow((await loadConfiguredTasks(config)).list());
      const file = argv.file ? path.resolve(argv.file) : config.project.workflowFile;
      const shown = path.relative(process.cwd(), file) || file;
      if (argv.write) {
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, expected);
        process.stdout.write(`wrote ${shown}\n`);
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
      const compared = compareWorkflow(committed, expected);
      if (compared.state === 'current') {
        process.stdout.write(`${shown} is up to date\n`);
        return;
      }
      // Loaded here: only a workflow out of date needs a diff.
      const { createTwoFilesPatch } = await import('diff');
      process.stdout.write(
        committed === null
          ? `${shown} does not exist.\n`
          : createTwoFilesPatch(`${shown} (committed)`, `${shown} (from the tasks)`, committed, expected),
      );
      const why = compared.state === 'stale' ? staleReason(compared) : 'does not exist';
      process.stderr.write(
        `taskgate: ${shown} ${why}: run \`npx taskgate workflow --write\` and commit it\n`,
      );
      process.exitCode = EXIT.failed;
    },
  );
}
