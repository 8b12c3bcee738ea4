import path from 'node:path';
import { expect } from 'chai';
import ts from 'typescript';
import { PROJECT_COMPILER_OPTIONS } from '../src/project/build.js';
import { ROOT } from './support/cli.js';
import { type CodeBlock, codeBlocks, docPages } from './support/docs.js';

/**
 * Every task example of the README and docs/ type-checks as a project made by `taskgate init`
 * checks it (its tsconfig.json: strict, NodeNext, noUncheckedIndexedAccess), importing
 * `defineTask` and `z` from 'taskgate', which is mapped to this repository's public API
 * (src/index.ts), the module the package's types are made from.
 */
const EXAMPLES = docPages()
  .flatMap(codeBlocks)
  .filter((block) => block.lang === 'ts' && block.code.includes('defineTask('));

/** Where each example is put, as a module of a project's tasks/ (none of them is written to disk). */
const exampleFile = (block: CodeBlock, index: number) =>
  path.join(ROOT, '.docs-examples', 'tasks', `${path.basename(block.file, '.md')}_${index}.ts`);

/** Type-checks the given modules under a project's settings; the diagnostics, formatted, per module. */
function typeCheck(modules: Map<string, string>): Map<string, string[]> {
  const { options, errors } = ts.convertCompilerOptionsFromJson(
    { ...PROJECT_COMPILER_OPTIONS, baseUrl: '.', paths: { taskgate: ['src/index.ts'] } },
    ROOT,
  );
  expect(errors).to.deep.equal([]);
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (file) => modules.has(file) || fileExists.call(host, file);
  host.readFile = (file) => modules.get(file) ?? readFile.call(host, file);
  host.getSourceFile = (file, language, ...rest) => {
    const text = modules.get(file);
    return text === undefined
      ? getSourceFile.call(host, file, language, ...rest)
      : ts.createSourceFile(file, text, language);
  };
  const program = ts.createProgram([...modules.keys()], options, host);
  const found = new Map<string, string[]>([...modules.keys()].map((file) => [file, []]));
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const file = diagnostic.file?.fileName;
    const line = diagnostic.file
      ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1
      : 0;
    const text = `line ${line}: TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    found.get(file && found.has(file) ? file : [...found.keys()][0]!)!.push(text);
  }
  return found;
}

/** The example "Adding a task" once gave in the README: it ran under tsx, and failed the deploy's build. */
const ONCE = `import { defineTask, z } from 'taskgate';
export default defineTask({
  name: 'vacuumsessions_hourly',
  description: 'Deletes expired Django sessions.',
  schedule: '15 * * * *',
  params: z.strictObject({ batchSize: z.number().int().min(1).default(1000) }),
  async run({ db, now }) {
    const { rows } = await db.query('select count(*)::int as n from django_session where expire_date < $1', [now]);
    return { deleted: rows[0].n };
  },
});
`;
const ONCE_FILE = path.join(ROOT, '.docs-examples', 'tasks', 'vacuumsessions_hourly.ts');

describe('the task examples of the README and docs/', function () {
  this.timeout(120_000);
  let found: Map<string, string[]>;
  before(() => {
    // One program for them all (and the example that must fail): a program costs seconds to make.
    const modules = new Map(EXAMPLES.map((block, index) => [exampleFile(block, index), block.code]));
    modules.set(ONCE_FILE, ONCE);
    found = typeCheck(modules);
  });

  it('are found: the README, writing-tasks.md and each page that shows a task', () => {
    const files = new Set(EXAMPLES.map((block) => block.file));
    expect([...files]).to.include.members(['README.md', 'docs/writing-tasks.md']);
    expect(EXAMPLES.every((block) => block.code.includes("from 'taskgate'"))).to.equal(true);
  });

  it("type-check under the settings a scaffolded project has, importing from 'taskgate'", () => {
    const failures = EXAMPLES.flatMap((block, index) =>
      found.get(exampleFile(block, index))!.map((error) => `${block.file}:${block.line + 1}, ${error}`),
    );
    expect(failures).to.deep.equal([]);
  });

  it('are checked strictly enough to refuse the example the README once had, which failed a deploy', () => {
    // `db.query` without a row type gives `unknown` values, and rows[0] may be undefined.
    const codes = found.get(ONCE_FILE)!.map((error) => /TS\d+/.exec(error)?.[0]);
    expect(codes).to.include.members(['TS2322', 'TS2532']);
  });
});
