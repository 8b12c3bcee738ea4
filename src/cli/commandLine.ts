import yargs, { type Argv } from 'yargs';
import { VERSION } from '../version.js';
import { registerTaskCommands } from './commands.js';
import { registerControlCommands } from './control.js';
import { registerDoctorCommand } from './doctor.js';
import { EXIT } from './exit.js';
import { registerProjectCommands } from './project.js';
import { registerStatusCommand } from './status.js';
import { registerTriggerCommand } from './trigger.js';
import { registerWorkflowCommand } from './workflow.js';

/** Every command, its options and its help. Handlers load what they need when they run. */
export function commandLine(argv: string[]): Argv {
  const cli = yargs(argv)
    .scriptName('taskgate')
    .usage('$0 <command> [options]')
    .command('serve', 'run the HTTP service (what `npm start` does)', {}, async () => {
      const { serve } = await import('./serve.js');
      await serve();
    })
    .strict()
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(VERSION)
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
  registerControlCommands(cli);
  registerDoctorCommand(cli);
  registerProjectCommands(cli);
  return cli;
}
