import { createHash, createHmac, randomUUID } from 'node:crypto';

/** Signing keys as the Upstash console shows them: `sig_` and 28 random base58 characters. */
export const QSTASH_CURRENT_KEY = 'sig_AyJ53ETMCG21Z1MULCXUBurzyan5';
export const QSTASH_NEXT_KEY = 'sig_9fvUqKToYgtuzVurRf64M2GG784A';

export interface QstashClaims {
  iss?: string;
  sub?: string;
  exp?: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  body?: string;
}

const base64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A token as QStash signs one (HS256 JWT; `body` is the body's SHA-256, base64url). */
export function qstashToken(key: string, url: string, body: string, overrides: QstashClaims = {}): string {
  const claims: QstashClaims = {
    iss: 'Upstash',
    sub: url,
    iat: now(),
    nbf: now(),
    exp: now() + 300,
    jti: `jwt_${randomUUID()}`,
    body: base64url(createHash('sha256').update(body).digest()),
    ...overrides,
  };
  const signed = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
  return `${signed}.${createHmac('sha256', key).update(signed).digest('base64url')}`;
}
