import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TaskgateError } from '../errors.js';
import { errorBody } from './errors.js';
import { limiterKey } from './limiter.js';

/**
 * What one connection may cost taskgate. A cron gate sees a few callers a day, each sending a
 * few hundred bytes of headers and at most 16 KiB of body: anything slower than these limits is
 * a broken or hostile client, and is cut.
 */
export interface ServerLimits {
  /** Time to receive a request's headers. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, headers and body (the answer may take longer). */
  requestTimeoutMs: number;
  /**
   * How long an idle keep-alive connection is kept behind a trusted proxy, and, without one, once
   * it has carried an authenticated request: above the 60 s idle time-out of common load
   * balancers, so that the proxy, not taskgate, closes a pooled connection (else a request sent
   * on it as taskgate closes it is a 502).
   */
  keepAliveTimeoutMs: number;
  /**
   * Without a trusted proxy, how long any other idle connection is kept (after /healthz, a
   * refusal, a login form): whoever holds connections open without credentials holds each for
   * this long between requests, not a minute.
   */
  unauthenticatedKeepAliveMs: number;
  /** Connections open at once; new ones beyond are dropped until some close. */
  maxConnections: number;
  /**
   * Without a trusted proxy, connections one address (IPv6: one /64) may hold open at once; more
   * are closed as they come. A scheduler uses one or two, a browser six: one address cannot take
   * the whole cap from the others, and a proxy whose hops were not declared (TRUST_PROXY) still
   * has room. (Behind a declared proxy every connection is the proxy's: the cap would be its, so
   * none is set; the requests' own limits hold there.)
   */
  maxConnectionsPerAddress: number;
  /** How often the header and request time-outs are checked (Node's default is 30 s). */
  checkIntervalMs: number;
  /**
   * How long a client refused for a malformed request (headers over 16 KiB, bytes that are not
   * HTTP) may go on sending what it had started to, read and dropped, before it is cut.
   */
  lingerMs: number;
}

export const SERVER_LIMITS: ServerLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  unauthenticatedKeepAliveMs: 5_000,
  maxConnections: 1_000,
  maxConnectionsPerAddress: 64,
  checkIntervalMs: 1_000,
  lingerMs: 2_000,
});

/** The keep-alive of an authenticated connection, by the server its sockets came to. */
const longKeepAlive = new WeakMap<Server, number>();

/**
 * Applies the limits to a server that has not started listening yet (the time-out checks are
 * set up as it starts). `app.listen(...)` returns before it listens, so it can be wrapped.
 * `behindProxy` (TRUST_PROXY above 0): every connection comes from the proxy, which pools them.
 */
export function applyServerLimits<S extends Server>(
  server: S,
  limits: ServerLimits = SERVER_LIMITS,
  { behindProxy = false }: { behindProxy?: boolean } = {},
): S {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = behindProxy ? limits.keepAliveTimeoutMs : limits.unauthenticatedKeepAliveMs;
  server.maxConnections = limits.maxConnections;
  if (!behindProxy) {
    longKeepAlive.set(server, limits.keepAliveTimeoutMs);
    capPerAddress(server, limits.maxConnectionsPerAddress);
  }
  // A createServer option Node reads when the server starts listening; not in @types/node's Server.
  Object.assign(server, { connectionsCheckingInterval: limits.checkIntervalMs });
  server.on('clientError', (error: ClientError, socket: Duplex) =>
    refuseMalformed(error, socket, limits.lingerMs),
  );
  return server;
}

/**
 * Gives the connection of an authenticated request the long keep-alive once its answer is sent
 * (Node sets the server's short one as the answer finishes; this listener runs after Node's).
 */
export function keepConnection(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket as Socket & { server?: Server };
  const keepAliveMs = socket.server && longKeepAlive.get(socket.server);
  if (!keepAliveMs) return;
  res.once('finish', () => {
    if (!socket.destroyed) socket.setTimeout(keepAliveMs);
  });
}

/** Closes a new connection whose address already holds `max` open ones. */
function capPerAddress(server: Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const key = limiterKey(socket.remoteAddress ?? '');
    const count = open.get(key) ?? 0;
    if (count >= max) {
      socket.destroy();
      return;
    }
    open.set(key, count + 1);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    });
  });
}

/** An error of Node's HTTP parser: its code, and the bytes it was parsing. */
type ClientError = Error & { code?: string; rawPacket?: Buffer };

/** What a request Node's parser refused is answered, by the parser's error code. */
function malformedError(code: string | undefined): TaskgateError {
  if (code === 'HPE_HEADER_OVERFLOW')
    return new TaskgateError('HEADERS_TOO_LARGE', 'the request line and headers are larger than 16 KiB');
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new TaskgateError('REQUEST_TIMEOUT', 'the request was not received in time');
  return new TaskgateError('BAD_REQUEST', 'the request is not valid HTTP/1.1');
}

const answered = new WeakSet<Duplex>();

/**
 * Answers a request Node's parser refused, in the error model, and closes its connection. Node's
 * own answer closes the socket at once: with the client still sending (a large header block, a
 * body), the unread bytes make the close a reset, which can reach the client before the answer
 * and be all it sees. So the answer is sent with a FIN, and what the client still sends is read
 * and dropped for up to `lingerMs`. A client too slow to send its request in time is cut at once.
 */
function refuseMalformed(error: ClientError, socket: Duplex, lingerMs: number): void {
  if (answered.has(socket)) return;
  answered.add(socket);
  // A response already begun on this connection cannot be followed by another one.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const refusal = malformedError(error.code);
  // The answer to a HEAD has no body, and the method is known only when the bytes Node could not
  // parse begin with the request line: otherwise the answer is its status line and headers alone.
  const method = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) /.exec(
    error.rawPacket?.toString('latin1', 0, 32) ?? '',
  )?.[1];
  const body = method && method !== 'HEAD' ? JSON.stringify(errorBody(refusal)) : '';
  const head =
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\nConnection: close\r\n` +
    (body ? 'Content-Type: application/json; charset=utf-8\r\n' : '') +
    'Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  socket.on('error', () => socket.destroy());
  if (refusal.code === 'REQUEST_TIMEOUT') {
    socket.end(head + body, () => socket.destroy());
    return;
  }
  // Node's parser no longer reads this connection: drop the rest of the request.
  socket.removeAllListeners('data');
  socket.on('data', () => undefined);
  socket.resume();
  socket.end(head + body);
  setTimeout(() => socket.destroy(), lingerMs).unref();
}
