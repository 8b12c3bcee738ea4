/** The `.env.sample` placeholder: a deployment that still carries it has not set a secret. */
export const SECRET_PLACEHOLDER = 'change-me-to-a-random-string-of-at-least-32-characters';
export const MIN_SECRET_LENGTH = 32;
/** What a shared secret must be worth: out of reach of any guessing, online or offline. */
export const MIN_SECRET_BITS = 128;
export const HOW_TO_MAKE_ONE = 'make one with: openssl rand -hex 32';

/**
 * A conservative estimate of the bits of entropy in a secret: its length times the Shannon entropy
 * of its own character frequencies. It undercounts a truly random string (a 64-character hex
 * secret scores about 240 of its 256 bits, one from `openssl rand -base64 32` about 215) and
 * sees through a narrow alphabet: 32 × "a" scores 0, "abab…" 32.
 */
export function estimatedBits(secret: string): number {
  const counts = new Map<string, number>();
  const chars = [...secret];
  for (const char of chars) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bitsPerChar = 0;
  for (const count of counts.values()) {
    const p = count / chars.length;
    bitsPerChar -= p * Math.log2(p);
  }
  return bitsPerChar * chars.length;
}

/**
 * Why a secret would be weak, or null. A repeated block is judged by one copy, so that
 * "password" five times is worth "password" once.
 */
export function secretWeakness(secret: string, minBits: number): string | null {
  if (secret.toLowerCase().includes(SECRET_PLACEHOLDER)) {
    return `is the .env.sample placeholder${secret.length > SECRET_PLACEHOLDER.length ? ' with characters added' : ''}: set a random secret (${HOW_TO_MAKE_ONE})`;
  }
  if (estimatedBits(shortestRepeat(secret)) < minBits) {
    return `is too easy to guess (about ${Math.floor(estimatedBits(shortestRepeat(secret)))} bits of entropy, ${minBits} needed): ${HOW_TO_MAKE_ONE}`;
  }
  return null;
}

/** The block a string repeats, or the string itself: "abcabcab" → "abc". */
function shortestRepeat(text: string): string {
  for (let size = 1; size <= text.length / 2; size++) {
    const block = text.slice(0, size);
    let repeats = true;
    for (let i = size; i < text.length && repeats; i++) repeats = text[i] === block[i % size];
    if (repeats) return block;
  }
  return text;
}
