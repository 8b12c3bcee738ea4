/**
 * The one secret the tests use (and the previous one, for rotations): strong enough for
 * taskgate's checks, and recognisable in a log or an answer where it must never appear.
 */
export const TEST_SECRET = 'test-secret-0123456789abcdef0123456789';
export const PREVIOUS_SECRET = 'http-test-previous-secret-9876543210zyxwvu';
