import { expect } from 'chai';
import { FailedAuthLimiter, limiterKey, MAX_TRACKED_ADDRESSES } from '../src/http/limiter.js';

describe('the failed-auth limiter', () => {
  it('counts an IPv6 address by its /64 and an IPv4 one (mapped or not) by itself', () => {
    expect(limiterKey('2001:db8:aa:bb::1')).to.equal('2001:db8:aa:bb::/64');
    expect(limiterKey('2001:0db8:00aa:00bb:ffff:1:2:3')).to.equal('2001:db8:aa:bb::/64');
    expect(limiterKey('2001:db8:aa:bc::1')).to.equal('2001:db8:aa:bc::/64');
    expect(limiterKey('fe80::1%eth0')).to.equal('fe80:0:0:0::/64');
    expect(limiterKey('::1')).to.equal('0:0:0:0::/64');
    expect(limiterKey('::ffff:192.0.2.7')).to.equal('192.0.2.7');
    expect(limiterKey('192.0.2.7')).to.equal('192.0.2.7');
    expect(limiterKey('not an address')).to.equal('not an address');
  });

  it('blocks an address after the limit for the rest of its window, then forgets it', () => {
    let clock = 1_000_000;
    const limiter = new FailedAuthLimiter({ limit: 2, windowSeconds: 60, now: () => clock });
    expect(limiter.start('192.0.2.1').blockedFor).to.equal(0);
    expect(limiter.start('192.0.2.1').blockedFor).to.equal(0);
    expect(limiter.start('192.0.2.1').blockedFor).to.equal(60);
    clock += 45_000;
    expect(limiter.retryAfter('192.0.2.1')).to.equal(15);
    clock += 15_000;
    expect(limiter.retryAfter('192.0.2.1')).to.equal(0);
    expect(limiter.start('192.0.2.1').blockedFor).to.equal(0);
  });

  it('gives back an attempt that succeeded, so valid signed requests never add up to a block', () => {
    const limiter = new FailedAuthLimiter({ limit: 2, windowSeconds: 60 });
    for (let i = 0; i < 10; i++) limiter.succeeded(limiter.start('192.0.2.2'));
    expect(limiter.retryAfter('192.0.2.2')).to.equal(0);
    expect(limiter.start('192.0.2.2').blockedFor).to.equal(0);
  });

  // What that costs in memory, flood after flood, is measured by bench/limiter.ts (RSS of the
  // compiled server): a heap figure here would test V8's collector, not the limiter.
  it(`remembers at most ${MAX_TRACKED_ADDRESSES} addresses, forgetting the least recently seen, however many call`, () => {
    const limiter = new FailedAuthLimiter({ limit: 3, windowSeconds: 900 });
    const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    for (let i = 0; i < 3; i++) limiter.start('192.0.2.99');
    for (let i = 0; i < 12 * MAX_TRACKED_ADDRESSES; i++) {
      limiter.start(address(i));
      if (i % 1000 === 0) limiter.start('192.0.2.99');
      if (i === MAX_TRACKED_ADDRESSES) expect(limiter.size).to.equal(MAX_TRACKED_ADDRESSES);
    }
    expect(limiter.size).to.equal(MAX_TRACKED_ADDRESSES);
    // Seen often enough, a blocked address stays remembered through the flood.
    expect(limiter.retryAfter('192.0.2.99')).to.be.above(0);
    // The first of the flood, not seen since, is forgotten; the last is remembered.
    expect(limiter.retryAfter(address(0))).to.equal(0);
    limiter.start(address(12 * MAX_TRACKED_ADDRESSES - 1));
    limiter.start(address(12 * MAX_TRACKED_ADDRESSES - 1));
    expect(limiter.retryAfter(address(12 * MAX_TRACKED_ADDRESSES - 1))).to.be.above(0);
  });
});
