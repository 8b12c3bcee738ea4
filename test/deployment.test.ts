import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, HEARTBEAT_PREFIX, loadConfig } from '../src/config.js';
import { loadConfiguredTasks, loadRegistry } from '../src/core/registry.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { loadProject } from '../src/projectFile.js';
import { ROOT } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const read = (file: string) => readFile(path.join(ROOT, file), 'utf8');
const START = 'node dist/src/cli/main.js serve';
/** Read by the test suite and the benchmarks, never by taskgate itself. */
/** Variables the docs name that are not taskgate's configuration: the tests', benchmarks' and Node's own. */
const NOT_TASKGATE = new Set([
  'TEST_DATABASE_URL',
  'BENCH_DATABASE_URL',
  'BENCH_CLI',
  'BENCH_BEFORE',
  'UPDATE_SCREENSHOT',
  'NODE_DISABLE_COMPILE_CACHE',
]);

/** The variables tasks declare as their own settings (the flush's table names). */
const TASK_VARIABLES = (await loadRegistry())
  .list()
  .flatMap(({ definition }) =>
    definition.settings ? Object.keys((definition.settings as { shape: object }).shape) : [],
  );
const VARIABLES = [...CONFIG_VARIABLES, ...TASK_VARIABLES];

const known = (name: string) => VARIABLES.includes(name) || name.startsWith(HEARTBEAT_PREFIX);

interface Blueprint {
  services: {
    type: string;
    runtime: string;
    buildCommand: string;
    startCommand: string;
    healthCheckPath: string;
    envVars: { key: string; value?: string; sync?: boolean; generateValue?: boolean }[];
  }[];
}

/** `KEY=value` names in a Dockerfile's ENV lines. */
function dockerfileEnv(text: string): string[] {
  return [...text.matchAll(/^ENV\s+(.*)$/gm)].flatMap((m) =>
    [...m[1]!.matchAll(/([A-Z_][A-Z0-9_]*)=/g)].map((v) => v[1]!),
  );
}

describe('render.yaml, the Dockerfile, docker-compose.yml and the docs agree with the code', () => {
  let blueprint: Blueprint['services'][number];
  let dockerfile: string;
  let compose: {
    services: Record<
      string,
      { environment?: Record<string, string>; ports?: string[]; healthcheck?: { test: string[] } }
    >;
  };
  let docs: { file: string; text: string }[];
  let db: TestDatabase;
  const defaults = loadConfig({});

  before(async () => {
    blueprint = (parse(await read('render.yaml')) as Blueprint).services[0]!;
    dockerfile = await read('Dockerfile');
    compose = parse(await read('docker-compose.yml'));
    const pages = (await readdir(path.join(ROOT, 'docs'), { recursive: true }))
      .filter((file) => file.endsWith('.md'))
      .map((file) => path.join('docs', file));
    docs = await Promise.all(['README.md', ...pages].map(async (file) => ({ file, text: await read(file) })));
    db = await createTestDatabase();
  });
  after(async () => db.drop());

  it('start the compiled service with node itself, as package.json and the bin say', async () => {
    const pkg = JSON.parse(await read('package.json'));
    expect(blueprint.startCommand).to.equal(START);
    expect(JSON.parse(dockerfile.match(/^CMD (\[.*\])$/m)![1]!)).to.deep.equal(START.split(' '));
    expect(pkg.scripts['start:prod']).to.equal(`exec ${START}`);
    // The bin runs that same file where there is no src/ (the package, the image).
    expect(pkg.bin.taskgate).to.equal('bin/taskgate.js');
    expect(await read('bin/taskgate.js')).to.include("import('../dist/src/cli/main.js')");
    expect(await read('docs/deploy.md')).to.include(START);
  });

  it('build with dev dependencies and without optional ones, on the current Node.js LTS', async () => {
    expect(blueprint.buildCommand).to.equal('npm ci --include=dev --omit=optional && npm run build');
    expect((await read('.node-version')).trim()).to.equal('24');
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).to.be.at.least(2);
    expect(new Set(froms)).to.deep.equal(new Set(['node:24-bookworm-slim']));
    expect(dockerfile).to.include('npm ci --no-audit --no-fund --omit=optional --ignore-scripts');
    expect(dockerfile).to.include('npm ci --no-audit --no-fund --omit=dev --omit=optional --ignore-scripts');
  });

  it('check the health path the service answers', async () => {
    const app = createApp({ db: db.sql, logger: createLogger({ level: 'silent', pretty: false }) });
    expect(blueprint.healthCheckPath).to.equal('/healthz');
    expect((await request(app.callback()).get(blueprint.healthCheckPath)).status).to.equal(200);
    const probe = dockerfile.match(/^HEALTHCHECK .*\\\n\s+CMD (\["node", "-e", ".*\/healthz.*\])$/m);
    expect(probe, 'the HEALTHCHECK asks /healthz with node').to.not.equal(null);
    // compose asks more often, with the image's own command ($$ is compose's escape for $).
    const composed = compose.services.taskgate!.healthcheck!.test.map((part) => part.replaceAll('$$', '$'));
    expect(composed).to.deep.equal(['CMD', ...JSON.parse(probe![1]!)]);
  });

  it('use the port taskgate listens on by default', () => {
    expect(defaults.port).to.equal(3000);
    expect(dockerfile).to.match(new RegExp(`^EXPOSE ${defaults.port}$`, 'm'));
    // compose publishes it on the host's loopback only.
    expect(compose.services.taskgate!.ports).to.deep.equal([`127.0.0.1:${defaults.port}:${defaults.port}`]);
    expect(compose.services.taskgate!.environment!.PORT).to.equal(String(defaults.port));
  });

  it("set production, the database entered by the user, a generated secret and Render's proxy hops", () => {
    const vars = Object.fromEntries(blueprint.envVars.map((v) => [v.key, v]));
    expect(vars.NODE_ENV).to.deep.equal({ key: 'NODE_ENV', value: 'production' });
    expect(vars.DATABASE_URL).to.deep.equal({ key: 'DATABASE_URL', sync: false });
    expect(vars.CRON_SECRET_KEY).to.deep.equal({ key: 'CRON_SECRET_KEY', generateValue: true });
    expect(loadConfig({ TRUST_PROXY: vars.TRUST_PROXY!.value }).http.trustProxyHops).to.equal(2);
  });

  it('name only variables loadConfig knows', () => {
    const named = [
      ...blueprint.envVars.map((v) => v.key),
      ...dockerfileEnv(dockerfile),
      ...Object.keys(compose.services.taskgate!.environment ?? {}),
    ];
    expect(named.filter((name) => !known(name))).to.deep.equal([]);
  });

  it('docs/configuration.md: the tables document exactly the variables loadConfig and the tasks know', async () => {
    const page = await read('docs/configuration.md');
    const rows = page.split('\n').filter((line) => /^\| `[A-Z]/.test(line));
    const documented = rows.flatMap((row) =>
      [...row.split('|')[1]!.matchAll(/`([A-Z0-9_<>]+)`/g)].map((m) => m[1]!),
    );
    expect(documented.filter((name) => name !== `${HEARTBEAT_PREFIX}<TASK>`).sort()).to.deep.equal(
      [...VARIABLES].sort(),
    );
    expect(documented).to.include(`${HEARTBEAT_PREFIX}<TASK>`);
  });

  it('the README, the docs and .env.sample set no variable that taskgate does not know', async () => {
    const assigned = (text: string) =>
      [...text.matchAll(/(?:^|[\s#`])([A-Z][A-Z0-9_]{2,})=/gm)].map((m) => m[1]!);
    const unknown = (text: string) =>
      assigned(text).filter((name) => !known(name) && !NOT_TASKGATE.has(name));
    for (const { file, text } of docs) expect(unknown(text), file).to.deep.equal([]);
    const sample = await read('.env.sample');
    expect(unknown(sample)).to.deep.equal([]);
    expect(VARIABLES.filter((name) => !assigned(sample).includes(name))).to.deep.equal([]);
  });
});

