import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { z } from 'zod';
import {
  COMMAND,
  CONFIGURATION_PAGE,
  generatedPage,
  taskSettingsTable,
  variablesTable,
} from '../scripts/docs-config.js';
import { CONFIG_VARIABLES, configSchema } from '../src/config.js';

describe('docs/configuration.md, generated from the configuration schema', () => {
  it(`is what ${COMMAND} writes from src/config.ts and the tasks' settings`, async () => {
    const page = await readFile(CONFIGURATION_PAGE, 'utf8');
    const expected = await generatedPage(page);
    expect(page === expected, `docs/configuration.md is out of date: run ${COMMAND} and commit it`).to.equal(
      true,
    );
  });

  it('documents every variable loadConfig reads, and each task setting, in a row of its own', async () => {
    const rows = variablesTable().split('\n').slice(2);
    const names = rows.map((row) => /^\| `([A-Z0-9_<>]+)`/.exec(row)?.[1]);
    expect(names).to.deep.equal([...CONFIG_VARIABLES, 'HEARTBEAT_URL_<TASK>']);
    expect(await taskSettingsTable()).to.include('| `SIMPLEJWT_OUTSTANDING_TABLE` |');
  });

  it('shows the default the schema gives an unset variable', () => {
    const row = variablesTable()
      .split('\n')
      .find((line) => line.startsWith('| `SYNC_WAIT_MS` |'));
    expect(row).to.match(/^\| `SYNC_WAIT_MS` \| `25000` \| .+ \|$/);
  });

  it('refuses to write a table while a variable has no description, naming it', async () => {
    const shape = configSchema.shape as Record<string, z.ZodType>;
    shape.UNDESCRIBED_VARIABLE = z.string().optional();
    try {
      expect(() => variablesTable()).to.throw(
        'UNDESCRIBED_VARIABLE has no description: give it one with .describe() in src/config.ts',
      );
    } finally {
      delete shape.UNDESCRIBED_VARIABLE;
    }
  });
});
