import { createHash, timingSafeEqual } from 'node:crypto';
import { type SignedRequest, signatureDigest, signaturePayload } from '../signing.js';

/**
 * The server's side of signed mode (the scheme and the signing are in src/signing.ts, shared with
 * the remote client). The secret itself never crosses the wire, and the timestamp bounds how long
 * a captured request stays usable; the seen-signature store makes it usable once.
 */
export { type SignedRequest, signRequest } from '../signing.js';

export interface ParsedSignature {
  timestamp: number;
  /** Hex digests offered (one per secret the caller signs with, at most a few). */
  digests: string[];
}

const HEX_DIGEST = /^[0-9a-f]{64}$/;
const MAX_DIGESTS = 4;

/** Null when the header is not of the expected shape. */
export function parseSignature(header: string): ParsedSignature | null {
  let timestamp: number | null = null;
  const digests: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return null;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== null || !/^\d{1,12}$/.test(value)) return null;
      timestamp = Number(value);
    } else if (key === 'v1') {
      if (!HEX_DIGEST.test(value.toLowerCase())) return null;
      digests.push(value.toLowerCase());
    }
    // Other schemes (v0, v2, ...) are ignored so that callers can send several during a change.
  }
  if (timestamp === null || digests.length === 0 || digests.length > MAX_DIGESTS) return null;
  return { timestamp, digests };
}

/**
 * The offered digests that match one of the secrets, lower-case hex. Every pair is compared so the
 * time taken does not depend on which matched.
 */
export function matchingDigests(
  parsed: ParsedSignature,
  request: SignedRequest,
  secrets: readonly string[],
): string[] {
  const expected = secrets.map((secret) =>
    Buffer.from(signatureDigest(secret, parsed.timestamp, request), 'hex'),
  );
  const matching: string[] = [];
  for (const digest of parsed.digests) {
    const given = Buffer.from(digest, 'hex');
    let found = false;
    for (const candidate of expected) found = timingSafeEqual(given, candidate) || found;
    if (found) matching.push(digest);
  }
  return matching;
}

/** Whether one of the offered digests matches one of the secrets. */
export function verifySignature(
  parsed: ParsedSignature,
  request: SignedRequest,
  secrets: readonly string[],
): boolean {
  return matchingDigests(parsed, request, secrets).length > 0;
}

/**
 * What identifies a signed request for the replay check: a hash of what was signed (timestamp,
 * method, path, body), not of a digest, so that one request carrying several digests (one per
 * secret during a rotation) is still accepted once, whichever digests a replay keeps.
 */
export function requestId(parsed: ParsedSignature, request: SignedRequest): string {
  return createHash('sha256').update(signaturePayload(parsed.timestamp, request), 'utf8').digest('hex');
}
