import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ConfigError, loadConfig, SECRET_PLACEHOLDER } from '../src/config.js';
import { runCli } from './support/cli.js';

/** What `openssl rand -hex 32` makes. */
const STRONG = '3f9c1e5a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e';
/** What `openssl rand -base64 32` makes. */
const STRONG_BASE64 = 'q7Jz0H+u9XcR2mYtLw4VbN8sKd1eGa5PfQo3Ci6Ux/E=';
const METRICS = 'Zr41mWq9xTe7LcVb2NsK8uHy';
const PRODUCTION = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://db.example:5432/app',
  CRON_SECRET_KEY: STRONG,
};

function refusal(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('loadConfig', () => {
  it('accepts a complete production environment and applies defaults', () => {
    const config = loadConfig(PRODUCTION);
    expect(config).to.include({
      env: 'production',
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: PRODUCTION.DATABASE_URL,
    });
    expect(config.secrets).to.deep.equal([STRONG]);
  });

  it('refuses production without DATABASE_URL', () => {
    expect(refusal({ ...PRODUCTION, DATABASE_URL: undefined })).to.match(
      /^DATABASE_URL is required in production/,
    );
  });

  it('refuses production without CRON_SECRET_KEY, or with an empty one', () => {
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: undefined })).to.match(/^CRON_SECRET_KEY is required/);
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: '  ' })).to.match(/^CRON_SECRET_KEY is required/);
  });

  it('refuses a CRON_SECRET_KEY shorter than 32 characters', () => {
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: 'x'.repeat(31) })).to.match(
      /^CRON_SECRET_KEY must be at least 32/,
    );
  });

  it('refuses the .env.sample placeholder as a secret', () => {
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: SECRET_PLACEHOLDER })).to.match(/placeholder/);
  });

  it('accepts secrets made by openssl rand -hex 32 and -base64 32, and by the generator', () => {
    for (let i = 0; i < 200; i++) {
      for (const made of [randomBytes(32).toString('hex'), randomBytes(32).toString('base64')]) {
        expect(loadConfig({ ...PRODUCTION, CRON_SECRET_KEY: made }).secrets).to.deep.equal([made]);
      }
    }
    expect(loadConfig({ ...PRODUCTION, CRON_SECRET_KEY: STRONG_BASE64 }).secrets).to.deep.equal([
      STRONG_BASE64,
    ]);
  });

  it('refuses low-entropy secrets of 32 characters or more, saying how to make one', () => {
    for (const weak of [
      'a'.repeat(32),
      'a'.repeat(24) + 'b'.repeat(24),
      'abababababababababababababababab',
      '0123456789'.repeat(4),
      'password'.repeat(5),
    ]) {
      expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: weak }), weak).to.match(
        /^CRON_SECRET_KEY is too easy to guess.*openssl rand -hex 32/,
      );
    }
  });

  it('refuses the placeholder with anything added, in either secret', () => {
    for (const name of ['CRON_SECRET_KEY', 'CRON_SECRET_KEY_PREVIOUS']) {
      for (const near of [
        `${SECRET_PLACEHOLDER}x`,
        `x${SECRET_PLACEHOLDER}`,
        SECRET_PLACEHOLDER.toUpperCase(),
      ]) {
        expect(refusal({ ...PRODUCTION, [name]: near }), near).to.match(new RegExp(`^${name} .*placeholder`));
      }
    }
  });

  it('refuses CRON_SECRET_KEY_PREVIOUS equal to the current secret', () => {
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY_PREVIOUS: STRONG })).to.match(
      /^CRON_SECRET_KEY_PREVIOUS is the same as CRON_SECRET_KEY/,
    );
  });

  it('refuses a METRICS_TOKEN equal to either secret, or of low entropy', () => {
    expect(refusal({ ...PRODUCTION, METRICS_TOKEN: STRONG })).to.match(
      /^METRICS_TOKEN is the same as CRON_SECRET_KEY/,
    );
    expect(
      refusal({ ...PRODUCTION, CRON_SECRET_KEY_PREVIOUS: STRONG_BASE64, METRICS_TOKEN: STRONG_BASE64 }),
    ).to.match(/^METRICS_TOKEN is the same as CRON_SECRET_KEY_PREVIOUS/);
    expect(refusal({ ...PRODUCTION, METRICS_TOKEN: 'm'.repeat(20) })).to.match(
      /^METRICS_TOKEN is too easy to guess/,
    );
  });

  it('refuses a STATUS_TOKEN that is short, a secret, the METRICS_TOKEN, or of low entropy', () => {
    expect(refusal({ ...PRODUCTION, STATUS_TOKEN: 'short' })).to.match(/^STATUS_TOKEN must be at least 16/);
    expect(refusal({ ...PRODUCTION, STATUS_TOKEN: STRONG })).to.match(
      /^STATUS_TOKEN is the same as CRON_SECRET_KEY: give the status page a token of its own/,
    );
    expect(
      refusal({ ...PRODUCTION, CRON_SECRET_KEY_PREVIOUS: STRONG_BASE64, STATUS_TOKEN: STRONG_BASE64 }),
    ).to.match(/^STATUS_TOKEN is the same as CRON_SECRET_KEY_PREVIOUS/);
    expect(refusal({ ...PRODUCTION, METRICS_TOKEN: METRICS, STATUS_TOKEN: METRICS })).to.match(
      /^STATUS_TOKEN is the same as METRICS_TOKEN/,
    );
    expect(refusal({ ...PRODUCTION, STATUS_TOKEN: 's'.repeat(20) })).to.match(
      /^STATUS_TOKEN is too easy to guess/,
    );
    expect(loadConfig({ ...PRODUCTION, STATUS_TOKEN: 'Qa83LmZt5Wc0Xv7Rb2Ny6Kd' }).http.statusToken).to.equal(
      'Qa83LmZt5Wc0Xv7Rb2Ny6Kd',
    );
  });

  it('names the variable when a value is malformed', () => {
    expect(refusal({ PORT: 'eighty' })).to.match(/^PORT /);
    expect(refusal({ PORT: '70000' })).to.match(/^PORT /);
    expect(refusal({ DATABASE_URL: 'mysql://x' })).to.match(/^DATABASE_URL must be a postgres:\/\/ URL/);
    expect(refusal({ LOG_LEVEL: 'loud' })).to.match(/^LOG_LEVEL /);
  });

  it('generates a secret outside production when none is set, and says it did', () => {
    const config = loadConfig({}, { generateSecret: () => 'g'.repeat(64) });
    expect(config.secrets).to.deep.equal(['g'.repeat(64)]);
    expect(config.secretGenerated).to.equal(true);
    expect(config.host).to.equal('127.0.0.1');
  });

  it('keeps the previous secret during a rotation', () => {
    const previous = STRONG_BASE64;
    expect(loadConfig({ ...PRODUCTION, CRON_SECRET_KEY_PREVIOUS: previous }).secrets).to.deep.equal([
      STRONG,
      previous,
    ]);
  });
});

