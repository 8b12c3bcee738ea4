#!/usr/bin/env node
import module from 'node:module';

// Node 22.1 and later keep the code they compile (in the system's temporary folder) and reuse it
// when the same files start again: about 80 ms of `serve`'s start on Node 24 (bench/README.md).
// Turned on before anything else is imported, so that all of taskgate's code is cached;
// NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node 20 has no such cache.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { exitCodeFor } = await import('./exit.js');
const { printError } = await import('./output.js');

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
