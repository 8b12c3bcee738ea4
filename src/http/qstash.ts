import type { QstashConfig } from '../config.js';
import type { SeenSignatures } from './seenSignatures.js';

/**
 * How far QStash's clock may be from ours when its token's `nbf` and `exp` are checked. Its
 * tokens live five minutes; this only absorbs a skew.
 */
const QSTASH_CLOCK_TOLERANCE_SECONDS = 30;

type Receiver = import('@upstash/qstash').Receiver;

/** What a verified QStash token says about itself (its claims are checked by the Receiver). */
interface Claims {
  jti?: unknown;
  exp?: unknown;
}

/**
 * Requests signed by Upstash QStash (`Upstash-Signature`, a JWT): verified by Upstash's own
 * Receiver (HS256 under the current, then the next signing key; issuer `Upstash`; subject the
 * URL called; body hash; `nbf` and `exp`), then accepted once: the token's id is recorded with
 * the signed requests taskgate has seen, so a replay is refused by every replica.
 *
 * The SDK is loaded on the first QStash request: a taskgate that QStash never calls never loads it.
 */
export class QstashVerifier {
  private receiver: Promise<Receiver> | null = null;

  constructor(
    private readonly config: QstashConfig,
    private readonly seen: SeenSignatures | null,
  ) {}

  /** Null when the request is genuine and new; otherwise why it is refused (for the log). */
  async verify(
    token: string,
    request: { path: string; body: string },
  ): Promise<'wrong qstash signature' | 'replayed qstash signature' | null> {
    const receiver = await this.load();
    const valid = await receiver
      .verify({
        signature: token,
        body: request.body,
        url: `${this.config.publicUrl}${request.path}`,
        clockTolerance: QSTASH_CLOCK_TOLERANCE_SECONDS,
      })
      .catch(() => false);
    if (!valid) return 'wrong qstash signature';
    const { jti, exp } = claims(token);
    if (typeof jti !== 'string' || typeof exp !== 'number') return 'wrong qstash signature';
    const expiresAt = new Date((exp + QSTASH_CLOCK_TOLERANCE_SECONDS) * 1000);
    const first = this.seen && (await this.seen.remember([`qstash:${jti}`], expiresAt));
    return first ? null : 'replayed qstash signature';
  }

  private load(): Promise<Receiver> {
    this.receiver ??= import('@upstash/qstash').then(
      ({ Receiver }) =>
        new Receiver({
          currentSigningKey: this.config.currentSigningKey,
          nextSigningKey: this.config.nextSigningKey,
          // Never the SDK's development mode, whatever QSTASH_DEV says: it verifies with
          // publicly known keys.
          devMode: false,
        }),
    );
    return this.receiver;
  }
}

/** The claims of a token the Receiver has verified. */
function claims(token: string): Claims {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Claims;
  } catch {
    return {};
  }
}
