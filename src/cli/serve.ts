import type { Server } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { taskCatalog } from '../core/catalog.js';
import { InternalClock } from '../core/clock.js';
import { recentSlotsOf } from '../core/slots.js';
import { createApp } from '../http/app.js';
import { Refusals } from '../http/refusals.js';
import { applyServerLimits, SERVER_LIMITS } from '../http/serverLimits.js';
import type { Metrics } from '../monitoring/metrics.js';
import { createMonitoring, type Monitoring } from '../monitoring/monitoring.js';
import { openServices } from '../service.js';
import { bootstrap } from './context.js';
import { ensurePortFree, listenError } from './port.js';

/** How long answered-but-unsent responses get after the runs have settled, before sockets are cut. */
const RESPONSE_DRAIN_MS = 1_000;
/**
 * SIGTERM ends the process within SHUTDOWN_GRACE_MS plus this, whatever a task does: the runner
 * needs ABORT_SETTLE_MS + CANCEL_SETTLE_MS and one statement to record the interrupted runs, the
 * responses RESPONSE_DRAIN_MS, and the pool its close. Past it the process exits regardless.
 */
export const SHUTDOWN_MARGIN_MS = 8_000;
/** The same signal again within this long is the same request to stop, not a second one (ms). */
const REPEAT_MS = 1_000;

/**
 * `taskgate serve` (and `npm start`): listens until SIGTERM or SIGINT, then stops accepting
 * connections, lets running tasks finish for SHUTDOWN_GRACE_MS, interrupts the rest, lets the
 * requests waiting on them be answered, closes the database (and the embedded PostgreSQL) and
 * exits 0.
 */
export async function serve(): Promise<void> {
  const started = performance.now();
  const { config, logger } = bootstrap({ serve: true });
  // The signals are heeded from the start: as PID 1 in a container node ignores a SIGTERM it has
  // no handler for, so a `docker stop` while the database is retried would wait for SIGKILL.
  // Until taskgate listens, a stop ends the start-up (`starting`); once it listens, it drains.
  const starting = new AbortController();
  let stopping: { signal: string; at: number } | undefined;
  let drain: ((signal: string) => Promise<void>) | undefined;
  const onSignal = (signal: string) => {
    if (stopping) {
      // Ctrl-C under `npm start` arrives twice at once: from the terminal and forwarded by npm.
      if (signal === stopping.signal && performance.now() - stopping.at < REPEAT_MS) return;
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = { signal, at: performance.now() };
    setTimeout(() => {
      logger.error({ signal }, 'shutdown took longer than its bound: exiting now');
      process.exit(1);
    }, config.shutdownGraceMs + SHUTDOWN_MARGIN_MS).unref();
    if (drain) void drain(signal);
    else {
      logger.info({ signal, starting: true }, 'shutting down');
      starting.abort(new Error(`${signal} during start-up`));
    }
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  if (config.secretGenerated) {
    // Printed once, on stdout only (never to the log). The line that keeps it uses printf, a shell
    // builtin, so the secret is in no other process's arguments (`ps` shows none of it).
    process.stdout.write(
      `CRON_SECRET_KEY is not set: made one up for this run (development only): ${config.secrets[0]}\n` +
        `To keep it, run in this folder: printf 'CRON_SECRET_KEY=%s\\n' '${config.secrets[0]}' >> .env\n`,
    );
  }
  // A port in use is found before the database (and an embedded PostgreSQL) is started.
  await ensurePortFree(config.host, config.port);
  // In production /metrics is served only behind METRICS_TOKEN (src/http/app.ts): without one,
  // nothing could read the metrics, and prom-client is not even loaded.
  const MetricsClass =
    config.http.metricsToken || config.env !== 'production'
      ? (await import('../monitoring/metrics.js')).Metrics
      : null;
  let metrics: Metrics | undefined;
  let monitoring: Monitoring | undefined;
  const services = await openServices(config, logger, {
    migrate: true,
    signal: starting.signal,
    // Made once the database and the tasks are open, before the runner that tells them of runs.
    listeners: ({ db, registry }) => {
      metrics = MetricsClass
        ? new MetricsClass({
            processMetrics: true,
            tasks: () => taskCatalog(registry, db, new Date()),
            slots: () => recentSlotsOf(db, registry.list(), new Date(), 10),
          })
        : undefined;
      monitoring = createMonitoring(config.scheduling, logger, { db, registry });
      return [...(metrics ? [metrics.runListener] : []), ...monitoring.listeners];
    },
  }).catch((error: unknown) => {
    // Stopped while starting: what was opened is closed (openDatabase), and no run has begun.
    if (starting.signal.aborted) {
      logger.info('stopped');
      process.exit(0);
    }
    throw error;
  });
  monitoring!.start();
  // Runs whose process died are marked abandoned within a lease and a sweep of their last renewal.
  const sweep = () =>
    services.runner
      .sweepAbandoned()
      .catch((error) => logger.warn({ err: error }, 'could not look for abandoned runs'));
  await sweep();
  const sweeper = setInterval(sweep, sweepIntervalMs(config.runLeaseMs));
  sweeper.unref();
  const refusals = new Refusals(logger, metrics);
  // Fires the tasks' slots itself (unless INTERNAL_CLOCK=false) and catches up missed ones.
  const clock = new InternalClock(
    { runner: services.runner, registry: services.registry, db: services.db, logger },
    { fire: config.scheduling.internalClock },
  );
  const app = createApp({ ...services, metrics, refusals, onRequest: () => clock.noteActivity() });
  let server: Server;
  try {
    server = await new Promise((resolve, reject) => {
      const s = applyServerLimits(
        app.listen(config.port, config.host, () => resolve(s)),
        SERVER_LIMITS,
        {
          behindProxy: config.http.trustProxyHops > 0,
        },
      ).once('error', reject);
    });
  } catch (error) {
    // Taken meanwhile: nothing keeps running (no pool, no timer, no embedded PostgreSQL).
    clearInterval(sweeper);
    await monitoring!.close();
    await services.close(0);
    throw listenError(error, config.host, config.port);
  }
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
  void clock.start();

  drain = async (signal: string) => {
    clearInterval(sweeper);
    clock.stop();
    logger.info({ signal, activeRuns: services.runner.activeCount }, 'shutting down');
    const closed = new Promise((resolve) => server.close(resolve));
    // A keep-alive socket left idle between requests would hold `close` open: cut each one as
    // soon as it is idle, while requests still in flight are answered on theirs.
    server.closeIdleConnections();
    const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
    try {
      // Runs first: a request waiting on a run is answered once the run ends or is interrupted,
      // and that answer needs its socket still open.
      await services.runner.close(config.shutdownGraceMs);
      await monitoring!.close();
      await Promise.race([closed, delay(RESPONSE_DRAIN_MS)]);
      server.closeAllConnections();
      await services.close(0);
    } catch (error) {
      logger.error({ err: error }, 'error while shutting down');
    } finally {
      clearInterval(idleSweep);
    }
    server.closeAllConnections();
    await closed;
    refusals.flush();
    logger.info('stopped');
    process.exit(0);
  };
  // A stop that came after the database opened, while taskgate was not yet listening, drains now.
  if (stopping) void drain(stopping.signal);
}

/** How often `serve` looks for runs whose lease expired: twice a lease, at most every 15 s. */
function sweepIntervalMs(leaseMs: number): number {
  return Math.min(15_000, Math.max(500, Math.floor(leaseMs / 2)));
}
