#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { registerTaskCommands } from './commands.js';
import { EXIT, exitCodeFor } from './exit.js';
import { printError } from './output.js';
import { registerStatusCommand } from './status.js';
import { registerTriggerCommand } from './trigger.js';
import { registerWorkflowCommand } from './workflow.js';

/** The `taskgate` command line. Errors become exit codes in exactly one place: below. */
export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const cli = yargs(argv)
    .scriptName('taskgate')
    .usage('$0 <command> [options]')
    // Each command loads what it needs when it runs: `serve` the HTTP stack, the others none of it.
    .command('serve', 'run the HTTP service (what `npm start` does)', {}, async () => {
      const { serve } = await import('./serve.js');
      await serve();
    })
    .strict()
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message, error, y) => {
      // yargs' own validation (and .check) failures are usage errors; anything else is the command's.
      if (error instanceof Error && error.name !== 'YError') throw error;
      y.showHelp((text) => process.stderr.write(`${text}\n`));
      process.stderr.write(`\ntaskgate: ${message ?? error?.message}\n`);
      process.exit(EXIT.usage);
    });
  registerTaskCommands(cli);
  registerWorkflowCommand(cli);
  registerTriggerCommand(cli);
  registerStatusCommand(cli);
  try {
    await cli.parseAsync();
  } catch (error) {
    printError(error, json);
    process.exitCode = exitCodeFor(error);
  }
}

await main(hideBin(process.argv));
