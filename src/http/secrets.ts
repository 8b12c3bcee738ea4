import { hash, timingSafeEqual } from 'node:crypto';

const digest = (value: string): Buffer => hash('sha256', value, 'buffer');

/**
 * The accepted secrets (current first, then the previous one during a rotation), compared in
 * constant time. Hashing both sides first gives buffers of equal length, so neither the length
 * of a secret nor the position of the first wrong character shows in the time taken; every
 * secret is compared, so the time does not tell which one matched either.
 */
export class SecretSet {
  private readonly digests: Buffer[];

  constructor(readonly secrets: readonly string[]) {
    this.digests = secrets.map(digest);
  }

  get empty(): boolean {
    return this.secrets.length === 0;
  }

  matches(presented: string): boolean {
    if (presented === '') return false;
    const given = digest(presented);
    let matched = false;
    for (const expected of this.digests) matched = timingSafeEqual(given, expected) || matched;
    return matched;
  }
}
