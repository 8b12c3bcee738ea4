/**
 * Writes each pack task's DDL module (tasks/_<app>/ddl.ts) from a database this Django project
 * has migrated: what `pg_dump --schema-only` prints for the app's tables, as statements that
 * create them unless they exist, foreign keys to Django's own tables (auth_user,
 * django_content_type) only where those exist. test/django-ddl.test.ts checks the result against
 * a fresh `manage.py migrate`, so run this again when Debian's packages change:
 *
 *   DJANGO_DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch node --import tsx test/django/write-ddl.ts
 *
 * (the database must exist and be empty: this runs `manage.py migrate` on it).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const url = process.env.DJANGO_DATABASE_URL;
if (!url) throw new Error('DJANGO_DATABASE_URL names the scratch database');

/** Each module: its folder, its constant, where its tables come from, and the tables. */
export const DDL_MODULES = [
  {
    dir: '_oauth2',
    name: 'OAUTH2_DDL',
    source: 'django-oauth-toolkit 1.7.0',
    tables: [
      'oauth2_provider_application',
      'oauth2_provider_idtoken',
      'oauth2_provider_accesstoken',
      'oauth2_provider_refreshtoken',
      'oauth2_provider_grant',
    ],
  },
  {
    dir: '_axes',
    name: 'AXES_DDL',
    source: 'django-axes 5.39.0',
    tables: ['axes_accessattempt', 'axes_accesslog', 'axes_accessfailurelog'],
  },
  {
    dir: '_reversion',
    name: 'REVERSION_DDL',
    source: 'django-reversion 5.0.4',
    tables: ['reversion_revision', 'reversion_version'],
  },
  {
    dir: '_celery',
    name: 'CELERY_RESULTS_DDL',
    source: 'django-celery-results 2.4.0',
    tables: [
      'django_celery_results_taskresult',
      'django_celery_results_groupresult',
      'django_celery_results_chordcounter',
    ],
  },
  {
    dir: '_knox',
    name: 'KNOX_DDL',
    source: "django-rest-knox 5.0's migrations 0001 to 0009",
    tables: ['knox_authtoken'],
  },
  {
    dir: '_passwordreset',
    name: 'PASSWORDRESET_DDL',
    source: "django-rest-passwordreset 1.6's migrations 0001 to 0005",
    tables: ['django_rest_passwordreset_resetpasswordtoken'],
  },
  {
    dir: '_history',
    name: 'EXAMPLE_HISTORY_DDL',
    source: 'django-simple-history 3.1.1, for a model `Item(name, shelf)` of an app `inventory`',
    tables: ['inventory_historicalitem'],
  },
] as const;

/** Tables of Django itself that the apps' foreign keys point at: absent from taskgate's own database. */
const DJANGO_TABLES = ['auth_user', 'django_content_type'];

function statementsOf(dump: string): string[] {
  return dump
    .split(/;\n/)
    .map((s) =>
      s
        .split('\n')
        .filter((line) => !line.startsWith('--') && !line.startsWith('\\') && line.trim() !== '')
        .join('\n')
        .trim(),
    )
    .filter((s) => s && !/^(SET|SELECT) /.test(s))
    .map((s) =>
      s
        .replaceAll('public.', '')
        .replace(/^ALTER TABLE ONLY /, 'ALTER TABLE ')
        .replace(/\n\s+ADD CONSTRAINT/, ' ADD CONSTRAINT'),
    );
}

const indent = (text: string, by: string) =>
  text
    .split('\n')
    .map((line) => by + line)
    .join('\n');

execFileSync('/usr/bin/python3', ['manage.py', 'migrate', '-v', '0'], {
  cwd: fileURLToPath(new URL('./', import.meta.url)),
  env: { ...process.env, DJANGO_DATABASE_URL: url },
  stdio: 'inherit',
});
for (const module of DDL_MODULES) {
  const dump = execFileSync(
    'pg_dump',
    ['--schema-only', '--no-owner', '--no-privileges', ...module.tables.flatMap((t) => ['-t', t]), url],
    { encoding: 'utf8' },
  );
  const own: string[] = [];
  const guarded = new Map<string, string[]>();
  for (const statement of statementsOf(dump)) {
    const target = DJANGO_TABLES.find((t) => statement.includes(` REFERENCES ${t}(`));
    if (target) guarded.set(target, [...(guarded.get(target) ?? []), statement]);
    else own.push(statement);
  }
  const body = [
    ...own.map((s) => `${indent(s, '    ')};`),
    ...[...guarded].map(
      ([table, list]) =>
        `    if to_regclass('${table}') is not null then\n${list.map((s) => `${indent(s, '      ')};`).join('\n')}\n    end if;`,
    ),
  ].join('\n');
  const sql = `do $$\nbegin\n  if to_regclass('${module.tables[0]}') is null then\n${body}\n  end if;\nend $$;`;
  const text = `// Written by test/django/write-ddl.ts from a database migrated by ${module.source}
// (pg_dump --schema-only); test/django-ddl.test.ts checks it against a fresh migrate. Do not edit.

/**
 * ${module.tables.map((t) => `"${t}"`).join(', ')} as Django's migrations make them on PostgreSQL,
 * unless ${module.tables.length > 1 ? 'they exist' : 'it exists'}; the foreign keys to Django's own tables only where those exist.
 * Used where taskgate owns the whole database (the embedded development database, the tests).
 */
export const ${module.name} = ${JSON.stringify(sql).replace(/^"|"$/g, '`').replaceAll('\\n', '\n').replaceAll('\\"', '"').replaceAll('$', '$')};
`;
  writeFileSync(`${ROOT}tasks/${module.dir}/ddl.ts`, text);
  console.log(`tasks/${module.dir}/ddl.ts: ${module.tables.length} tables`);
}
