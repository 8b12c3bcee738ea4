// A daily task that returns at once: bench/slots.ts measures what firing a slot costs, and what the
// internal clock costs while nothing is due.
import { z } from 'zod';

export default {
  name: 'slotted',
  description: 'Does nothing, daily.',
  schedule: '0 3 * * *',
  params: z.strictObject({}),
  async run() {
    return null;
  },
};
