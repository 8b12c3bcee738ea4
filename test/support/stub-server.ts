import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as a stub server saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface StubAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface StubServer {
  url: string;
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A local HTTP server (on 127.0.0.1, or `host`) answering each request with what `answer` says: a
 * stand-in for a remote taskgate, a proxy in front of a waking host, or an alert receiver.
 */
export async function stubServer(
  answer: (request: SeenRequest, seen: SeenRequest[]) => StubAnswer | Promise<StubAnswer>,
  port = 0,
  host = '127.0.0.1',
): Promise<StubServer> {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', async () => {
      const request = { method: req.method!, path: req.url!, headers: req.headers, body };
      seen.push(request);
      try {
        const out = await answer(request, seen);
        res.writeHead(out.status, { 'Content-Type': 'application/json', ...out.headers });
        res.end(out.body === undefined ? '' : JSON.stringify(out.body));
      } catch {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${actual}`,
    port: actual,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (yet): listen on 0, note the port, close. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** What a proxy does with one request: pass it on, answer for the upstream, or pass it on and lose the answer. */
export type ProxyAction = 'forward' | 'forward-then-502' | StubAnswer;

/**
 * A proxy in front of a local taskgate, standing in for a hosting platform's edge: it can answer
 * 503 while the "host wakes", or pass a request on and replace the answer with a 502 (a lost
 * answer), as `decide` says for each request.
 */
export async function proxyServer(
  upstream: string,
  decide: (request: SeenRequest, seen: SeenRequest[]) => ProxyAction,
): Promise<StubServer> {
  return stubServer(async (request, seen) => {
    const action = decide(request, seen);
    if (typeof action === 'object') return action;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (['host', 'connection', 'content-length', 'transfer-encoding'].includes(name)) continue;
      if (typeof value === 'string') headers[name] = value;
    }
    const response = await fetch(upstream + request.path, {
      method: request.method,
      headers,
      body: request.method === 'GET' || request.method === 'HEAD' ? undefined : request.body,
    });
    const text = await response.text();
    if (action === 'forward-then-502') return { status: 502, body: { message: 'bad gateway' } };
    const passed: Record<string, string> = {};
    for (const name of ['location', 'retry-after', 'idempotent-replayed']) {
      const value = response.headers.get(name);
      if (value) passed[name] = value;
    }
    return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: passed };
  });
}
