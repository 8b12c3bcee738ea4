#!/usr/bin/env node
// The `taskgate` command. Installed (a project's dependency, the image) it runs the build in
// dist/; in a clone of taskgate's own repository, which has src/ and is run without a build, it
// runs the source under tsx.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/src/cli/main.js');
}
