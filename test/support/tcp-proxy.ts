import { connect, createServer, type Server, type Socket } from 'node:net';

/** Which way bytes stop: both, only from taskgate to the server, or only back. */
type Direction = 'both' | 'toServer' | 'toClient';

/**
 * A TCP proxy between taskgate and PostgreSQL that a test can freeze (bytes stop flowing both
 * ways, or one way only, connections stay open: a hung network path, a stalled server, a
 * blackholed route) or cut (every connection reset and new ones refused: a database that is
 * down), then restore, without touching the shared server. What a frozen direction was sent is
 * held, and delivered on restore if its connection is still open, as a network that recovers does.
 */
export interface TcpProxy {
  /** `targetUrl` with host and port of the proxy. */
  url: string;
  port: number;
  /** Stops bytes flowing `direction` (default both) on open connections and new ones. */
  freeze(direction?: Direction): void;
  cut(): void;
  restore(): void;
  /** Resolves once `count` connections in all have been refused while cut. */
  refused(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  let state: 'open' | 'frozen' | 'cut' = 'open';
  let frozen: Direction = 'both';
  const pairs = new Set<{ client: Socket; server: Socket }>();
  let refusedCount = 0;
  const waiters: { count: number; resolve: () => void }[] = [];

  const server: Server = createServer((client) => {
    if (state === 'cut') {
      client.destroy();
      refusedCount += 1;
      for (const waiter of waiters.filter((w) => w.count <= refusedCount)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
      return;
    }
    const upstream = connect(targetPort, target.hostname);
    const pair = { client, server: upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    if (state === 'frozen') {
      stop(pair, frozen);
      if (frozen === 'toClient') client.pipe(upstream);
      if (frozen === 'toServer') upstream.pipe(client);
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  /** Unpiping stops the flow even of data already read; pausing stops reading more. */
  const stop = ({ client, server }: { client: Socket; server: Socket }, direction: Direction) => {
    if (direction !== 'toClient') {
      client.unpipe(server);
      client.pause();
    }
    if (direction !== 'toServer') {
      server.unpipe(client);
      server.pause();
    }
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  const each = (fn: (pair: { client: Socket; server: Socket }) => void) => {
    for (const pair of [...pairs]) fn(pair);
  };
  return {
    url: url.toString(),
    port,
    freeze(direction = 'both') {
      state = 'frozen';
      frozen = direction;
      each((pair) => stop(pair, direction));
    },
    cut() {
      state = 'cut';
      each(({ client, server }) => {
        client.resetAndDestroy();
        server.destroy();
      });
    },
    restore() {
      const was = state === 'frozen' ? frozen : 'both';
      state = 'open';
      each(({ client, server }) => {
        if (was !== 'toClient') client.pipe(server);
        if (was !== 'toServer') server.pipe(client);
        client.resume();
        server.resume();
      });
    },
    refused(count) {
      if (refusedCount >= count) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ count, resolve }));
    },
    async close() {
      state = 'cut';
      each(({ client, server }) => {
        client.destroy();
        server.destroy();
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
