import { UUID } from '../../formats.js';
import { redactFields } from '../../logger.js';
import { isRandomToken } from '../../secretStrength.js';

const REDACTED = '[redacted]';
/** A JWT: its header is JSON, so it always begins `eyJ` (`{"`). */
const JWT = /\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*/g;
/** The credential of an Authorization header written out. */
const AUTHORIZATION = /\b(Bearer|Basic|Token)\s+[\w~+/.=-]{8,}/gi;
/** Runs of the characters keys and tokens are written in, long enough to hold 64 random bits. */
const WORD = /[\w+/=-]{16,}/g;
/** What a random-looking word must hold to be taken for a credential: the least a token is worth. */
const TOKEN_BITS = 64;

/**
 * What the status page shows of a run's params, result, error and log: fields named like secrets
 * (the log's own redaction), and, whatever the field is called, values shaped like credentials:
 * JWTs, Authorization values, words that look like a generator's output of 64 bits or more (keys,
 * tokens, signatures), and the credentials taskgate itself holds, wherever they appear.
 */
export class Redactor {
  private readonly known: readonly string[];

  constructor(credentials: readonly string[]) {
    this.known = credentials.filter((credential) => credential.length >= 8);
  }

  text(text: string): string {
    let out = text;
    for (const credential of this.known) out = out.replaceAll(credential, REDACTED);
    out = out.replace(JWT, REDACTED).replace(AUTHORIZATION, `$1 ${REDACTED}`);
    // Run ids and request ids are UUIDs: they stay readable (a UUID that is a credential is known).
    return out.replace(WORD, (word) =>
      !UUID.test(word) && isRandomToken(word, TOKEN_BITS) ? REDACTED : word,
    );
  }

  /** A copy of `value` with its secret fields and credential-shaped strings redacted. */
  value<T>(value: T): T {
    return this.walk(redactFields(value)) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.text(value);
    if (Array.isArray(value)) return value.map((item) => this.walk(item));
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, this.walk(item)]));
    }
    return value;
  }
}
