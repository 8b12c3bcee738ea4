import path from 'node:path';
import type { RegisteredTask } from '../core/registry.js';
import { PROJECT_FILE } from '../projectFile.js';
import { VERSION } from '../version.js';
import { PROJECT_COMPILER_OPTIONS } from './build.js';

/**
 * The files `taskgate init` writes, as pure functions of what was chosen. Each is short and says
 * what to do with it; the manual (docs/ of taskgate's repository) has the rest.
 */
export interface ScaffoldInput {
  /** The project's folder name, its package name. */
  name: string;
  /** The built-in tasks chosen, as registered (for their schedules, descriptions and settings). */
  tasks: RegisteredTask[];
  /** The version range (or tarball) the project depends on. */
  taskgateSpec: string;
  /** The project's folder relative to the repository's root ('' when it is the root). */
  fromRoot: string;
  /** The workflow file relative to the project's folder. */
  workflowPath: string;
}

const TYPESCRIPT_VERSION = '5.9.3';
const NODE_TYPES_VERSION = '^24.0.0';

export function packageJson(input: ScaffoldInput): string {
  const pkg = {
    name: input.name,
    private: true,
    description: 'Scheduled maintenance tasks, run by taskgate',
    type: 'module',
    engines: { node: '>=20.19' },
    scripts: {
      start: 'taskgate serve',
      build: 'taskgate build',
      doctor: 'taskgate doctor',
    },
    dependencies: { taskgate: input.taskgateSpec },
    devDependencies: { '@types/node': NODE_TYPES_VERSION, typescript: TYPESCRIPT_VERSION },
  };
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

export function projectConfig(input: ScaffoldInput): string {
  const config = {
    $schema: './node_modules/taskgate/dist/taskgate.config.schema.json',
    tasks: Object.fromEntries(input.tasks.map((task) => [task.definition.name, {}])),
    ...(input.workflowPath !== '.github/workflows/taskgate.yml' ? { workflow: input.workflowPath } : {}),
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

export function tsconfig(): string {
  const config = { compilerOptions: PROJECT_COMPILER_OPTIONS, include: ['tasks'] };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** A commented example: the `_` keeps it from being registered until it is copied under a name. */
export const EXAMPLE_TASK = `// An example task. Files in tasks/ whose names start with _ are not registered: copy this one to
// tasks/<name>.ts, give it that name, and run \`npx taskgate run <name> --dry-run\` to try it.
import { defineTask, z } from 'taskgate';

export default defineTask({
  name: 'example_hourly', // equal to the file name: ^[a-z0-9_]+$
  description: 'Deletes the rows of app_event older than the retention period.',
  schedule: '5 * * * *', // 5-field cron (UTC), or null for a task that runs only on demand
  params: z.strictObject({ retentionDays: z.number().int().min(1).default(30) }),
  async run({ params, db, dryRun, now }) {
    // \`now\` is the database clock when the run started. A task throws to fail; what it returns
    // is recorded with the run. A long task stops between batches when \`signal\` fires.
    const cutoff = new Date(now.getTime() - params.retentionDays * 86_400_000);
    if (dryRun) {
      const { rows } = await db.query<{ n: number }>(
        'select count(*)::int as n from app_event where created_at < $1',
        [cutoff],
      );
      return { wouldDelete: rows[0]?.n ?? 0 };
    }
    const { rowCount } = await db.query('delete from app_event where created_at < $1', [cutoff]);
    return { deleted: rowCount ?? 0 };
  },
});
`;

export function gitignore(): string {
  return ['node_modules/', '.env', '.taskgate/', '.data/', ''].join('\n');
}

/** The variables a deploy sets, and each chosen task's settings with their defaults. */
export function envSample(input: ScaffoldInput): string {
  const lines = [
    '# Copy to .env for local use (git-ignored); the environment wins over it. Every variable is',
    "# listed in taskgate's docs/configuration.md.",
    '',
    '# The database the tasks work on (your Django database). Unset outside production: an embedded',
    '# PostgreSQL is started for trying taskgate out.',
    '# DATABASE_URL=postgres://user:password@host:5432/app',
    '',
    '# The shared secret a scheduler sends (X-Cron-Secret or Authorization: Bearer). Make one into',
    '# .env with: printf \'CRON_SECRET_KEY=%s\\n\' "$(openssl rand -hex 32)" >> .env',
    '# CRON_SECRET_KEY=',
    '',
    '# production refuses to start without DATABASE_URL and a strong CRON_SECRET_KEY.',
    '# NODE_ENV=production',
  ];
  for (const task of input.tasks) {
    const shape = (task.definition.settings as { shape?: Record<string, unknown> } | undefined)?.shape;
    if (!shape || Object.keys(shape).length === 0) continue;
    lines.push('', `# Settings of ${task.definition.name} (defaults shown):`);
    for (const [name, value] of Object.entries(task.settings)) lines.push(`# ${name}=${String(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A Render Blueprint for the project: one free web service, the database's URL asked for. */
export function renderYaml(input: ScaffoldInput): string {
  const rootDir = input.fromRoot ? `    rootDir: ${input.fromRoot}\n` : '';
  return `# Render Blueprint: Render dashboard > New > Blueprint > this repository. Render asks for
# DATABASE_URL (your application's PostgreSQL URL) and generates CRON_SECRET_KEY.
services:
  - type: web
    name: ${input.name}
    runtime: node
    plan: free
    # The region of your database: Render's internal database URLs work only within one region.
    region: oregon
${rootDir}    # NODE_ENV=production is set at build time too: --include=dev keeps TypeScript for the build.
    buildCommand: npm ci --include=dev --omit=optional && npm run build
    # node itself receives Render's SIGTERM (npm would not pass it on).
    startCommand: node_modules/.bin/taskgate serve
    healthCheckPath: /healthz
    envVars:
      - key: NODE_ENV
        value: production
      - key: DATABASE_URL
        sync: false
      - key: CRON_SECRET_KEY
        generateValue: true
      # Render's proxies append the caller's address to X-Forwarded-For: trust those two hops.
      - key: TRUST_PROXY
        value: "2"
`;
}

export function dependabotYaml(input: ScaffoldInput): string {
  return `# Keeps taskgate (and the rest of ${input.name}'s dependencies) up to date. After taskgate is
# bumped, \`npx taskgate workflow --check\` (and doctor) say whether the scheduler workflow needs
# regenerating: \`npx taskgate workflow --write\`.
version: 2
updates:
  - package-ecosystem: npm
    directory: /${input.fromRoot}
    schedule:
      interval: weekly
`;
}

/**
 * A production image of the project: the chosen built-ins and the project's own tasks, compiled;
 * the final stage holds the production packages, the config and the tasks, and runs no npm.
 */
export function dockerfile(): string {
  return `# The project's image: taskgate with the built-in tasks ${PROJECT_FILE} chooses and this project's
# own tasks, type-checked and compiled by \`taskgate build\`. Runs as the node user; node is PID 1.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=optional --no-audit --no-fund
COPY . .
RUN npm run build && mkdir -p tasks .taskgate

# The production packages, installed apart: this layer is reused while only the tasks change, and
# the final stage runs no npm (no npm cache or logs in it, no root-owned compile cache in /tmp).
FROM node:24-bookworm-slim AS packages
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# Docker sends SIGKILL 10 s after SIGTERM; taskgate's shutdown takes at most SHUTDOWN_GRACE_MS
# + 8 s, so a run in flight gets 1 s before it is interrupted (and recorded so). For longer, raise
# both: docker run --stop-timeout 30 -e SHUTDOWN_GRACE_MS=20000.
ENV SHUTDOWN_GRACE_MS=1000
# \`docker exec <container> taskgate doctor\`, as the node user.
ENV PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
COPY --from=packages /app/node_modules ./node_modules
COPY package.json ${PROJECT_FILE} ./
COPY --from=build /app/tasks ./tasks
COPY --from=build /app/.taskgate ./.taskgate
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \\
  CMD ["node", "-e", "fetch(\`http://127.0.0.1:\${process.env.PORT || 3000}/healthz\`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node_modules/.bin/taskgate", "serve"]
`;
}

export function dockerignore(): string {
  return ['node_modules', '.env', '.taskgate', '.data', ''].join('\n');
}

export function readme(input: ScaffoldInput, describe: (task: RegisteredTask) => string): string {
  const rows = input.tasks.map(
    (task) =>
      `| \`${task.definition.name}\` | ${task.schedule ? `\`${task.schedule.expression}\`` : 'on demand'} | ${describe(task)} |`,
  );
  const here = input.fromRoot ? `cd ${input.fromRoot}\n` : '';
  const workflow = path.posix.normalize(path.posix.join(input.fromRoot, input.workflowPath));
  return `# ${input.name}

Scheduled maintenance for this application, run by [taskgate](https://www.npmjs.com/package/taskgate)
${VERSION}: a small service that runs these tasks against the application's PostgreSQL database when a
scheduler calls it, and records every run.

| task | schedule (UTC) | what it does |
| --- | --- | --- |
${rows.join('\n') || '| (none yet) | | |'}

## Try it

\`\`\`sh
${here}npm install
DATABASE_URL=postgres://… npx taskgate doctor
DATABASE_URL=postgres://… npx taskgate run <task> --dry-run
\`\`\`

A dry run reports what a run would delete and changes nothing but taskgate's own run history (its
\`taskgate\` schema, made on first use). Without \`DATABASE_URL\`, taskgate starts an embedded
PostgreSQL for trying things out.

## Deploy and schedule

1. Commit and push this folder${input.fromRoot ? ', `render.yaml`' : ''} and \`${workflow}\`.
2. Render: **New > Blueprint**, pick this repository, paste \`DATABASE_URL\` (the application's
   database), **Apply**. Render generates \`CRON_SECRET_KEY\`.
3. GitHub (\`gh\` in this repository): \`gh secret set CRON_SECRET_KEY\` (paste the value from the Render
   service's **Environment**) and \`gh variable set TASKGATE_URL --body https://<service>.onrender.com\`.
4. GitHub Actions then calls taskgate on each task's schedule (\`${workflow}\`); run one now from
   the **Actions** tab (**taskgate > Run workflow**).

## Change it

- Choose built-in tasks, or override a schedule, params or settings: \`${PROJECT_FILE}\`.
- Add a task of your own: copy \`tasks/_example.ts\` to \`tasks/<name>.ts\`.
- After either, and after upgrading taskgate (\`npm install taskgate@latest\`):
  \`npx taskgate workflow --write\` and commit the workflow.
- \`npx taskgate --help\` lists every command; \`npx taskgate doctor\` checks a deploy.
`;
}
