#!/usr/bin/env node
import { exitCodeFor } from './exit.js';
import { printError } from './output.js';

/** The `taskgate` command line. Errors become exit codes in exactly one place: below. */
export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  try {
    if (argv.length === 1 && argv[0] === 'serve') {
      // What a platform runs on every start and every wake: straight to the service, without
      // loading yargs and the other commands (about 45 ms and 8 MB, bench/README.md).
      const { serve } = await import('./serve.js');
      await serve();
    } else {
      const { commandLine } = await import('./commandLine.js');
      await commandLine(argv).parseAsync();
    }
  } catch (error) {
    printError(error, json);
    process.exitCode = exitCodeFor(error);
  }
}

await main(process.argv.slice(2));
