import type { MigrationObject } from '@mikro-orm/core';
import { Migration0001TaskRun } from './Migration0001TaskRun.js';
import { Migration0002Signatures } from './Migration0002Signatures.js';
import { Migration0003Incidents } from './Migration0003Incidents.js';
import { Migration0004Leases } from './Migration0004Leases.js';
import { Migration0005OperatorControls } from './Migration0005OperatorControls.js';
import { Migration0006PauseEvents } from './Migration0006PauseEvents.js';
import { Migration0007Slots } from './Migration0007Slots.js';

/** Every migration, in order. A static list works the same under tsx and from compiled JavaScript. */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration0001TaskRun', class: Migration0001TaskRun },
  { name: 'Migration0002Signatures', class: Migration0002Signatures },
  { name: 'Migration0003Incidents', class: Migration0003Incidents },
  { name: 'Migration0004Leases', class: Migration0004Leases },
  { name: 'Migration0005OperatorControls', class: Migration0005OperatorControls },
  { name: 'Migration0006PauseEvents', class: Migration0006PauseEvents },
  { name: 'Migration0007Slots', class: Migration0007Slots },
];
