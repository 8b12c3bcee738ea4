import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseEnv, promisify } from 'node:util';
import { expect } from 'chai';
import { startServe } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const run = promisify(execFile);

describe('npm start without a secret (the quick start)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db?.drop());

  it('prints a made-up secret once, with one shell line that keeps it in .env, and accepts that secret', async () => {
    const served = await startServe({ DATABASE_URL: db.url });
    const folder = await mkdtemp(path.join(os.tmpdir(), 'taskgate-keep-'));
    try {
      const output = served.output();
      const secret = /made one up for this run \(development only\): ([0-9a-f]{64})\n/.exec(output)?.[1];
      expect(secret, output).to.be.a('string');
      expect(output.split(secret!).length - 1, 'times the secret is printed').to.equal(2);
      const keep = /To keep it, run in this folder: (.*)\n/.exec(output)?.[1];
      expect(keep).to.equal(`printf 'CRON_SECRET_KEY=%s\\n' '${secret}' >> .env`);
      // printf is a builtin: the shell runs the line without starting a process that holds the secret
      const { stdout } = await run('bash', ['-c', `type -t printf; ${keep!}`], { cwd: folder });
      expect(stdout.trim()).to.equal('builtin');
      expect(parseEnv(await readFile(path.join(folder, '.env'), 'utf8'))).to.deep.equal({
        CRON_SECRET_KEY: secret,
      });
      const answer = await fetch(`${served.base}/cron`, { headers: { 'X-Cron-Secret': secret! } });
      expect(answer.status).to.equal(200);
    } finally {
      served.child.kill('SIGTERM');
      await served.exited;
      await rm(folder, { recursive: true, force: true });
    }
  });
});
