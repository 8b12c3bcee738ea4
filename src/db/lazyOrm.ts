import { createRequire } from 'node:module';
import type { MikroORM } from '@mikro-orm/postgresql';

const require = createRequire(import.meta.url);

/**
 * MikroORM for one database URL, loaded and made on first use. Loading it is most of what
 * `serve` and `run` would spend starting (bench/README.md), and taskgate's own SQL goes through
 * src/db/sql.ts: only pending migrations and tasks that read `ctx.em` need it.
 *
 * `get` is synchronous because `ctx.em` is a property: it requires ./orm.js (an ES module
 * without top-level await, which Node 20.19+ and 22.12+ load with `require`), and the ORM it
 * makes connects on its first query. The path is written from one folder up so that it holds in
 * a build too, where this code sits in dist/src/chunks/ and orm.js in dist/src/db/ (scripts/build.mjs).
 */
export class LazyOrm {
  private orm: MikroORM | undefined;

  constructor(private readonly url: string) {}

  /** Whether the ORM has been made (tests and benchmarks look). */
  get loaded(): boolean {
    return this.orm !== undefined;
  }

  /** The ORM, connected: for migrations, which may load it at start-up without blocking. */
  async ready(): Promise<MikroORM> {
    if (!this.orm) {
      const { initORM } = await import('./orm.js');
      this.orm ??= await initORM(this.url);
    }
    return this.orm;
  }

  /** The ORM, made now if it was not (it then connects on its first query): for `ctx.em`. */
  get(): MikroORM {
    if (!this.orm) {
      const { initORMSync } = require('../db/orm.js') as typeof import('./orm.js');
      this.orm = initORMSync(this.url);
    }
    return this.orm;
  }

  async close(): Promise<void> {
    const orm = this.orm;
    this.orm = undefined;
    await orm?.close(true);
  }
}
