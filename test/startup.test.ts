import { expect } from 'chai';
import { z } from 'zod';
import { Registry, validateTask } from '../src/core/registry.js';
import { Runner } from '../src/core/runner.js';
import { LazyOrm } from '../src/db/lazyOrm.js';
import { migrationsList } from '../src/db/migrations/index.js';
import { MIGRATION_NAMES, pendingMigrations } from '../src/db/migrations/pending.js';
import { createLogger } from '../src/logger.js';
import { openDatabase } from '../src/service.js';
import { defineTask } from '../src/task.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testConfig } from './support/runner.js';

const silent = createLogger({ level: 'silent', pretty: false });

describe('start-up', () => {
  let db: TestDatabase;
  afterEach(async () => db?.drop());

  it('knows the migrations by name without loading them: the same list, in the same order', () => {
    expect(MIGRATION_NAMES).to.deep.equal(migrationsList.map((m) => m.name));
  });

  it('finds every migration pending on a database never migrated, and none on a migrated one', async () => {
    db = await createTestDatabase({ migrated: false });
    expect(await pendingMigrations(db.sql)).to.deep.equal([...MIGRATION_NAMES]);
    const migrated = await createTestDatabase({ migrated: true });
    try {
      expect(await pendingMigrations(migrated.sql)).to.deep.equal([]);
    } finally {
      await migrated.drop();
    }
  });

  it('opens an up-to-date database without loading MikroORM', async () => {
    db = await createTestDatabase({ migrated: true });
    const database = await openDatabase(testConfig(db), silent);
    try {
      expect(database.orm.loaded).to.equal(false);
      expect(
        (await database.db.query('select count(*)::int as n from taskgate.task_run')).rows,
      ).to.deep.equal([{ n: 0 }]);
    } finally {
      await database.close();
    }
  });

  it('applies pending migrations when it opens a database that has some, for serve and migrate', async () => {
    db = await createTestDatabase({ migrated: false });
    const database = await openDatabase(testConfig(db), silent, { migrate: true });
    try {
      expect(await pendingMigrations(database.db)).to.deep.equal([]);
    } finally {
      await database.close();
    }
  });

  describe('ctx.em', () => {
    const withEm = defineTask({
      name: 'with_em',
      description: 'Counts runs through the EntityManager.',
      schedule: null,
      params: z.strictObject({}),
      async run({ em }) {
        const rows = await em!
          .getConnection()
          .execute<{ n: number }[]>('select count(*)::int as n from taskgate.task_run');
        return { runs: rows[0]!.n };
      },
    });
    const withoutEm = defineTask({
      name: 'without_em',
      description: 'Uses ctx.db only.',
      schedule: null,
      params: z.strictObject({}),
      async run({ db }) {
        return (await db.query('select 1 as one')).rows[0]!.one as number;
      },
    });

    it('is made on first read, from an ORM loaded then, and works; a task that never reads it loads nothing', async () => {
      db = await createTestDatabase({ migrated: true });
      const orm = new LazyOrm(db.url);
      const runner = new Runner({
        db: db.sql,
        orm: () => orm.get(),
        registry: new Registry([
          validateTask('with_em.ts', withEm),
          validateTask('without_em.ts', withoutEm),
        ]),
        logger: silent,
        config: testConfig(db),
      });
      try {
        const plain = await runner.run({ task: 'without_em', params: {}, trigger: 'test' });
        expect(plain.status).to.equal('succeeded');
        expect(orm.loaded).to.equal(false);
        const run = await runner.run({ task: 'with_em', params: {}, trigger: 'test' });
        expect(run.status, run.error ?? '').to.equal('succeeded');
        // The run itself is recorded 'running' while it counts, beside the one before it.
        expect(run.result).to.deep.equal({ runs: 2 });
        expect(orm.loaded).to.equal(true);
      } finally {
        await runner.close(0);
        await orm.close();
      }
    });
  });
});
