import { createHmac } from 'node:crypto';

/**
 * Signed requests, both sides: `X-Cron-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
 * HMAC, keyed with the shared secret, covers `<t>.<METHOD>.<path>.<raw body>` (`path` as sent,
 * with any query string). The remote client signs with `signRequest`; the server
 * (src/http/signature.ts) verifies by computing the same `signatureDigest`.
 */
export interface SignedRequest {
  method: string;
  path: string;
  body: string;
}

/** The text the HMAC covers. */
export function signaturePayload(timestamp: number, request: SignedRequest): string {
  return `${timestamp}.${request.method.toUpperCase()}.${request.path}.${request.body}`;
}

/** The hex HMAC-SHA256 of one request at one time, under one secret. */
export function signatureDigest(secret: string, timestamp: number, request: SignedRequest): string {
  return createHmac('sha256', secret).update(signaturePayload(timestamp, request), 'utf8').digest('hex');
}

/** The header value a caller sends; what `openssl dgst -sha256 -hmac` computes, in code. */
export function signRequest(
  secret: string,
  request: SignedRequest,
  timestamp = Math.floor(Date.now() / 1000),
): string {
  return `t=${timestamp},v1=${signatureDigest(secret, timestamp, request)}`;
}
