import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './support/cli.js';

/**
 * The rooms of src/ (docs/design/architecture.md) and which rooms each may import from. A file's folder
 * says what it may call: a change that crosses a wall fails here, naming the import.
 */
const MAY_IMPORT: Record<string, string[]> = {
  kernel: ['kernel'],
  db: ['kernel'],
  core: ['kernel', 'db'],
  remote: ['kernel', 'core'],
  scheduling: ['kernel', 'core', 'remote'],
  monitoring: ['kernel', 'db', 'core', 'scheduling'],
  http: ['kernel', 'db', 'core', 'monitoring'],
  composition: ['kernel', 'db', 'core'],
  project: ['kernel', 'db', 'core', 'scheduling'],
  cli: ['kernel', 'db', 'core', 'remote', 'scheduling', 'monitoring', 'http', 'composition', 'project'],
  tasks: ['kernel', 'db', 'core', 'tasks'],
};

/** The kernel is src/'s top-level files, shared by every room; service.ts is the composition root. */
function roomOf(file: string): string {
  const parts = path.relative(ROOT, file).split(path.sep);
  if (parts[0] === 'tasks') return 'tasks';
  if (parts.length === 2) return parts[1] === 'service.ts' ? 'composition' : 'kernel';
  return parts[1]!;
}

/** task.ts hands tasks the types of db/sql.ts: the one kernel file allowed to name a room. */
const KERNEL_EXCEPTIONS = new Set(['src/task.ts -> db', 'src/index.ts -> db']);

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.ts$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('the architecture', () => {
  it('keeps every import of src/ and tasks/ within the rooms its folder may call', async () => {
    const files = [...(await sources(path.join(ROOT, 'src'))), ...(await sources(path.join(ROOT, 'tasks')))];
    expect(files.length).to.be.greaterThan(50);
    const crossings: string[] = [];
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      const from = roomOf(file);
      for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = path.resolve(path.dirname(file), match[1]!);
        const to = roomOf(target);
        if (to === from || MAY_IMPORT[from]!.includes(to)) continue;
        const relative = path.relative(ROOT, file);
        if (KERNEL_EXCEPTIONS.has(`${relative} -> ${to}`)) continue;
        crossings.push(`${relative} (${from}) imports ${match[1]} (${to})`);
      }
    }
    expect(crossings).to.deep.equal([]);
  });

  it('has no import cycle between the modules of src/ (type imports included)', async () => {
    const files = await sources(path.join(ROOT, 'src'));
    const imports = new Map<string, string[]>();
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) =>
        path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts'),
      );
      imports.set(
        file,
        targets.filter((target) => files.includes(target)),
      );
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        const cycle = trail.slice(trail.indexOf(file));
        cycles.push([...cycle, file].map((f) => path.relative(ROOT, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const target of imports.get(file) ?? []) visit(target, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).to.deep.equal([]);
  });

  it('is described in docs/design/architecture.md: each room, and the rooms it may import', async () => {
    const page = await readFile(path.join(ROOT, 'docs/design/architecture.md'), 'utf8');
    const rows = new Map(
      page
        .split('\n')
        .filter((line) => /^\| `(src|tasks)/.test(line))
        .map((line) => line.split('|').map((cell) => cell.trim()))
        .map((cells) => [cells[1]!, cells[3]!]),
    );
    const folder = (room: string) =>
      ({ kernel: '`src/*.ts` (kernel)', composition: '`src/service.ts`', tasks: '`tasks/`' })[room] ??
      `\`src/${room}/\``;
    const described = Object.keys(MAY_IMPORT).map((room) => {
      const text = rows.get(folder(room));
      if (text === undefined) return `${room}: no row for ${folder(room)}`;
      if (text === 'everything') return room;
      const words = text
        .replace(/\(.*?\)/g, '')
        .replace(/^the /, '')
        .split(',')
        .map((word) => word.trim());
      const others = (rooms: string[]) => rooms.filter((r) => r !== room).sort();
      return JSON.stringify(others(words)) === JSON.stringify(others(MAY_IMPORT[room]!))
        ? room
        : `${room}: the page says it may import ${text}`;
    });
    expect(described).to.deep.equal(Object.keys(MAY_IMPORT));
  });
});
