import { z } from 'zod';
import { countRunsBefore, deleteRunsBefore } from '../src/core/runs.js';
import { defineTask } from '../src/task.js';

const DAY_MS = 86_400_000;

export default defineTask({
  name: 'prunetaskruns_weekly',
  description: "Deletes taskgate's own run history older than the retention period, in batches.",
  schedule: '30 3 * * 0',
  params: z.strictObject({
    retentionDays: z.number().int().min(1).max(36_500).default(90),
    batchSize: z.number().int().min(1).max(100_000).default(5_000),
  }),
  async run({ params, db, now, signal, dryRun }) {
    const before = new Date(now.getTime() - params.retentionDays * DAY_MS);
    if (dryRun) {
      const wouldDelete = await countRunsBefore(db, before);
      return { before: before.toISOString(), wouldDelete, deleted: 0, batches: 0 };
    }
    let deleted = 0;
    let batches = 0;
    while (!signal.aborted) {
      const n = await deleteRunsBefore(db, before, params.batchSize);
      if (n === 0) break;
      deleted += n;
      batches += 1;
      if (n < params.batchSize) break;
    }
    return { before: before.toISOString(), deleted, batches };
  },
});
