import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import type { MikroORM } from '@mikro-orm/postgresql';
import Koa from 'koa';
import { checkDatabase } from '../db/health.js';
import type { Logger } from '../logger.js';
import { errorHandler } from './errors.js';

declare module 'koa' {
  interface DefaultContext {
    log: Logger;
    requestId: string;
  }
}

export interface AppDeps {
  orm: MikroORM;
  logger: Logger;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Gives each request an id (the caller's X-Request-Id when sane) and one log line at its end. */
function requestLog(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    const given = ctx.get('x-request-id');
    ctx.requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.set('X-Request-Id', ctx.requestId);
    ctx.log = logger.child({ requestId: ctx.requestId });
    const started = performance.now();
    try {
      await next();
    } finally {
      ctx.log.info(
        {
          method: ctx.method,
          path: ctx.path,
          status: ctx.status,
          ms: Math.round(performance.now() - started),
        },
        'request',
      );
    }
  };
}

/** Builds the Koa app without listening: `serve` listens, tests use supertest. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  const router = new Router();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const problem = await checkDatabase(deps.orm);
    ctx.status = problem ? 503 : 200;
    ctx.body = problem
      ? { status: 'error', code: 'DATABASE_UNAVAILABLE', message: problem }
      : { status: 'ok' };
  });

  app.use(requestLog(deps.logger));
  app.use(errorHandler());
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  return app;
}
