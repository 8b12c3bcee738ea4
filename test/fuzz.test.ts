import { randomUUID } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { expect } from 'chai';
import fc from 'fast-check';
import { applyServerLimits } from '../src/http/serverLimits.js';
import { signRequest } from '../src/http/signature.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { buildApp, PREVIOUS_SECRET, SECRET, type TestApp } from './support/http.js';

const METRICS_TOKEN = 'fuzz-metrics-Q8vL2mZ7pK4xN9rT';
const REQUESTS = 10_000;
const PARALLEL = 8;

/** Safe to put in a header as Node's client sends it (it refuses control characters itself). */
const headerText = (max: number) =>
  fc.string({
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    maxLength: max,
  });
const token = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz-_0123456789'),
  minLength: 1,
  maxLength: 20,
});

const method = fc.oneof(
  { weight: 9, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') },
  // Methods Node's parser does not know are answered 400 by Node itself, before taskgate.
  { weight: 1, arbitrary: token.map((t) => t.toUpperCase().replace(/[^A-Z]/g, '') || 'FOO') },
);

const path = fc.oneof(
  fc.constantFrom(
    '/cron',
    '/cron/',
    '/cron/noop',
    '/cron/echo',
    '/cron/fail',
    '/cron/sleep',
    '/cron/runs',
    '/cron/runs?limit=1',
    '/cron/runs?task=echo&status=failed',
    '/cron/runs?limit=0',
    '/cron/runs?limit=99999999999999999999',
    '/cron/runs?x[y]=1',
    `/cron/runs/${'-'.repeat(36)}`,
    '/cron/runs/00000000-0000-4000-8000-000000000000',
    '/cron/%ZZ',
    '/cron/%00',
    '/cron/..%2f..%2fetc%2fpasswd',
    '/healthz',
    '/readyz',
    '/metrics',
    '/api/v1/auth/cron/flush-tokens/',
    '/api/v1/auth/cron/flush-tokens',
    '/',
    '//cron//noop',
  ),
  token.map((t) => `/cron/${t}`),
  token.map((t) => `/cron/runs/${t}`),
  fc.uuid().map((id) => `/cron/runs/${id}`),
  headerText(40).map((t) => `/${encodeURIComponent(t)}`),
  fc.constant(`/cron/${'a'.repeat(9_000)}`),
);

type Credential =
  | 'none'
  | 'secret'
  | 'previous-bearer'
  | 'wrong-secret'
  | 'signature'
  | 'bad-signature'
  | 'metrics-token'
  | 'duplicate-secret'
  | 'duplicate-authorization';
const credential = fc.constantFrom<Credential>(
  'none',
  'secret',
  'previous-bearer',
  'wrong-secret',
  'signature',
  'bad-signature',
  'metrics-token',
  'duplicate-secret',
  'duplicate-authorization',
);

type Encoding = 'none' | 'gzip' | 'deflate' | 'br' | 'bad-gzip' | 'bad-br' | 'unknown' | 'identity';
const encoding = fc.constantFrom<Encoding>(
  'none',
  'gzip',
  'deflate',
  'br',
  'bad-gzip',
  'bad-br',
  'unknown',
  'identity',
);

const body = fc.oneof(
  fc.constant(''),
  fc.json({ maxDepth: 3 }),
  fc
    .record({ count: fc.integer(), label: fc.string(), dryRun: fc.oneof(fc.boolean(), fc.string()) })
    .map((o) => JSON.stringify(o)),
  fc.record({ ms: fc.integer({ min: 0, max: 2_000 }) }).map((o) => JSON.stringify(o)),
  fc.string({ maxLength: 200 }),
  fc.constant(`{"pad":"${'x'.repeat(17_000)}"}`),
  fc.constant('{"a":'),
);

const extraHeaders = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constantFrom('Content-Type'),
      fc.constantFrom(
        'application/json',
        'text/plain',
        'application/json; charset=latin1',
        'multipart/form-data',
        '',
      ),
    ),
    fc.tuple(fc.constantFrom('Idempotency-Key'), headerText(300)),
    fc.tuple(
      fc.constantFrom('Prefer'),
      fc.constantFrom('respond-async', 'wait=1', 'wait=abc', headerText(30) as unknown as string),
    ),
    fc.tuple(fc.constantFrom('X-Request-Id'), headerText(200)),
    fc.tuple(fc.constantFrom('Accept'), fc.constantFrom('application/json', '*/*', 'text/html')),
    fc.tuple(
      token.map((t) => `X-${t}`),
      headerText(100),
    ),
    fc.tuple(fc.constantFrom('X-Huge'), fc.constant('h'.repeat(20_000))),
    fc.tuple(fc.constantFrom('X-Cron-Signature'), headerText(120)),
    fc.tuple(fc.constantFrom('Authorization'), headerText(80)),
  ),
  { maxLength: 4 },
);

