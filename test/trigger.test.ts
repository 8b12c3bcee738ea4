import { networkInterfaces } from 'node:os';
import { expect } from 'chai';
import { parseSignature, verifySignature } from '../src/http/signature.js';
import { TriggerClient, triggerRemote } from '../src/remote/client.js';
import { runCli } from './support/cli.js';
import { TEST_SECRET as SECRET } from './support/secrets.js';
import { freePort, type SeenRequest, type StubAnswer, stubServer } from './support/stub-server.js';

const RUN_ID = '11111111-2222-4333-8444-555555555555';
const FAST = { retryDelayMs: 20, pollMs: 20, wakeTimeoutMs: 3_000 };

const ok = (task = 'noop'): StubAnswer => ({
  status: 200,
  body: {
    status: 'success',
    task,
    runId: RUN_ID,
    message: `${task} succeeded`,
    result: { n: 1 },
    durationMs: 5,
  },
});
const healthy: StubAnswer = { status: 200, body: { status: 'ok' } };
const posts = (seen: SeenRequest[]) => seen.filter((r) => r.method === 'POST');
const count = (seen: SeenRequest[], method: string, path: string) =>
  seen.filter((r) => r.method === method && r.path === path).length;

describe('the trigger client', () => {
  it('wakes a host answering 503, retries a 503 trigger with the same Idempotency-Key, and succeeds once', async () => {
    const server = await stubServer((req, seen) => {
      if (req.path === '/readyz') return count(seen, 'GET', '/readyz') <= 3 ? { status: 503 } : healthy;
      return posts(seen).length <= 2 ? { status: 503, body: { status: 'error' } } : ok();
    });
    try {
      const result = await triggerRemote({ baseUrl: server.url, secret: SECRET, task: 'noop', ...FAST });
      expect(result.error).to.equal(null);
      expect(result.body).to.include({ status: 'success', runId: RUN_ID });
      expect(count(server.seen, 'GET', '/readyz')).to.equal(4);
      const sent = posts(server.seen);
      expect(sent).to.have.length(3);
      const keys = new Set(sent.map((r) => r.headers['idempotency-key']));
      expect(keys.size).to.equal(1);
      expect([...keys][0])
        .to.equal(result.idempotencyKey)
        .and.match(/^[0-9a-f-]{36}$/);
      expect(sent.every((r) => r.headers['x-cron-secret'] === SECRET)).to.equal(true);
      expect(sent[0]!.path).to.equal('/cron/noop');
    } finally {
      await server.close();
    }
  });

  it('waits for a host that refuses connections until it starts listening', async () => {
    const port = await freePort();
    let server: Awaited<ReturnType<typeof stubServer>> | undefined;
    const starting = new Promise<void>((resolve) =>
      setTimeout(async () => {
        server = await stubServer((req) => (req.path === '/readyz' ? healthy : ok()), port);
        resolve();
      }, 300),
    );
    try {
      const lines: string[] = [];
      const result = await triggerRemote({
        baseUrl: `http://127.0.0.1:${port}`,
        secret: SECRET,
        task: 'noop',
        ...FAST,
        log: (line) => lines.push(line),
      });
      expect(result.error).to.equal(null);
      expect(lines.join('\n')).to.match(/GET \/readyz: ECONNREFUSED, retrying/);
      expect(lines.join('\n')).to.not.include(SECRET);
    } finally {
      await starting;
      await server?.close();
    }
  });

  it('gives up with UNREACHABLE (exit 1) once the wake time-out has passed', async () => {
    const server = await stubServer(() => ({ status: 503 }));
    try {
      const started = Date.now();
      const failure = await new TriggerClient({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        ...FAST,
        wakeTimeoutMs: 300,
      })
        .trigger()
        .catch((error) => error);
      expect(failure).to.include({ code: 'UNREACHABLE', exitCode: 1 });
      expect(failure.message).to.equal(`GET /readyz answered HTTP 503: is ${server.url} taskgate?`);
      expect(Date.now() - started).to.be.below(2_000);
      expect(posts(server.seen)).to.have.length(0);
    } finally {
      await server.close();
    }
  });

  it('gives up on a host that never answers with UNREACHABLE naming the last failure and the attempts', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const failure = await new TriggerClient({
      baseUrl: `http://127.0.0.1:${port}`,
      secret: SECRET,
      task: 'noop',
      ...FAST,
      wakeTimeoutMs: 1_000,
      log: (line) => lines.push(line),
    })
      .trigger()
      .catch((error) => error);
    expect(failure).to.include({
      code: 'UNREACHABLE',
      exitCode: 1,
      message: `GET /readyz got no answer from http://127.0.0.1:${port} (ECONNREFUSED)`,
    });
    expect(lines.length).to.be.above(1);
    expect(failure.details).to.deep.equal({ attempts: lines.length + 1 });
    expect(lines).to.deep.equal(
      lines.map((_, i) => `GET /readyz: ECONNREFUSED, retrying in 0 s (attempt ${i + 1})`),
    );
  });

  it('logs each retry with its pause and attempt, and how long the wake took', async () => {
    const server = await stubServer((req, seen) => {
      if (req.path === '/readyz') return count(seen, 'GET', '/readyz') <= 2 ? { status: 503 } : healthy;
      return posts(seen).length === 1 ? { status: 502 } : ok();
    });
    try {
      const lines: string[] = [];
      const result = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        ...FAST,
        retryDelayMs: 150,
        log: (line) => lines.push(line),
      });
      expect(result.error).to.equal(null);
      expect(lines).to.have.length(4);
      expect(lines.slice(0, 2)).to.deep.equal([
        'GET /readyz: HTTP 503, retrying in 0.2 s (attempt 1)',
        'GET /readyz: HTTP 503, retrying in 0.2 s (attempt 2)',
      ]);
      expect(lines[2]).to.match(/^taskgate is up \(0\.\d s\)$/);
      expect(lines[3]).to.equal('POST /cron/noop: HTTP 502, retrying in 0.2 s (attempt 1)');
    } finally {
      await server.close();
    }
  });

  it('retries a transient trigger answer until the wake time-out, then returns that answer as the error', async () => {
    const server = await stubServer((req) =>
      req.path === '/readyz'
        ? healthy
        : {
            status: 503,
            body: { status: 'error', code: 'DATABASE_UNAVAILABLE', message: 'the database is away' },
          },
    );
    try {
      const result = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        ...FAST,
        wakeTimeoutMs: 1_000,
      });
      expect(result.error).to.include({
        code: 'DATABASE_UNAVAILABLE',
        exitCode: 1,
        message: 'the database is away',
      });
      expect(result.body).to.include({ code: 'DATABASE_UNAVAILABLE' });
      expect(posts(server.seen).length).to.be.above(1);
    } finally {
      await server.close();
    }
  });

  it('stops waiting at once when its signal is aborted', async () => {
    const server = await stubServer(() => ({ status: 503 }));
    try {
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 200);
      const started = Date.now();
      const failure = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        retryDelayMs: 10_000,
        signal: abort.signal,
      }).catch((error) => error);
      expect(failure).to.have.property('name', 'AbortError');
      expect(Date.now() - started).to.be.below(2_000);
      expect(posts(server.seen)).to.have.length(0);
    } finally {
      await server.close();
    }
  });

  it('sends params and dryRun as the JSON body', async () => {
    const server = await stubServer((req) => (req.path === '/readyz' ? healthy : ok()));
    try {
      await triggerRemote({
        baseUrl: `${server.url}/`,
        secret: SECRET,
        task: 'echo',
        params: { count: 2 },
        dryRun: true,
        ...FAST,
      });
      const [post] = posts(server.seen);
      expect(JSON.parse(post!.body)).to.deep.equal({ count: 2, dryRun: true });
      expect(post!.headers['content-type']).to.equal('application/json');
    } finally {
      await server.close();
    }
  });

  it('follows a 202 to the run record until the run has ended', async () => {
    let looks = 0;
    const server = await stubServer((req) => {
      if (req.path === '/readyz') return healthy;
      if (req.method === 'POST') {
        return {
          status: 202,
          headers: { Location: `/cron/runs/${RUN_ID}` },
          body: { status: 'accepted', task: 'slow', runId: RUN_ID, location: `/cron/runs/${RUN_ID}` },
        };
      }
      looks++;
      const status = looks < 3 ? 'running' : 'succeeded';
      return {
        status: 200,
        body: { status: 'success', run: { id: RUN_ID, task: 'slow', status, durationMs: 40 } },
      };
    });
    try {
      const result = await triggerRemote({ baseUrl: server.url, secret: SECRET, task: 'slow', ...FAST });
      expect(result.error).to.equal(null);
      expect(result.body).to.include({ id: RUN_ID, status: 'succeeded' });
      expect(count(server.seen, 'GET', `/cron/runs/${RUN_ID}`)).to.equal(3);
      expect(server.seen.at(-1)!.headers['x-cron-secret']).to.equal(SECRET);
    } finally {
      await server.close();
    }
  });

  it('sends no credentials with /readyz probes, signed or not', async () => {
    for (const sign of [false, true]) {
      const server = await stubServer((req) => (req.path === '/readyz' ? healthy : ok()));
      try {
        const result = await triggerRemote({
          baseUrl: server.url,
          secret: SECRET,
          task: 'noop',
          sign,
          ...FAST,
        });
        expect(result.error).to.equal(null);
        const probes = server.seen.filter((r) => r.path === '/readyz');
        expect(probes).to.have.length(1);
        expect(probes[0]!.headers).not.to.have.any.keys('x-cron-secret', 'x-cron-signature', 'authorization');
      } finally {
        await server.close();
      }
    }
  });

  it('never follows a Location on another origin with the secret, and says why it stopped', async () => {
    const elsewhere = await stubServer(() => ({ status: 200, body: { run: { status: 'succeeded' } } }));
    const server = await stubServer((req) => {
      if (req.path === '/readyz') return healthy;
      return {
        status: 202,
        headers: { Location: `${elsewhere.url}/cron/runs/${RUN_ID}` },
        body: { status: 'accepted', task: 'slow', runId: RUN_ID },
      };
    });
    try {
      const failure = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'slow',
        ...FAST,
      }).then(
        () => null,
        (error: Error) => error,
      );
      expect(elsewhere.seen).to.deep.equal([]);
      expect(failure?.message).to.match(/another origin/);
    } finally {
      await server.close();
      await elsewhere.close();
    }
  });

  it('follows an absolute Location on its own origin', async () => {
    const server = await stubServer((req) => {
      if (req.path === '/readyz') return healthy;
      if (req.method === 'POST') {
        return {
          status: 202,
          headers: { Location: `${server.url}/cron/runs/${RUN_ID}` },
          body: { runId: RUN_ID },
        };
      }
      return { status: 200, body: { run: { id: RUN_ID, task: 'slow', status: 'succeeded' } } };
    });
    try {
      const result = await triggerRemote({ baseUrl: server.url, secret: SECRET, task: 'slow', ...FAST });
      expect(result.error).to.equal(null);
      expect(server.seen.at(-1)!.headers['x-cron-secret']).to.equal(SECRET);
    } finally {
      await server.close();
    }
  });

  it('reports a followed run that failed as TASK_FAILED (exit 1)', async () => {
    const server = await stubServer((req) => {
      if (req.path === '/readyz') return healthy;
      if (req.method === 'POST')
        return { status: 202, headers: { Location: `/cron/runs/${RUN_ID}` }, body: {} };
      return {
        status: 200,
        body: { run: { id: RUN_ID, task: 'slow', status: 'failed', error: 'disk full' } },
      };
    });
    try {
      const result = await triggerRemote({ baseUrl: server.url, secret: SECRET, task: 'slow', ...FAST });
      expect(result.error).to.include({
        code: 'TASK_FAILED',
        exitCode: 1,
        message: 'slow failed: disk full',
      });
      expect(result.runId).to.equal(RUN_ID);
    } finally {
      await server.close();
    }
  });

  it('with async asks for respond-async and returns the 202 without following it', async () => {
    const server = await stubServer((req) =>
      req.path === '/readyz'
        ? healthy
        : {
            status: 202,
            headers: { Location: `/cron/runs/${RUN_ID}` },
            body: { status: 'accepted', runId: RUN_ID },
          },
    );
    try {
      const result = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'slow',
        async: true,
        ...FAST,
      });
      expect(result.error).to.equal(null);
      expect(result.body).to.include({ status: 'accepted', runId: RUN_ID });
      expect(posts(server.seen)[0]!.headers.prefer).to.equal('respond-async');
      expect(server.seen.filter((r) => r.path.startsWith('/cron/runs/'))).to.have.length(0);
    } finally {
      await server.close();
    }
  });

  for (const [status, code, exitCode] of [
    [500, 'TASK_FAILED', 1],
    [409, 'TASK_BUSY', 75],
    [404, 'TASK_NOT_FOUND', 2],
    [400, 'INVALID_PARAMS', 2],
    [401, 'UNAUTHORIZED', 2],
  ] as const) {
    it(`turns a ${status} ${code} into that error (exit ${exitCode}) without retrying`, async () => {
      const server = await stubServer((req) =>
        req.path === '/readyz'
          ? healthy
          : { status, body: { status: 'error', code, message: `said ${code}`, runId: RUN_ID } },
      );
      try {
        const result = await triggerRemote({ baseUrl: server.url, secret: SECRET, task: 'noop', ...FAST });
        expect(result.error).to.include({ code, exitCode, message: `said ${code}` });
        expect(result.body).to.include({ status: 'error', code });
        expect(posts(server.seen)).to.have.length(1);
      } finally {
        await server.close();
      }
    });
  }

  it('honours Retry-After on 429', async () => {
    const server = await stubServer((req, seen) => {
      if (req.path === '/readyz') return healthy;
      return posts(seen).length === 1 ? { status: 429, headers: { 'Retry-After': '1' }, body: {} } : ok();
    });
    try {
      const started = Date.now();
      const result = await triggerRemote({ baseUrl: server.url, secret: SECRET, task: 'noop', ...FAST });
      expect(result.error).to.equal(null);
      expect(Date.now() - started).to.be.at.least(950);
    } finally {
      await server.close();
    }
  });

  it('honours a Retry-After shorter than the retry delay too', async () => {
    const server = await stubServer((req, seen) => {
      if (req.path === '/readyz') return healthy;
      return posts(seen).length === 1 ? { status: 503, headers: { 'Retry-After': '0' }, body: {} } : ok();
    });
    try {
      const lines: string[] = [];
      const started = Date.now();
      const result = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        ...FAST,
        retryDelayMs: 10_000,
        log: (line) => lines.push(line),
      });
      expect(result.error).to.equal(null);
      expect(Date.now() - started).to.be.below(2_000);
      expect(lines).to.include('POST /cron/noop: HTTP 503, retrying in 0 s (attempt 1)');
    } finally {
      await server.close();
    }
  });

  it('does not wait out a Retry-After that ends past the wake time-out: that answer is the error', async () => {
    const server = await stubServer((req) =>
      req.path === '/readyz'
        ? healthy
        : {
            status: 429,
            headers: { 'Retry-After': '60' },
            body: { status: 'error', code: 'TOO_MANY_REQUESTS', message: 'slow down' },
          },
    );
    try {
      const started = Date.now();
      const result = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        ...FAST,
        wakeTimeoutMs: 1_000,
      });
      expect(result.error).to.include({ code: 'TOO_MANY_REQUESTS', exitCode: 75, message: 'slow down' });
      expect(Date.now() - started).to.be.below(1_000);
      expect(posts(server.seen)).to.have.length(1);
    } finally {
      await server.close();
    }
  });

  it('with sign sends a fresh verifiable signature on every request and never the secret', async () => {
    const server = await stubServer((req, seen) => {
      if (req.path === '/readyz') return healthy;
      return posts(seen).length === 1 ? { status: 503 } : ok();
    });
    try {
      const result = await triggerRemote({
        baseUrl: server.url,
        secret: SECRET,
        task: 'noop',
        sign: true,
        params: { a: 1 },
        ...FAST,
      });
      expect(result.error).to.equal(null);
      const sent = posts(server.seen);
      expect(sent).to.have.length(2);
      for (const req of sent) {
        expect(req.headers['x-cron-secret']).to.equal(undefined);
        const parsed = parseSignature(String(req.headers['x-cron-signature']));
        expect(parsed).to.not.equal(null);
        expect(
          verifySignature(parsed!, { method: 'POST', path: req.path, body: req.body }, [SECRET]),
        ).to.equal(true);
      }
      expect(sent[0]!.headers['x-cron-signature']).to.not.equal(sent[1]!.headers['x-cron-signature']);
    } finally {
      await server.close();
    }
  });

  it('refuses a base URL that is not http(s) as a usage error', () => {
    expect(() => new TriggerClient({ baseUrl: 'ftp://x', secret: SECRET, task: 'noop' })).to.throw(
      /--url must be/,
    );
  });
});

