import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { ConfigError, loadConfig, SECRET_PLACEHOLDER } from '../src/config.js';
import { QSTASH_DEVELOPMENT_KEYS } from '../src/secretStrength.js';
import { ROOT, runCli, runProcess } from './support/cli.js';

/** What `openssl rand -hex 32` makes. */
const STRONG = '3f9c1e5a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e';
/** What `openssl rand -base64 32` makes. */
const STRONG_BASE64 = 'q7Jz0H+u9XcR2mYtLw4VbN8sKd1eGa5PfQo3Ci6Ux/E=';
const METRICS = 'Zr41mWq9xTe7LcVb2NsK8uHy';
/** QStash signing keys as the Upstash console shows them: `sig_` and 28 random base58 characters. */
const QSTASH_KEYS = {
  QSTASH_CURRENT_SIGNING_KEY: 'sig_AyJ53ETMCG21Z1MULCXUBurzyan5',
  QSTASH_NEXT_SIGNING_KEY: 'sig_9fvUqKToYgtuzVurRf64M2GG784A',
};
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const upstashKey = () => `sig_${Array.from({ length: 28 }, () => BASE58[randomInt(BASE58.length)]).join('')}`;
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

  it("judges a secret by its bits, not its length: 22 characters of Python's token_urlsafe(16) are taken", () => {
    for (let i = 0; i < 1000; i++) {
      const made = randomBytes(16).toString('base64url');
      expect(made).to.have.length(22);
      expect(loadConfig({ ...PRODUCTION, CRON_SECRET_KEY: made }).secrets).to.deep.equal([made]);
    }
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: 'x'.repeat(31) })).to.match(
      /^CRON_SECRET_KEY is too easy to guess: a repeat/,
    );
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: 'q8ZbT1x_Vn3Kd7Wc' })).to.equal(
      'CRON_SECRET_KEY is too easy to guess: 16 characters of base64url hold about 96 random bits, 112 needed (make one with: openssl rand -hex 32)',
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

  it('refuses repetitive secrets of 32 characters or more, saying how to make one', () => {
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

  it('refuses a METRICS_TOKEN equal to either secret, or guessable', () => {
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

  it('refuses a STATUS_TOKEN that is short, a secret, the METRICS_TOKEN, or guessable', () => {
    expect(refusal({ ...PRODUCTION, STATUS_TOKEN: 'short' })).to.match(/^STATUS_TOKEN is too easy to guess/);
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

  it('refuses any credential equal to another one, naming both: the QStash keys and the status token too', () => {
    const credentials = [
      'CRON_SECRET_KEY',
      'CRON_SECRET_KEY_PREVIOUS',
      'METRICS_TOKEN',
      'STATUS_TOKEN',
      'QSTASH_CURRENT_SIGNING_KEY',
      'QSTASH_NEXT_SIGNING_KEY',
    ];
    // Each its own random value, valid for every one of them (QStash keys included).
    const own = () => Object.fromEntries(credentials.map((name) => [name, upstashKey()]));
    const base = { ...PRODUCTION, PUBLIC_URL: 'https://x.example' };
    expect(() => loadConfig({ ...base, ...own() })).not.to.throw();
    credentials.forEach((later, i) => {
      for (const earlier of credentials.slice(0, i)) {
        const env: Record<string, string> = { ...base, ...own() };
        env[later] = env[earlier]!;
        expect(refusal(env), `${later} = ${earlier}`).to.match(
          new RegExp(`^${later} is the same as ${earlier}: `),
        );
      }
    });
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

/** Random secrets as the docs' commands and common generators make them. */
const GENERATORS: Record<string, () => string> = {
  'openssl rand -hex 16': () => randomBytes(16).toString('hex'),
  'openssl rand -hex 32': () => randomBytes(32).toString('hex'),
  'openssl rand -base64 32': () => randomBytes(32).toString('base64'),
  'crypto.randomBytes(32) as hex, upper case': () => randomBytes(32).toString('hex').toUpperCase(),
  'crypto.randomBytes(32) as base64url': () => randomBytes(32).toString('base64url'),
  'crypto.randomBytes(24) as base64': () => randomBytes(24).toString('base64'),
  "Python's secrets.token_urlsafe(16)": () => randomBytes(16).toString('base64url'),
  'one UUIDv4': () => randomUUID(),
  'two UUIDs joined': () => randomUUID() + randomUUID(),
  'two UUIDs joined by a separator': () => `${randomUUID()}_${randomUUID()}`,
};

/** Guessable secrets of 32 characters or more that the old entropy estimate let through. */
const GUESSABLE = [
  'qwertyuiopasdfghjklzxcvbnm123456',
  'abcdefghijklmnopqrstuvwxyz012345',
  '0123456789abcdefghijklmnopqrstuv',
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef',
  'my-super-secret-cron-key-for-production-2024',
  'thequickbrownfoxjumpsoverthelazydog',
  'MySuperSecretCronKeyForProd2024!',
  'ThisIsMyVeryLongAndSecureSecretKey',
  'correct-horse-battery-staple-2024',
];

describe('loadConfig: how guessable a secret is', () => {
  it('refuses secrets made of patterns or words, naming the variable, what it found and how to make one', function () {
    // Thousands of secrets judged (and zxcvbn loaded): CPU-bound, slow on a busy machine.
    this.timeout(120_000);
    for (const name of ['CRON_SECRET_KEY', 'CRON_SECRET_KEY_PREVIOUS']) {
      for (const weak of GUESSABLE) {
        const message = refusal({ ...PRODUCTION, [name]: weak });
        expect(message, weak).to.match(
          new RegExp(
            `^${name} is too easy to guess: .*(words|keyboard|sequence|password).*, guessed in about 2\\^\\d+ tries, 2\\^112 needed \\(make one with: openssl rand -hex 32\\)$`,
          ),
        );
        expect(message, weak).not.to.include(weak);
      }
    }
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: GUESSABLE[0] })).to.match(/a common password/);
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: GUESSABLE[1] })).to.match(/a sequence/);
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: GUESSABLE[4] })).to.match(/dictionary words/);
  });

  it('accepts thousands of random secrets from each generator without a single refusal', function () {
    // Thousands of secrets judged (and zxcvbn loaded): CPU-bound, slow on a busy machine.
    this.timeout(120_000);
    const refused: string[] = [];
    for (const [generator, make] of Object.entries(GENERATORS)) {
      for (let i = 0; i < 1000; i++) {
        const made = make();
        try {
          loadConfig({ ...PRODUCTION, CRON_SECRET_KEY: made, METRICS_TOKEN: make(), STATUS_TOKEN: make() });
        } catch (error) {
          refused.push(`${generator}: ${made}: ${(error as Error).message}`);
        }
      }
    }
    expect(refused).to.deep.equal([]);
  });

  it('takes a single UUIDv4 as a secret (122 random bits), in either case, and as a token', () => {
    const uuid = randomUUID();
    expect(loadConfig({ ...PRODUCTION, CRON_SECRET_KEY: uuid }).secrets).to.deep.equal([uuid]);
    const upper = randomUUID().toUpperCase();
    expect(loadConfig({ ...PRODUCTION, CRON_SECRET_KEY_PREVIOUS: upper }).secrets).to.deep.equal([
      STRONG,
      upper,
    ]);
    expect(loadConfig({ ...PRODUCTION, METRICS_TOKEN: uuid }).http.metricsToken).to.equal(uuid);
  });

  it('refuses random secrets of fewer than 112 bits, saying their bits', () => {
    const digits = Array.from({ length: 30 }, () => randomInt(10)).join('');
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: digits })).to.equal(
      'CRON_SECRET_KEY is too easy to guess: 30 characters of 0-9 hold about 99 random bits, 112 needed (make one with: openssl rand -hex 32)',
    );
    const v7 = '018f4a6e-7c2b-7d3e-9a1b-5c6d7e8f9a0b';
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: v7 })).to.equal(
      'CRON_SECRET_KEY is too easy to guess: one UUIDv7 holds about 74 random bits, 112 needed (join two UUIDv4s, or make one with: openssl rand -hex 32)',
    );
  });

  it('refuses UUIDs made from a clock or a name, which hold no random bits', () => {
    const v1 = 'c232ab00-9414-11ec-b3c8-9f6bdeced846';
    expect(refusal({ ...PRODUCTION, CRON_SECRET_KEY: `${v1}${v1.replace('c232', 'c233')}` })).to.match(
      /^CRON_SECRET_KEY is too easy to guess/,
    );
  });

  it('refuses the .env.sample placeholder in any spelling, in every secret and token', () => {
    const dropped = SECRET_PLACEHOLDER.slice(0, 10) + SECRET_PLACEHOLDER.slice(11);
    const spellings = [
      SECRET_PLACEHOLDER.replaceAll('-', '_'),
      SECRET_PLACEHOLDER.toUpperCase(),
      SECRET_PLACEHOLDER.replaceAll('-', ''),
      'Change.Me.To.A.Random.String.Of.At.Least.32.Characters',
      dropped,
      `${SECRET_PLACEHOLDER}-prod-2024`,
      `my-${SECRET_PLACEHOLDER.replaceAll('-', '_')}`,
      'chnage-me-to-a-randon-strng-of-at-lest-32-charcters',
      'CHANGEME-CHANGEME-CHANGEME-CHANGEME',
    ];
    for (const name of ['CRON_SECRET_KEY', 'CRON_SECRET_KEY_PREVIOUS', 'METRICS_TOKEN', 'STATUS_TOKEN']) {
      for (const spelling of spellings) {
        expect(refusal({ ...PRODUCTION, [name]: spelling }), `${name}=${spelling}`).to.equal(
          `${name} is the .env.sample placeholder or a spelling of it: set a random secret (make one with: openssl rand -hex 32)`,
        );
      }
    }
  });

  it('refuses guessable tokens and takes a random one of 16 characters', () => {
    for (const name of ['METRICS_TOKEN', 'STATUS_TOKEN']) {
      for (const weak of ['mysecrettoken123', 'MetricsToken2024', 'qwertyuiop123456', 'a1b2c3d4e5f6g7h8']) {
        expect(refusal({ ...PRODUCTION, [name]: weak }), weak).to.match(
          new RegExp(
            `^${name} is too easy to guess: .*2\\^64 needed \\(make one with: openssl rand -hex 32\\)$`,
          ),
        );
      }
    }
    const token = randomBytes(12).toString('base64');
    expect(loadConfig({ ...PRODUCTION, STATUS_TOKEN: token }).http.statusToken).to.equal(token);
  });

  it('takes QStash signing keys as Upstash makes them and refuses the SDK development keys and typed ones', () => {
    const qstash = { ...PRODUCTION, PUBLIC_URL: 'https://x.example' };
    for (let i = 0; i < 1000; i++) {
      const keys = { QSTASH_CURRENT_SIGNING_KEY: upstashKey(), QSTASH_NEXT_SIGNING_KEY: upstashKey() };
      expect(loadConfig({ ...qstash, ...keys }).http.qstash?.currentSigningKey).to.equal(
        keys.QSTASH_CURRENT_SIGNING_KEY,
      );
    }
    expect(QSTASH_DEVELOPMENT_KEYS).to.deep.equal([
      'sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r',
      'sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs',
    ]);
    for (const [name, other] of [
      ['QSTASH_CURRENT_SIGNING_KEY', 'QSTASH_NEXT_SIGNING_KEY'],
      ['QSTASH_NEXT_SIGNING_KEY', 'QSTASH_CURRENT_SIGNING_KEY'],
    ] as const) {
      for (const development of QSTASH_DEVELOPMENT_KEYS) {
        expect(refusal({ ...qstash, ...QSTASH_KEYS, [name]: development })).to.equal(
          `${name} is a development key the QStash SDK publishes: copy the project's own key from the Upstash console (QStash, Signing keys)`,
        );
      }
      for (const typed of ['sig_current_key', 'sig_qstash_key_1', 'qstash-signing-key']) {
        expect(refusal({ ...qstash, ...QSTASH_KEYS, [name]: typed, [other]: QSTASH_KEYS[other] })).to.match(
          new RegExp(`^${name} is too easy to guess: .*2\\^64 needed`),
        );
      }
    }
  });

  it('judges a random secret without loading the guessing model: start-up never pays for it', async () => {
    const script = `
      const { loadConfig } = await import(${JSON.stringify(pathToFileURL(`${ROOT}src/config.ts`).href)});
      const { strengthModelLoaded } = await import(${JSON.stringify(pathToFileURL(`${ROOT}src/secretStrength.ts`).href)});
      const env = JSON.parse(process.env.TEST_ENV);
      const seen = [];
      for (const secret of env.secrets) {
        loadConfig({ ...env.base, CRON_SECRET_KEY: secret, CRON_SECRET_KEY_PREVIOUS: env.previous, ...env.tokens });
        seen.push(strengthModelLoaded());
      }
      try {
        loadConfig({ ...env.base, CRON_SECRET_KEY: 'qwertyuiopasdfghjklzxcvbnm123456' });
      } catch {}
      seen.push(strengthModelLoaded());
      console.log(JSON.stringify(seen));
    `;
    const env = {
      base: { ...PRODUCTION, ...QSTASH_KEYS, PUBLIC_URL: 'https://x.example' },
      secrets: Object.values(GENERATORS).map((make) => make()),
      previous: randomBytes(32).toString('base64url'),
      tokens: { METRICS_TOKEN: randomBytes(16).toString('hex'), STATUS_TOKEN: randomUUID() },
    };
    const result = await runProcess(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        env: { PATH: process.env.PATH, TEST_ENV: JSON.stringify(env) },
        cwd: ROOT,
        timeoutMs: 20_000,
      },
    );
    expect(result.stderr).to.equal('');
    const loaded = Object.values(GENERATORS).map(() => false);
    expect(JSON.parse(result.stdout)).to.deep.equal([...loaded, true]);
  });
});

