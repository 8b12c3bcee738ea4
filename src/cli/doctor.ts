import type { Argv } from 'yargs';
import { loadConfiguredTasks } from '../core/registry.js';
import type { CheckResult, DoctorInput } from '../monitoring/doctor.js';
import type { Database } from '../service.js';
import { bootstrap } from './context.js';
import { EXIT } from './exit.js';
import { printJson, printLine, table } from './output.js';

/** `taskgate doctor`: one line per check with its verdict; exit 1 when one fails. Writes nothing. */
export function registerDoctorCommand(cli: Argv): Argv {
  return cli.command(
    'doctor',
    'check the database, the pooler, the schema, each task, the secret, the clock and the workflow (exit 1 on a failure)',
    (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' }),
    async (argv) => {
      const { config, logger } = bootstrap({ doctor: true });
      const { runDoctor } = await import('../monitoring/doctor.js');
      const { openDatabase } = await import('../service.js');
      const registry = await loadConfiguredTasks(config);
      let database: Database | undefined;
      let opened: DoctorInput['database'];
      try {
        database = await openDatabase(config, logger, { inspect: true, registry });
        opened = { db: database.db, url: database.url };
      } catch (error) {
        opened = { error: error as Error };
      }
      let checks: CheckResult[];
      try {
        checks = await runDoctor({
          config,
          registry,
          database: opened,
          workflowFile: config.project.workflowFile,
        });
      } finally {
        await database?.close();
      }
      const failed = checks.filter((c) => c.verdict === 'fail').length;
      if (argv.json) printJson({ status: failed > 0 ? 'failed' : 'ok', checks });
      else printLine(table(checks.map((c) => [c.verdict.toUpperCase(), c.name, c.message])));
      if (failed > 0) process.exitCode = EXIT.failed;
    },
  );
}