describe('taskgate trigger', () => {
  const env = (url: string) => ({ CRON_SECRET_KEY: SECRET, TASKGATE_URL: url });

  it('prints the answer, exits 0, and keeps the secret out of its output', async () => {
    const server = await stubServer((req, seen) =>
      req.path === '/readyz' ? (count(seen, 'GET', '/readyz') === 1 ? { status: 503 } : healthy) : ok('echo'),
    );
    try {
      const run = await runCli(
        ['trigger', 'echo', '--param', 'count=2', '--dry-run', '--retry-delay', '0.05', '--json'],
        env(server.url),
      );
      expect(run.code, run.stderr).to.equal(0);
      expect(JSON.parse(run.stdout)).to.include({ status: 'success', runId: RUN_ID });
      expect(JSON.parse(posts(server.seen)[0]!.body)).to.deep.equal({ count: 2, dryRun: true });
      expect(run.stderr).to.include('GET /readyz: HTTP 503, retrying');
      expect(run.stdout + run.stderr).to.not.include(SECRET);
    } finally {
      await server.close();
    }
  });

  it('exits 1 and prints taskgate’s error JSON when the task fails', async () => {
    const server = await stubServer((req) =>
      req.path === '/readyz'
        ? healthy
        : {
            status: 500,
            body: {
              status: 'error',
              code: 'TASK_FAILED',
              task: 'noop',
              runId: RUN_ID,
              message: 'noop failed: boom',
            },
          },
    );
    try {
      const json = await runCli(['trigger', 'noop', '--url', server.url, '--json'], {
        CRON_SECRET_KEY: SECRET,
      });
      expect(json.code).to.equal(1);
      expect(JSON.parse(json.stdout)).to.include({ code: 'TASK_FAILED', runId: RUN_ID });
      const text = await runCli(['trigger', 'noop', '--url', server.url], { CRON_SECRET_KEY: SECRET });
      expect(text.code).to.equal(1);
      expect(text.stderr).to.include('taskgate: noop failed: boom');
    } finally {
      await server.close();
    }
  });

  it('exits 1 saying the host never answered once --wake-timeout has passed', async () => {
    const port = await freePort();
    const run = await runCli(
      ['trigger', 'noop', '--url', `http://127.0.0.1:${port}`, '--wake-timeout', '2', '--retry-delay', '0.2'],
      { CRON_SECRET_KEY: SECRET },
    );
    expect(run.code, run.stderr).to.equal(1);
    expect(run.stderr).to.include('taskgate: GET /readyz: ECONNREFUSED, retrying in 0.2 s (attempt 1)');
    expect(run.stderr).to.include(
      `taskgate: GET /readyz got no answer from http://127.0.0.1:${port} (ECONNREFUSED)`,
    );
  });

  it('warns before it sends the secret over plain http:// to a host that is not this machine, and not otherwise', async function () {
    // This machine's own address on a network interface: reached without leaving it, yet not loopback.
    const address = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (!address) {
      if (process.env.CI) throw new Error('no network interface besides loopback: CI never skips this test');
      process.stderr.write(
        '\n!!! SKIPPED: the plain-http warning test (no network interface besides loopback) !!!\n\n',
      );
      this.skip();
    }
    const server = await stubServer((req) => (req.path === '/readyz' ? healthy : ok('echo')), 0, address);
    try {
      const warning = `taskgate: warning: sending CRON_SECRET_KEY over plain http:// to ${address}:${server.port}: anyone on the way can read it and run tasks with it; use https://, or --sign\n`;
      const plain = await runCli(['trigger', 'echo'], env(server.url));
      expect(plain.code, plain.stderr).to.equal(0);
      expect(plain.stderr.startsWith(warning), plain.stderr).to.equal(true);
      expect(posts(server.seen)[0]!.headers['x-cron-secret']).to.equal(SECRET);
      const signed = await runCli(['trigger', 'echo', '--sign'], env(server.url));
      expect(signed.code, signed.stderr).to.equal(0);
      expect(signed.stderr).not.to.include('warning');
    } finally {
      await server.close();
    }
    const local = await stubServer((req) => (req.path === '/readyz' ? healthy : ok('echo')));
    try {
      for (const url of [local.url, `http://localhost:${local.port}`]) {
        const run = await runCli(['trigger', 'echo'], env(url));
        expect(run.code, run.stderr).to.equal(0);
        expect(run.stderr, url).not.to.include('warning');
      }
    } finally {
      await local.close();
    }
  });

  it('exits 2 with a clear message when there is no URL or no secret', async () => {
    const noUrl = await runCli(['trigger', 'noop'], { CRON_SECRET_KEY: SECRET });
    expect(noUrl.code).to.equal(2);
    expect(noUrl.stderr).to.include('--url <base> or TASKGATE_URL');
    const noSecret = await runCli(['trigger', 'noop', '--url', 'http://127.0.0.1:9']);
    expect(noSecret.code).to.equal(2);
    expect(noSecret.stderr).to.include('CRON_SECRET_KEY is not set');
  });
});
