import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { TaskgateError } from '../errors.js';
import { errorBody } from './errors.js';

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
   * How long an idle keep-alive connection is kept: above the 60 s idle time-out of common load
   * balancers, so that the proxy, not taskgate, closes a pooled connection (else a request sent
   * on it as taskgate closes it is a 502).
   */
  keepAliveTimeoutMs: number;
  /** Connections open at once; new ones beyond are dropped until some close. */
  maxConnections: number;
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
  maxConnections: 1_000,
  checkIntervalMs: 1_000,
  lingerMs: 2_000,
});

/**
 * Applies the limits to a server that has not started listening yet (the time-out checks are
 * set up as it starts). `app.listen(...)` returns before it listens, so it can be wrapped.
 */
export function applyServerLimits<S extends Server>(server: S, limits: ServerLimits = SERVER_LIMITS): S {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  // A createServer option Node reads when the server starts listening; not in @types/node's Server.
  Object.assign(server, { connectionsCheckingInterval: limits.checkIntervalMs });
  server.on('clientError', (error: ClientError, socket: Duplex) =>
    refuseMalformed(error, socket, limits.lingerMs),
  );
  return server;
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
