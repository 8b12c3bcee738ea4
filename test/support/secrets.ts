/**
 * The one secret the tests use (and the previous one, for rotations): made by `openssl rand -hex
 * 32`, as docs/security.md tells, so taskgate's checks take them as random without scoring them, and
 * recognisable in a log or an answer where they must never appear.
 */
export const TEST_SECRET = 'a99326c275cfaf29d8c99d972ac636888d0a3f71d7176bf1c9a6931822897c28';
export const PREVIOUS_SECRET = '9778a8a940f0e128102225eca62ee69b46bb905e9713ccd28c7597ad8fb675ca';