const address = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.constantFrom('203.0.113.7', '2001:db8::1', '2001:db8::2', 'garbage'),
);

const fuzzRequest = fc.record({ method, path, credential, encoding, body, extraHeaders, address });
type FuzzRequest = typeof fuzzRequest extends fc.Arbitrary<infer T> ? T : never;

function encode(text: string, how: Encoding): { bytes: Buffer; header?: string } {
  const plain = Buffer.from(text, 'utf8');
  switch (how) {
    case 'gzip':
      return { bytes: gzipSync(plain), header: 'gzip' };
    case 'deflate':
      return { bytes: deflateSync(plain), header: 'deflate' };
    case 'br':
      return { bytes: brotliCompressSync(plain), header: 'br' };
    case 'bad-gzip':
      return { bytes: plain, header: 'gzip' };
    case 'bad-br':
      return { bytes: plain, header: 'br' };
    case 'unknown':
      return { bytes: plain, header: 'x-squash' };
    case 'identity':
      return { bytes: plain, header: 'identity' };
    default:
      return { bytes: plain };
  }
}

/** The request as raw header pairs (duplicates kept) and body bytes. */
function build(r: FuzzRequest): { headers: string[]; bytes: Buffer; authenticated: boolean } {
  const { bytes, header } = encode(r.body, r.encoding);
  // Node's client adds no Host (nor Content-Length) to headers given as a list.
  const headers: string[] = [
    'Host',
    'taskgate.test',
    'Content-Length',
    String(bytes.length),
    'X-Forwarded-For',
    r.address,
  ];
  if (header) headers.push('Content-Encoding', header);
  if (bytes.length > 0 && !r.extraHeaders.some(([name]) => name === 'Content-Type')) {
    headers.push('Content-Type', 'application/json');
  }
  const signed = () => signRequest(SECRET, { method: r.method, path: r.path, body: r.body });
  const credentials: Record<Credential, string[]> = {
    none: [],
    secret: ['X-Cron-Secret', SECRET],
    'previous-bearer': ['Authorization', `Bearer ${PREVIOUS_SECRET}`],
    'wrong-secret': ['X-Cron-Secret', `${SECRET.slice(0, -1)}x`],
    signature: ['X-Cron-Signature', signed()],
    'bad-signature': ['X-Cron-Signature', `t=${Math.floor(Date.now() / 1000)},v1=${'ab'.repeat(32)}`],
    'metrics-token': ['Authorization', `Bearer ${METRICS_TOKEN}`],
    'duplicate-secret': ['X-Cron-Secret', SECRET, 'X-Cron-Secret', SECRET],
    'duplicate-authorization': ['Authorization', `Bearer ${SECRET}`, 'Authorization', 'Bearer wrong'],
  };
  headers.push(...credentials[r.credential]);
  for (const [name, value] of r.extraHeaders) headers.push(name, value);
  const authenticated = ['secret', 'previous-bearer', 'signature'].includes(r.credential);
  return { headers, bytes, authenticated };
}