describe('package.json', () => {
  it('approves in allowScripts (which npm reads from 11.16, and enforces from 12) every dependency with an install script, on every platform, and nothing else', async () => {
    const pkg = JSON.parse(await read('package.json'));
    const lock = JSON.parse(await read('package-lock.json')) as {
      packages: Record<string, { hasInstallScript?: boolean }>;
    };
    const scripted = Object.entries(lock.packages)
      .filter(([, entry]) => entry.hasInstallScript)
      .map(([where]) => where.replace(/^.*node_modules\//, ''));
    expect(Object.keys(pkg.allowScripts).sort()).to.deep.equal([...new Set(scripted)].sort());
    expect(Object.values(pkg.allowScripts).every((allowed) => allowed === true)).to.equal(true);
  });
});

describe("compose's demo: docker/demo-tables.sql and docker/taskgate.config.json", () => {
  let db: TestDatabase;
  before(async () => {
    // Made as the postgres image makes it: an empty database, then the file.
    db = await createTestDatabase({ migrated: false });
    await db.sql.query(await read('docker/demo-tables.sql'));
  });
  after(async () => db?.drop());

  it("compose mounts its config over the image's, and runs the SQL when it makes the database", async () => {
    const compose = parse(await read('docker-compose.yml'));
    expect(compose.services.taskgate.volumes).to.include(
      './docker/taskgate.config.json:/app/taskgate.config.json:ro',
    );
    expect(compose.services.db.volumes).to.include(
      './docker/demo-tables.sql:/docker-entrypoint-initdb.d/demo-tables.sql:ro',
    );
  });

  it('has what every task it chooses checks for, with expired rows for the first runs to delete', async () => {
    const project = loadProject({ cwd: path.join(ROOT, 'docker') });
    const registry = await loadConfiguredTasks({ project, environment: {}, env: 'production' });
    expect(registry.names()).to.include.members(['clearsessions_daily', 'flushexpiredtokens_daily']);
    const findings = [];
    for (const task of registry.list()) {
      findings.push(...((await task.definition.check?.({ db: db.sql, settings: task.settings })) ?? []));
    }
    expect(findings.filter((f) => f.verdict === 'fail')).to.deep.equal([]);
    expect(findings.map((f) => f.message).join('\n')).to.match(/[1-9][\d,]* expired/);
    const { rows } = await db.sql.query<{ n: number }>(
      'select count(*)::int as n from django_session where expire_date < now()',
    );
    expect(rows[0]!.n).to.be.above(0);
  });
});