describe('taskgate serve in production', () => {
  const cases: [string, Record<string, string | undefined>, RegExp][] = [
    ['no DATABASE_URL', { ...PRODUCTION, DATABASE_URL: undefined }, /DATABASE_URL is required in production/],
    ['no CRON_SECRET_KEY', { ...PRODUCTION, CRON_SECRET_KEY: undefined }, /CRON_SECRET_KEY is required/],
    [
      'a short CRON_SECRET_KEY',
      { ...PRODUCTION, CRON_SECRET_KEY: 'short' },
      /CRON_SECRET_KEY must be at least 32/,
    ],
    ['the placeholder secret', { ...PRODUCTION, CRON_SECRET_KEY: SECRET_PLACEHOLDER }, /placeholder/],
  ];
  for (const [what, env, reason] of cases) {
    it(`exits non-zero with a one-line reason when started with ${what}`, async () => {
      const result = await runCli(['serve'], env);
      expect(result.code).to.equal(1);
      expect(result.stdout).to.equal('');
      expect(result.stderr.trim().split('\n')).to.have.length(1);
      expect(result.stderr).to.match(reason);
    });
  }
});

describe('a bad setting on the command line', () => {
  it("stops with one line naming the variable when a task's own setting is malformed", async () => {
    const result = await runCli(['list'], { SIMPLEJWT_BLACKLIST_TABLE: 'x; drop table y' });
    expect(result.code).to.equal(1);
    expect(result.stderr.trim().split('\n')).to.have.length(1);
    expect(result.stderr).to.match(
      /^taskgate: SIMPLEJWT_BLACKLIST_TABLE must be a plain SQL table name \(a setting of task flushexpiredtokens_daily\)/,
    );
  });

  it('is CONFIG_INVALID in --json, naming the variable, never INTERNAL', async () => {
    const result = await runCli(['runs', '--json'], { PORT: 'eighty' });
    expect(result.code).to.equal(1);
    const answer = JSON.parse(result.stdout);
    expect(answer).to.include({ status: 'error', code: 'CONFIG_INVALID' });
    expect(answer.message).to.match(/^PORT /);
  });
});

