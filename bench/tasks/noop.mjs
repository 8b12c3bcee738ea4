// A task that returns at once, in plain JavaScript so that the compiled server loads it:
// `npm run bench:http` measures what triggering costs, not what a task does.
import { z } from 'zod';

export default {
  name: 'noop',
  description: 'Does nothing.',
  schedule: null,
  params: z.strictObject({}),
  async run() {
    return null;
  },
};