interface Answer {
  status: number;
  text: string;
}

function send(port: number, agent: Agent, r: FuzzRequest): Promise<Answer & { authenticated: boolean }> {
  const { headers, bytes, authenticated } = build(r);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: r.method, path: r.path, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            authenticated,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(bytes);
  });
}

/**
 * Thousands of generated requests (methods, paths, encodings, credentials right, wrong and
 * repeated, huge headers and bodies) against the real app on a real database: none may be a
 * server error, show a stack trace or a secret, or make memory grow without bound.
 */
describe('fuzzing the HTTP face', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let app: TestApp;
  let server: Server;
  let port: number;

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql, {
      CRON_SECRET_KEY_PREVIOUS: PREVIOUS_SECRET,
      METRICS_TOKEN,
      TRUST_PROXY: '1',
      SYNC_WAIT_MS: '100',
      AUTH_FAILURE_LIMIT: '20',
    });
    // The server as `serve` makes it: its limits decide how a malformed request is answered.
    server = applyServerLimits(createServer(app.callback));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await app.close();
    await db.drop();
  });

  it(`answers ${REQUESTS} generated requests without a 5xx, a stack trace or a secret, in bounded memory`, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: PARALLEL });
    const secrets = [SECRET, PREVIOUS_SECRET, METRICS_TOKEN];
    const statuses = new Map<string, number>();
    let sent = 0;
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fuzzRequest, { minLength: PARALLEL, maxLength: PARALLEL }),
          async (batch) => {
            const answers = await Promise.all(batch.map((r) => send(port, agent, r)));
            sent += batch.length;
            answers.forEach((answer, i) => {
              const code = /"code":"(\w+)"/.exec(answer.text)?.[1] ?? '';
              const key = `${answer.status}${code ? ` ${code}` : ''}`;
              statuses.set(key, (statuses.get(key) ?? 0) + 1);
              const what = `${batch[i]!.method} ${batch[i]!.path.slice(0, 80)} → ${answer.status} ${answer.text.slice(0, 200)}`;
              // A task that fails is answered 500 TASK_FAILED, to its authenticated caller only.
              const taskFailure =
                answer.authenticated && /"code":"TASK_(FAILED|INTERRUPTED)"/.test(answer.text);
              expect(answer.status < 500 || taskFailure, what).to.equal(true);
              expect(answer.text, what).not.to.match(/\n\s+at |node:internal|\.ts:\d+|node_modules/);
              for (const secret of secrets) expect(answer.text.includes(secret), what).to.equal(false);
            });
          },
        ),
        { numRuns: REQUESTS / PARALLEL, endOnFailure: true },
      );
    } finally {
      agent.destroy();
    }
    const seconds = (performance.now() - started) / 1000;
    globalThis.gc?.();
    const grownMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    console.log(
      `      (${sent} requests in ${seconds.toFixed(1)} s; heap ${grownMb.toFixed(1)} MB more; statuses ${JSON.stringify(Object.fromEntries(statuses))})`,
    );
    expect(sent).to.be.at.least(REQUESTS);
    expect(grownMb).to.be.below(64);
    const logged = app.logs.text;
    for (const secret of secrets) expect(logged.includes(secret)).to.equal(false);
    expect(app.logs.lines().filter((line) => line.msg === 'request failed')).to.deep.equal([]);
    app.logs.chunks.length = 0;
  });

  it('still answers a valid trigger after the fuzzing', async () => {
    const r: FuzzRequest = {
      method: 'POST',
      path: '/cron/echo',
      credential: 'secret',
      encoding: 'gzip',
      body: JSON.stringify({ label: randomUUID().slice(0, 8) }),
      extraHeaders: [],
      address: '198.51.100.1',
    };
    const answer = await send(port, new Agent(), r);
    expect(answer.status, answer.text).to.equal(200);
  });
});
