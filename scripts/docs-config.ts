// `npm run docs:config`: writes the tables of docs/configuration.md from what the code says of each
// variable, so that the page cannot drift from it (test/configuration-docs.test.ts fails when the
// committed page is not what this writes):
//   - taskgate's own variables, from the schema in src/config.ts (each field's description, and its
//     default: the value the schema gives an unset variable, or `default` in its metadata);
//   - the built-in tasks' settings, from each task's `settings` schema in tasks/.
// Each table sits between two HTML comments, `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
// the rest of the page is written by hand.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { configSchema, HEARTBEAT_DESCRIPTION, HEARTBEAT_PREFIX } from '../src/config.js';
import type { AnyTask } from '../src/task.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CONFIGURATION_PAGE = path.join(ROOT, 'docs/configuration.md');
export const COMMAND = 'npm run docs:config';

interface Row {
  name: string;
  default: string;
  meaning: string;
}

/** A field's description and default in words, or an error naming the field that has none. */
function describe(name: string, field: z.ZodType, where: string): Row {
  const meta = z.globalRegistry.get(field);
  if (!meta?.description) {
    throw new Error(`${name} has no description: give it one with .describe() in ${where}`);
  }
  let fallback = typeof meta.default === 'string' ? meta.default : undefined;
  if (fallback === undefined) {
    const unset = field.safeParse(undefined);
    const value = unset.success ? unset.data : undefined;
    fallback = value === undefined ? '–' : `\`${String(value)}\``;
  }
  return { name: `\`${name}\``, default: fallback, meaning: meta.description };
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** taskgate's own variables, in the schema's order, then the heartbeat family. */
export function variablesTable(): string {
  const rows = Object.entries(configSchema.shape).map(([name, field]) =>
    describe(name, field as z.ZodType, 'src/config.ts'),
  );
  rows.push({ name: `\`${HEARTBEAT_PREFIX}<TASK>\``, default: '–', meaning: HEARTBEAT_DESCRIPTION });
  return table(
    ['variable', 'default', 'meaning'],
    rows.map((row) => [row.name, row.default, row.meaning]),
  );
}

/** The built-in tasks' settings (tasks/*.ts), by task. */
export async function taskSettingsTable(): Promise<string> {
  const folder = path.join(ROOT, 'tasks');
  const files = (await readdir(folder)).filter((file) => /^[a-z0-9_]+\.ts$/.test(file)).sort();
  const rows: string[][] = [];
  for (const file of files) {
    const task = (await import(pathToFileURL(path.join(folder, file)).href)).default as AnyTask;
    const shape = (task.settings as z.ZodObject | undefined)?.shape ?? {};
    for (const [name, field] of Object.entries(shape)) {
      const row = describe(name, field as z.ZodType, `the settings of tasks/${file}`);
      rows.push([row.name, `[${task.name}](tasks/${task.name}.md)`, row.default, row.meaning]);
    }
  }
  return table(['variable', 'task', 'default', 'meaning'], rows);
}

/** The page with each generated part replaced by what the code says now. */
export async function generatedPage(page: string): Promise<string> {
  const parts: Record<string, string> = {
    variables: variablesTable(),
    'task-settings': await taskSettingsTable(),
  };
  let text = page;
  for (const [name, content] of Object.entries(parts)) {
    const begin = `<!-- generated:${name} (${COMMAND}) -->`;
    const end = `<!-- /generated:${name} -->`;
    const from = text.indexOf(begin);
    const to = text.indexOf(end);
    if (from < 0 || to < from) throw new Error(`docs/configuration.md has no "${begin}" … "${end}"`);
    text = `${text.slice(0, from + begin.length)}\n${content}\n${text.slice(to)}`;
  }
  return text;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const page = await readFile(CONFIGURATION_PAGE, 'utf8');
  const next = await generatedPage(page);
  if (next === page) console.log('docs/configuration.md is up to date');
  else {
    await writeFile(CONFIGURATION_PAGE, next);
    console.log('wrote docs/configuration.md');
  }
}
