import type { Server } from 'node:http';
import { createApp } from '../http/app.js';
import { openServices } from '../service.js';
import { bootstrap } from './context.js';

/**
 * `taskgate serve` (and `npm start`): listens until SIGTERM or SIGINT, then stops accepting
 * requests, lets running tasks finish for SHUTDOWN_GRACE_MS, interrupts the rest, closes the
 * database (and the embedded PostgreSQL) and exits 0.
 */
export async function serve(): Promise<void> {
  const started = performance.now();
  const { config, logger } = bootstrap({ serve: true });
  if (config.secretGenerated) {
    process.stdout.write(
      `CRON_SECRET_KEY is not set: generated one for this run (development only): ${config.secrets[0]}\n`,
    );
  }
  const services = await openServices(config, logger);
  const abandoned = await services.runner.sweepAbandoned();
  if (abandoned.length > 0) logger.warn({ runIds: abandoned }, 'found runs abandoned by a stopped process');
  const app = createApp(services);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.port, config.host, () => resolve(s)).once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(
    {
      url: `http://${config.host}:${port}`,
      tasks: services.registry.names(),
      ms: Math.round(performance.now() - started),
    },
    'taskgate is listening',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, activeRuns: services.runner.activeCount }, 'shutting down');
    const closed = new Promise((resolve) => server.close(resolve));
    server.closeIdleConnections();
    try {
      await services.close(config.shutdownGraceMs);
    } catch (error) {
      logger.error({ err: error }, 'error while shutting down');
    }
    server.closeAllConnections();
    await closed;
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