describe('loadConfig: the HTTP settings', () => {
  it('defaults to trusting no proxy, a 25 s synchronous wait, 300 s signatures and 10 failures per 900 s', () => {
    expect(loadConfig(PRODUCTION).http).to.deep.equal({
      trustProxyHops: 0,
      metricsToken: undefined,
      statusToken: undefined,
      syncWaitMs: 25_000,
      signatureToleranceSeconds: 300,
      authFailureLimit: 10,
      authFailureWindowSeconds: 900,
      allowGetTriggers: false,
      qstash: null,
    });
  });

  it('reads each HTTP variable', () => {
    const config = loadConfig({
      ...PRODUCTION,
      TRUST_PROXY: '2',
      METRICS_TOKEN: METRICS,
      SYNC_WAIT_MS: '0',
      SIGNATURE_TOLERANCE_SECONDS: '60',
      AUTH_FAILURE_LIMIT: '3',
      AUTH_FAILURE_WINDOW_SECONDS: '30',
      ALLOW_GET_TRIGGERS: 'true',
      QSTASH_CURRENT_SIGNING_KEY: 'sig_current_key',
      QSTASH_NEXT_SIGNING_KEY: 'sig_next_key',
      PUBLIC_URL: 'https://tg.example.com/',
    });
    expect(config.http).to.deep.equal({
      trustProxyHops: 2,
      metricsToken: METRICS,
      statusToken: undefined,
      syncWaitMs: 0,
      signatureToleranceSeconds: 60,
      authFailureLimit: 3,
      authFailureWindowSeconds: 30,
      allowGetTriggers: true,
      qstash: {
        currentSigningKey: 'sig_current_key',
        nextSigningKey: 'sig_next_key',
        publicUrl: 'https://tg.example.com',
      },
    });
  });

  it('reads TRUST_PROXY=false as no proxy and refuses TRUST_PROXY=true, which would trust a forged header', () => {
    expect(loadConfig({ ...PRODUCTION, TRUST_PROXY: 'false' }).http.trustProxyHops).to.equal(0);
    expect(refusal({ ...PRODUCTION, TRUST_PROXY: 'true' })).to.match(
      /^TRUST_PROXY must be the number of proxies/,
    );
    expect(refusal({ ...PRODUCTION, TRUST_PROXY: '11' })).to.match(/^TRUST_PROXY /);
  });

  it('refuses a short METRICS_TOKEN and out-of-range HTTP numbers, naming the variable', () => {
    expect(refusal({ ...PRODUCTION, METRICS_TOKEN: 'short' })).to.match(/^METRICS_TOKEN must be at least 16/);
    expect(refusal({ ...PRODUCTION, SIGNATURE_TOLERANCE_SECONDS: '0' })).to.match(
      /^SIGNATURE_TOLERANCE_SECONDS /,
    );
    expect(refusal({ ...PRODUCTION, AUTH_FAILURE_LIMIT: '0' })).to.match(/^AUTH_FAILURE_LIMIT /);
    expect(refusal({ ...PRODUCTION, SYNC_WAIT_MS: '-1' })).to.match(/^SYNC_WAIT_MS /);
  });

  it('reads ALLOW_GET_TRIGGERS as true or false and refuses anything else', () => {
    for (const [value, expected] of [
      ['true', true],
      ['1', true],
      ['yes', true],
      ['false', false],
      ['0', false],
      ['OFF', false],
    ] as const) {
      expect(loadConfig({ ...PRODUCTION, ALLOW_GET_TRIGGERS: value }).http.allowGetTriggers, value).to.equal(
        expected,
      );
    }
    expect(refusal({ ...PRODUCTION, ALLOW_GET_TRIGGERS: 'maybe' })).to.match(
      /^ALLOW_GET_TRIGGERS must be true or false/,
    );
  });

  it('wants both QStash signing keys and the public address, and takes Render’s address when PUBLIC_URL is unset', () => {
    const keys = { QSTASH_CURRENT_SIGNING_KEY: 'sig_current_key', QSTASH_NEXT_SIGNING_KEY: 'sig_next_key' };
    expect(
      refusal({
        ...PRODUCTION,
        QSTASH_CURRENT_SIGNING_KEY: 'sig_current_key',
        PUBLIC_URL: 'https://x.example',
      }),
    ).to.match(/^QSTASH_NEXT_SIGNING_KEY is unset/);
    expect(
      refusal({ ...PRODUCTION, QSTASH_NEXT_SIGNING_KEY: 'sig_next_key', PUBLIC_URL: 'https://x.example' }),
    ).to.match(/^QSTASH_CURRENT_SIGNING_KEY is unset/);
    expect(refusal({ ...PRODUCTION, ...keys })).to.match(/^PUBLIC_URL is required with QStash signing keys/);
    expect(
      refusal({ ...PRODUCTION, ...keys, QSTASH_NEXT_SIGNING_KEY: STRONG, PUBLIC_URL: 'https://x.example' }),
    ).to.match(/^QSTASH_NEXT_SIGNING_KEY is the same as CRON_SECRET_KEY/);
    expect(refusal({ ...PRODUCTION, ...keys, PUBLIC_URL: 'ftp://x.example' })).to.match(/^PUBLIC_URL /);
    const render = loadConfig({ ...PRODUCTION, ...keys, RENDER_EXTERNAL_URL: 'https://app.onrender.com' });
    expect(render.http.qstash?.publicUrl).to.equal('https://app.onrender.com');
  });
});
