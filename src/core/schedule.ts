import { Cron } from 'croner';

/**
 * A task's schedule: a 5-field cron expression in UTC, in the subset GitHub Actions accepts
 * (numbers, names, `*`, `,`, `-`, `/`; no seconds, no `L`/`W`/`#`, no `@daily`).
 */
export class Schedule {
  readonly expression: string;
  private readonly cron: Cron;

  constructor(expression: string) {
    const fields = expression.trim().split(/\s+/);
    if (fields.length !== 5)
      throw new Error(`"${expression}" must have 5 fields (minute hour day month weekday)`);
    if (!fields.every((field) => /^[0-9A-Za-z*,/-]+$/.test(field))) {
      throw new Error(`"${expression}" uses characters GitHub Actions cron does not accept`);
    }
    try {
      this.cron = new Cron(fields.join(' '), { timezone: 'UTC', mode: '5-part', paused: true });
    } catch (error) {
      throw new Error(`"${expression}" is not a valid cron expression: ${(error as Error).message}`);
    }
    this.expression = fields.join(' ');
  }

  /**
   * "At 00:00" for `0 0 * * *`. cronstrue is loaded on first use: `serve` and `run` start without
   * it, and only `list`, `status` and GET /cron say schedules in words.
   */
  async describe(): Promise<string> {
    const { default: cronstrue } = await import('cronstrue');
    return `${cronstrue.toString(this.expression, { use24HourTimeFormat: true, verbose: false })} (UTC)`;
  }

  /** The first scheduled moment strictly after `from`. */
  next(from: Date): Date | null {
    return this.cron.nextRun(from);
  }

  /** The last scheduled moment at or before `from`. */
  previous(from: Date): Date | null {
    return this.cron.previousRuns(1, new Date(from.getTime() + 1000))[0] ?? null;
  }
}
