import type { Server } from 'node:http';

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
}

export const SERVER_LIMITS: ServerLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  maxConnections: 1_000,
  checkIntervalMs: 1_000,
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
  return server;
}