describe('taskgate serve in production', () => {
  const cases: [string, Record<string, string | undefined>, RegExp][] = [
    ['no DATABASE_URL', { ...PRODUCTION, DATABASE_URL: undefined }, /DATABASE_URL is required in production/],
    ['no CRON_SECRET_KEY', { ...PRODUCTION, CRON_SECRET_KEY: undefined }, /CRON_SECRET_KEY is required/],
    [
      'a short CRON_SECRET_KEY',
      { ...PRODUCTION, CRON_SECRET_KEY: 'short' },
      /^taskgate: CRON_SECRET_KEY is too easy to guess/,
    ],
    ['the placeholder secret', { ...PRODUCTION, CRON_SECRET_KEY: SECRET_PLACEHOLDER }, /placeholder/],
    [
      'a guessable CRON_SECRET_KEY',
      { ...PRODUCTION, CRON_SECRET_KEY: 'my-super-secret-cron-key-for-production-2024' },
      /^taskgate: CRON_SECRET_KEY is too easy to guess: .*openssl rand -hex 32\)\n$/,
    ],
    [
      'a CRON_SECRET_KEY of 96 random bits',
      { ...PRODUCTION, CRON_SECRET_KEY: '9f3c2a7d4e1b8c6f9d4a3b2e' },
      /^taskgate: CRON_SECRET_KEY is too easy to guess: 24 characters of hexadecimal hold about 96 random bits, 112 needed/,
    ],
    [
      "the QStash SDK's development key",
      {
        ...PRODUCTION,
        ...QSTASH_KEYS,
        QSTASH_NEXT_SIGNING_KEY: 'sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs',
        PUBLIC_URL: 'https://x.example',
      },
      /^taskgate: QSTASH_NEXT_SIGNING_KEY is a development key the QStash SDK publishes/,
    ],
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
      ...QSTASH_KEYS,
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
        currentSigningKey: QSTASH_KEYS.QSTASH_CURRENT_SIGNING_KEY,
        nextSigningKey: QSTASH_KEYS.QSTASH_NEXT_SIGNING_KEY,
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
    expect(refusal({ ...PRODUCTION, METRICS_TOKEN: 'short' })).to.match(
      /^METRICS_TOKEN is too easy to guess/,
    );
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
    const keys = QSTASH_KEYS;
    expect(
      refusal({
        ...PRODUCTION,
        QSTASH_CURRENT_SIGNING_KEY: keys.QSTASH_CURRENT_SIGNING_KEY,
        PUBLIC_URL: 'https://x.example',
      }),
    ).to.match(/^QSTASH_NEXT_SIGNING_KEY is unset/);
    expect(
      refusal({
        ...PRODUCTION,
        QSTASH_NEXT_SIGNING_KEY: keys.QSTASH_NEXT_SIGNING_KEY,
        PUBLIC_URL: 'https://x.example',
      }),
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
