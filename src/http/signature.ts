import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed mode: `X-Cron-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the HMAC, keyed
 * with the shared secret, covers `<t>.<METHOD>.<path>.<raw body>` (`path` as sent, with any query
 * string). The secret itself never crosses the wire, and the timestamp bounds how long a captured
 * request stays usable; the seen-signature store makes it usable once.
 */
export interface SignedRequest {
  method: string;
  path: string;
  body: string;
}

export interface ParsedSignature {
  timestamp: number;
  /** Hex digests offered (one per secret the caller signs with, at most a few). */
  digests: string[];
}

const HEX_DIGEST = /^[0-9a-f]{64}$/;
const MAX_DIGESTS = 4;

export function signaturePayload(timestamp: number, request: SignedRequest): string {
  return `${timestamp}.${request.method.toUpperCase()}.${request.path}.${request.body}`;
}

export function hmacHex(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload, 'utf8').digest('hex');
}

/** The header value a caller sends; what `openssl dgst -sha256 -hmac` computes, in code. */
export function signRequest(
  secret: string,
  request: SignedRequest,
  timestamp = Math.floor(Date.now() / 1000),
) {
  return `t=${timestamp},v1=${hmacHex(secret, signaturePayload(timestamp, request))}`;
}

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
 * Whether one of the offered digests matches one of the secrets. Every pair is compared so the
 * time taken does not depend on which matched.
 */
export function verifySignature(
  parsed: ParsedSignature,
  request: SignedRequest,
  secrets: readonly string[],
): boolean {
  const payload = signaturePayload(parsed.timestamp, request);
  const expected = secrets.map((secret) => Buffer.from(hmacHex(secret, payload), 'hex'));
  let found = false;
  for (const digest of parsed.digests) {
    const given = Buffer.from(digest, 'hex');
    for (const candidate of expected) found = timingSafeEqual(given, candidate) || found;
  }
  return found;
}

/**
 * What identifies a signed request for the replay check: a hash of what was signed (timestamp,
 * method, path, body), not of a digest, so that one request carrying several digests (one per
 * secret during a rotation) is still accepted once, whichever digests a replay keeps.
 */
export function requestId(parsed: ParsedSignature, request: SignedRequest): string {
  return createHash('sha256').update(signaturePayload(parsed.timestamp, request), 'utf8').digest('hex');
}
