import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between taskgate and PostgreSQL that a test can freeze (bytes stop flowing both
 * ways, connections stay open: a hung network path or a stalled server) or cut (every
 * connection reset and new ones refused: a database that is down), then restore, without
 * touching the shared server.
 */
export interface TcpProxy {
  /** `targetUrl` with host and port of the proxy. */
  url: string;
  port: number;
  freeze(): void;
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
    client.pipe(upstream);
    upstream.pipe(client);
    if (state === 'frozen') {
      client.pause();
      upstream.pause();
    }
  });
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
    freeze() {
      state = 'frozen';
      // Unpiping stops the flow even of data already read; pausing stops reading more.
      each(({ client, server }) => {
        client.unpipe(server);
        server.unpipe(client);
        client.pause();
        server.pause();
      });
    },
    cut() {
      state = 'cut';
      each(({ client, server }) => {
        client.resetAndDestroy();
        server.destroy();
      });
    },
    restore() {
      state = 'open';
      each(({ client, server }) => {
        client.pipe(server);
        server.pipe(client);
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
