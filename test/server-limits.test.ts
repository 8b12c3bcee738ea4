import { createServer, request as httpRequest, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { applyServerLimits, SERVER_LIMITS, type ServerLimits } from '../src/http/serverLimits.js';
import { signRequest } from '../src/http/signature.js';
import { type Served, startServe } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventually } from './support/eventually.js';
import { buildApp, HTTP_TASKS_DIR, SECRET, type TestApp } from './support/http.js';

/**
 * A raw connection that records when it was closed. `halfOpen`: it goes on sending after the
 * server's FIN, as an HTTP client still writing its request does.
 */
function open(
  port: number,
  halfOpen = false,
  localAddress = '127.0.0.1',
): { socket: Socket; closed: Promise<number>; text: () => string } {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: halfOpen, localAddress });
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    text += chunk;
  });
  socket.on('error', () => undefined);
  const started = Date.now();
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
  return { socket, closed, text: () => text };
}

describe('the HTTP server limits', () => {
  let server: Server;
  let port: number;

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function listen(limits = SERVER_LIMITS) {
    server = applyServerLimits(
      createServer((req, res) => {
        req.resume();
        req.on('end', () => res.end('ok'));
      }),
      limits,
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  }

  it('are those of a cron gate: 10 s for headers, 30 s for a request, 5 s keep-alive (65 s once authenticated), 1,000 connections, 64 per address', async () => {
    await listen();
    expect(server.headersTimeout).to.equal(10_000);
    expect(server.requestTimeout).to.equal(30_000);
    expect(server.keepAliveTimeout).to.equal(5_000);
    expect(SERVER_LIMITS.keepAliveTimeoutMs).to.equal(65_000);
    expect(server.maxConnections).to.equal(1_000);
    expect(SERVER_LIMITS.maxConnectionsPerAddress).to.equal(64);
    expect((server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval).to.equal(
      1_000,
    );
  });

  it('cut a client trickling its headers or its body once the time-outs pass, and refuse connections over the cap', async function () {
    this.timeout(15_000);
    await listen({
      headersTimeoutMs: 1_000,
      requestTimeoutMs: 2_000,
      keepAliveTimeoutMs: 1_000,
      unauthenticatedKeepAliveMs: 1_000,
      maxConnections: 3,
      maxConnectionsPerAddress: 10,
      checkIntervalMs: 200,
      lingerMs: 500,
    });
    const headers = open(port);
    const body = open(port);
    headers.socket.write('POST /cron/x HTTP/1.1\r\nHost: x\r\n');
    body.socket.write('POST /cron/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
    const trickle = setInterval(() => {
      if (headers.socket.writable) headers.socket.write('X-A: b\r\n');
      if (body.socket.writable) body.socket.write('a');
    }, 100);
    try {
      await delay(100);
      const third = open(port);
      const fourth = open(port);
      // The fourth connection is over the cap of three: dropped at once.
      expect(await Promise.race([fourth.closed, delay(1_000).then(() => -1)])).to.be.at.least(0);
      third.socket.destroy();
      const [headersCut, bodyCut] = await Promise.all([headers.closed, body.closed]);
      expect(headersCut).to.be.within(900, 2_500);
      expect(bodyCut).to.be.within(1_900, 3_500);
      expect(headers.text() + body.text()).to.match(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
  });

  it('answer headers over 16 KiB with 431 in the error model, and read the rest the client sends before closing, so it is not reset', async () => {
    await listen({ ...SERVER_LIMITS, lingerMs: 1_500 });
    const client = open(port, true);
    let failed: Error | undefined;
    client.socket.on('error', (error) => {
      failed = error;
    });
    client.socket.write(`POST /cron/x HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(20_000)}\r\n`);
    await delay(300);
    // The answer is there while the client is still sending its headers and its body.
    const answer = client.text();
    expect(answer).to.match(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(answer).to.include('Connection: close');
    expect(answer).to.include('Cache-Control: no-store\r\n');
    expect(answer).to.include('X-Content-Type-Options: nosniff\r\n');
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).to.deep.equal({
      status: 'error',
      code: 'HEADERS_TOO_LARGE',
      message: 'the request line and headers are larger than 16 KiB',
    });
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) =>
        client.socket.write(`X-More: ${'m'.repeat(10_000)}\r\n`, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      await delay(50);
    }
    client.socket.end('\r\n');
    const closed = await Promise.race([client.closed, delay(3_000).then(() => -1)]);
    expect(closed, 'closed once the client ended').to.be.above(0);
    expect(failed, 'no reset, no broken pipe').to.equal(undefined);
  });

  it('answer a HEAD with headers over 16 KiB with 431 and no body, as HEAD answers have', async () => {
    await listen();
    const status = await new Promise<number>((resolve, reject) =>
      httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'HEAD',
          path: '/cron/x',
          headers: { 'X-Huge': 'h'.repeat(20_000) },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      )
        .on('error', reject)
        .end(),
    );
    expect(status).to.equal(431);
  });

  it('answer bytes that are not HTTP with 400 BAD_REQUEST, and cut a client that goes on sending after the linger time', async () => {
    await listen({ ...SERVER_LIMITS, lingerMs: 400 });
    const client = open(port, true);
    client.socket.write('NOT HTTP AT ALL\r\n\r\n');
    const trickle = setInterval(() => client.socket.writable && client.socket.write('x'), 50);
    try {
      const closed = await Promise.race([client.closed, delay(3_000).then(() => -1)]);
      expect(closed).to.be.within(300, 1_500);
      expect(client.text()).to.match(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(client.text()).to.include('"code":"BAD_REQUEST"');
    } finally {
      clearInterval(trickle);
    }
  });
});

describe('taskgate serve: connection limits', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let served: Served | undefined;

  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    if (served && served.child.exitCode === null) served.child.kill('SIGKILL');
    await db.drop();
  });

  it('cuts a client that has not finished its headers within 10 s, with 408', async () => {
    served = await startServe({ DATABASE_URL: db.url, CRON_SECRET_KEY: SECRET, TASKS_DIR: HTTP_TASKS_DIR });
    const slow = open(Number(new URL(served.base).port));
    slow.socket.write('POST /cron/noop HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => slow.socket.writable && slow.socket.write('X-A: b\r\n'), 1_000);
    try {
      const cut = await Promise.race([slow.closed, delay(20_000).then(() => -1)]);
      expect(cut, 'the connection is cut').to.be.within(9_000, 12_500);
      expect(slow.text()).to.match(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
  });
});

/**
 * The attacker's address. Not 127.0.0.1: its thousand connections take a thousand ephemeral ports
 * on their address, and a test running beside this one that listens on 127.0.0.1 must not find
 * the port it picked taken.
 */
const ATTACKER = '127.0.0.3';

/** `count` connections from ATTACKER, each sending `request` once connected; how many are still open. */
async function flood(port: number, count: number, request: string) {
  const clients: ReturnType<typeof open>[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, () => open(port, false, ATTACKER));
    await Promise.all(
      batch.map(
        ({ socket }) =>
          new Promise<void>((resolve) => {
            socket.once('connect', () => socket.write(request, () => resolve()));
            socket.once('close', () => resolve());
          }),
      ),
    );
    clients.push(...batch);
  }
  let closed = 0;
  for (const client of clients) void client.closed.then(() => closed++);
  return {
    /** How many stay open once the server has dealt with them all (connections still queued count as open). */
    stillOpen: async (atMost: number) => {
      await eventually(async () => count - closed <= atMost, 15_000).catch(() => undefined);
      return count - closed;
    },
    end: () => {
      for (const { socket } of clients) socket.destroy();
    },
  };
}

/** A trigger with the right secret, as a scheduler at 127.0.0.2 sends it: its status, or why there was none. */
function triggerFrom(base: string, localAddress: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpRequest(`${base}/cron/noop`, {
      method: 'POST',
      localAddress,
      agent: false,
      headers: { 'X-Cron-Secret': SECRET },
      timeout: 20_000,
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')));
    req.on('error', (error) => resolve(error.message));
    req.end();
  });
}

describe('taskgate serve: one address cannot take every connection', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let served: Served;

  before(async () => {
    db = await createTestDatabase();
    served = await startServe({ DATABASE_URL: db.url, CRON_SECRET_KEY: SECRET, TASKS_DIR: HTTP_TASKS_DIR });
  });
  after(async () => {
    if (served.child.exitCode === null) served.child.kill('SIGKILL');
    await db.drop();
  });

  const port = () => Number(new URL(served.base).port);

  it('answers a trigger from 127.0.0.2 while 127.0.0.3 holds 1,000 idle keep-alive connections after /healthz, keeping 64 of them', async () => {
    const attack = await flood(
      port(),
      SERVER_LIMITS.maxConnections,
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    try {
      expect(
        await attack.stillOpen(SERVER_LIMITS.maxConnectionsPerAddress),
        'connections the attacker holds',
      ).to.be.at.most(SERVER_LIMITS.maxConnectionsPerAddress);
      expect(await triggerFrom(served.base, '127.0.0.2')).to.equal(200);
    } finally {
      attack.end();
    }
  });

  it('answers a trigger from 127.0.0.2 while 127.0.0.3 trickles bodies behind fake signatures on 1,000 connections', async () => {
    const fake = `t=${Math.floor(Date.now() / 1000)},v1=${'ab'.repeat(32)}`;
    const attack = await flood(
      port(),
      SERVER_LIMITS.maxConnections,
      `POST /cron/noop HTTP/1.1\r\nHost: x\r\nX-Cron-Signature: ${fake}\r\nContent-Type: application/json\r\nContent-Length: 16000\r\n\r\n{`,
    );
    try {
      expect(
        await attack.stillOpen(SERVER_LIMITS.maxConnectionsPerAddress),
        'connections the attacker holds',
      ).to.be.at.most(SERVER_LIMITS.maxConnectionsPerAddress);
      expect(await triggerFrom(served.base, '127.0.0.2')).to.equal(200);
    } finally {
      attack.end();
    }
  });
});

describe('the HTTP face: connections without credentials', () => {
  let db: TestDatabase;
  let app: TestApp;
  let server: Server;
  let port: number;

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql, { AUTH_FAILURE_LIMIT: '1' });
  });
  after(async () => {
    await app.close();
    await db.drop();
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function listen(limits: ServerLimits, behindProxy = false) {
    server = applyServerLimits(createServer(app.callback), limits, { behindProxy });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  }

  it('keeps an idle connection a short while after an unauthenticated answer, the long while after an authenticated one', async () => {
    await listen({
      ...SERVER_LIMITS,
      unauthenticatedKeepAliveMs: 300,
      keepAliveTimeoutMs: 5_000,
      checkIntervalMs: 100,
    });
    const anonymous = open(port);
    anonymous.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const scheduler = open(port);
    scheduler.socket.write(`POST /cron/noop HTTP/1.1\r\nHost: x\r\nX-Cron-Secret: ${SECRET}\r\n\r\n`);
    const cut = await Promise.race([anonymous.closed, delay(3_000).then(() => -1)]);
    expect(cut, 'the anonymous connection is closed').to.be.above(0);
    expect(anonymous.text()).to.match(/^HTTP\/1\.1 200 /);
    expect(scheduler.text()).to.match(/^HTTP\/1\.1 200 /);
    expect(scheduler.socket.destroyed, 'the scheduler keeps its connection').to.equal(false);
    scheduler.socket.destroy();
  });

  it('behind a trusted proxy keeps every connection the long while and caps no address (they are all the proxy’s)', async () => {
    await listen({ ...SERVER_LIMITS, maxConnectionsPerAddress: 2 }, true);
    expect(server.keepAliveTimeout).to.equal(SERVER_LIMITS.keepAliveTimeoutMs);
    const clients = [open(port), open(port), open(port), open(port)];
    for (const client of clients) client.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await delay(300);
    expect(clients.filter((c) => c.text().startsWith('HTTP/1.1 200 ')).length).to.equal(4);
    for (const client of clients) client.socket.destroy();
  });

  it('reads one signed body at a time from a blocked address: a second is answered 429 at once, its body unread, and a genuine one still passes', async () => {
    await listen(SERVER_LIMITS);
    // One wrong secret blocks 127.0.0.3 (AUTH_FAILURE_LIMIT=1).
    const wrong = open(port, false, '127.0.0.3');
    wrong.socket.write(
      'POST /cron/noop HTTP/1.1\r\nHost: x\r\nX-Cron-Secret: wrong\r\nConnection: close\r\n\r\n',
    );
    await wrong.closed;
    expect(wrong.text()).to.match(/^HTTP\/1\.1 401 /);
    const body = '{}';
    const head = (signature: string, length: number) =>
      `POST /cron/noop HTTP/1.1\r\nHost: x\r\nX-Cron-Signature: ${signature}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
    const genuine = signRequest(SECRET, { method: 'POST', path: '/cron/noop', body });
    const first = open(port, false, '127.0.0.3');
    first.socket.write(head(genuine, body.length) + body.slice(0, 1));
    await delay(200);
    const second = open(port, true, '127.0.0.3');
    second.socket.write(head(`t=${Math.floor(Date.now() / 1000)},v1=${'cd'.repeat(32)}`, 16_000));
    await delay(300);
    expect(second.text()).to.match(/^HTTP\/1\.1 429 /);
    expect(second.text()).to.include('Connection: close');
    first.socket.write(body.slice(1));
    await eventually(async () => first.text() !== '', 5_000);
    expect(first.text()).to.match(/^HTTP\/1\.1 200 /);
    first.socket.destroy();
    second.socket.destroy();
  });
});
