import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { TaskgateError } from '../../errors.js';
import { bearerToken, credentialHeaders, refuse } from '../auth.js';
import type { FailedAuthLimiter } from '../limiter.js';
import { SecretSet } from '../secrets.js';
import type { SeenSignatures } from '../seenSignatures.js';

/**
 * Who may see the status page, and do what. Two credentials: STATUS_TOKEN reads; the cron secrets
 * (current and previous) read and write (the controls). Either is sent as `Authorization: Bearer`
 * (a secret also as `X-Cron-Secret`), or exchanged at the login form for a session cookie: signed
 * with a key derived from every credential (changing one ends every session), HttpOnly,
 * SameSite=Strict, Path=/status, 8 hours, Secure in production. A session carries a random nonce
 * its CSRF token is made from, so a form's token is good for its own session only. Logging out
 * records the nonce as ended in PostgreSQL (with the signed requests already seen, until the
 * cookie's own expiry): a copy of the cookie is refused by every replica from then on.
 */
export type Role = 'read' | 'write';

export interface Viewer {
  role: Role;
  /** The CSRF token for this session's forms; null when the credential is a header (no cookie, no CSRF). */
  csrf: string | null;
}

export const SESSION_COOKIE = 'taskgate_status';
const SESSION_MS = 8 * 60 * 60 * 1000;
const STATUS_REALM = 'taskgate status';

/** Made once: a flood of forged forms costs no stack capture each. */
const CROSS_SITE = Object.freeze(
  new TaskgateError('FORBIDDEN', 'cross-site request refused: use the forms of the status page itself'),
);
const BAD_CSRF = Object.freeze(
  new TaskgateError(
    'FORBIDDEN',
    'the form has expired or is not this session’s: reload the page and try again',
  ),
);
const READ_ONLY = Object.freeze(
  new TaskgateError('FORBIDDEN', 'the status token can only read: controls need the cron secret'),
);

const b64 = (buffer: Buffer) => buffer.toString('base64url');

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface SessionClaims {
  role: Role;
  /** Expiry, ms since the epoch. */
  exp: number;
  nonce: string;
}

export interface StatusAuthOptions {
  secrets: readonly string[];
  statusToken: string | undefined;
  limiter: FailedAuthLimiter;
  /** Where ended sessions are recorded; null keeps none (a logged-out cookie lives to its expiry). */
  ended: SeenSignatures | null;
  /**
   * Whether the cookie is Secure whatever the request looked like (production): behind a TLS proxy
   * with TRUST_PROXY=0 taskgate sees plain HTTP, yet the browser is on HTTPS.
   */
  secureCookie: boolean;
  now?: () => number;
}

/** The id an ended session is recorded under, beside the signed requests already seen. */
const endedId = (nonce: string) => `status-session-ended:${nonce}`;

/** What a request's credential says: a viewer, nothing presented, an expired session, or a refusal reason. */
type Verdict = Viewer | { none: 'no credentials' | 'session expired' } | { refused: string };

/** A session cookie whose signature holds, and what it claims. */
type Session = { claims: SessionClaims } | { refused: 'tampered session cookie' };

export class StatusAuth {
  private readonly writers: SecretSet;
  private readonly readers: SecretSet;
  private readonly key: Buffer;
  private readonly now: () => number;
  private readonly ended: SeenSignatures | null;
  private readonly secureCookie: boolean;
  readonly limiter: FailedAuthLimiter;

  constructor(options: StatusAuthOptions) {
    this.writers = new SecretSet(options.secrets);
    this.readers = new SecretSet(options.statusToken ? [options.statusToken] : []);
    this.limiter = options.limiter;
    this.now = options.now ?? Date.now;
    this.ended = options.ended;
    this.secureCookie = options.secureCookie;
    const material = [...options.secrets, options.statusToken ?? ''].join('\0');
    this.key = Buffer.from(hkdfSync('sha256', material, 'taskgate', 'status page session v1', 32));
  }

  /** Whether any credential is configured: with none, nothing can log in. */
  get configured(): boolean {
    return !this.writers.empty || !this.readers.empty;
  }

  /** The role a presented token carries, or null. Every set is compared, in constant time. */
  roleOf(token: string): Role | null {
    const write = this.writers.matches(token);
    const read = this.readers.matches(token);
    return write ? 'write' : read ? 'read' : null;
  }

  private mac(text: string): string {
    return b64(createHmac('sha256', this.key).update(text).digest());
  }

  private csrfFor(nonce: string): string {
    return this.mac(`csrf\0${nonce}`);
  }

  /** A new session's cookie value and its CSRF token. */
  issue(role: Role): { cookie: string; viewer: Viewer; expires: Date } {
    const claims: SessionClaims = { role, exp: this.now() + SESSION_MS, nonce: b64(randomBytes(18)) };
    const payload = b64(Buffer.from(JSON.stringify(claims)));
    return {
      cookie: `${payload}.${this.mac(`session\0${payload}`)}`,
      viewer: { role, csrf: this.csrfFor(claims.nonce) },
      expires: new Date(claims.exp),
    };
  }

  /** The claims of a cookie whose signature holds, checked before anything else is. */
  private session(value: string): Session {
    const [payload, signature, extra] = value.split('.');
    if (!payload || !signature || extra !== undefined || !equal(signature, this.mac(`session\0${payload}`))) {
      return { refused: 'tampered session cookie' };
    }
    let claims: SessionClaims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return { refused: 'tampered session cookie' };
    }
    if (claims.role !== 'read' && claims.role !== 'write') return { refused: 'tampered session cookie' };
    return { claims };
  }

  private async fromCookie(value: string): Promise<Verdict> {
    const session = this.session(value);
    if ('refused' in session) return session;
    const { claims } = session;
    if (!(claims.exp > this.now())) return { none: 'session expired' };
    // Only a genuine cookie costs a database read.
    if (this.ended && (await this.ended.has(endedId(String(claims.nonce))))) {
      return { none: 'session expired' };
    }
    return { role: claims.role, csrf: this.csrfFor(String(claims.nonce)) };
  }

  /** Reads the credential of a request without deciding what to answer. */
  private async verdict(ctx: Context): Promise<Verdict> {
    if (!this.configured) return { refused: 'no secret configured' };
    const headers = credentialHeaders(ctx);
    if (!headers) return { refused: 'ambiguous credentials' };
    const { authorization, 'x-cron-secret': secret, 'x-cron-signature': signature } = headers;
    if (signature !== undefined) return { refused: 'signatures are for /cron' };
    if (authorization !== undefined || secret !== undefined) {
      // Every header sent must be good; with both, the weaker role holds.
      const roles: (Role | null)[] = [];
      if (secret !== undefined) roles.push(this.writers.matches(secret.trim()) ? 'write' : null);
      if (authorization !== undefined) {
        const token = bearerToken(authorization);
        if (token === null) return { refused: 'malformed authorization' };
        roles.push(this.roleOf(token));
      }
      const role = roles.includes(null) ? null : roles.includes('read') ? 'read' : 'write';
      return role ? { role, csrf: null } : { refused: 'wrong status token or secret' };
    }
    const cookie = ctx.cookies.get(SESSION_COOKIE);
    if (cookie === undefined || cookie === '') return { none: 'no credentials' };
    return this.fromCookie(cookie);
  }

  /** Refuses the request: 401 (429 once the address has failed too often), counted and logged. */
  refuse(ctx: Context, reason: string): never {
    refuse(ctx, this.limiter, this.limiter.start(ctx.ip), reason, STATUS_REALM);
  }

  /**
   * The viewer, or `{none}` when no credential was presented (or the session expired), so that
   * the caller can show the login form. A wrong credential is refused (401, counted by the limiter).
   */
  async viewer(ctx: Context): Promise<Viewer | { none: string }> {
    const verdict = await this.verdict(ctx);
    if ('refused' in verdict) {
      if (verdict.refused === 'tampered session cookie') this.clear(ctx);
      this.refuse(ctx, verdict.refused);
    }
    if ('none' in verdict && verdict.none === 'session expired') this.clear(ctx);
    return verdict;
  }

  /** A viewer, or 401: for routes that show nothing to a caller without one. */
  async require(ctx: Context): Promise<Viewer> {
    const viewer = await this.viewer(ctx);
    if ('none' in viewer) this.refuse(ctx, viewer.none);
    return viewer;
  }

  /** Counts and logs a refusal that is not about the credential itself (403), and throws it. */
  forbid(ctx: Context, reason: string, error: TaskgateError): never {
    ctx.state.refused = reason;
    throw this.limiter.refuse(ctx, this.limiter.start(ctx.ip), error);
  }

  /**
   * A form post must come from this site: refused when the browser says it does not
   * (`Sec-Fetch-Site` other than same-origin) or when `Origin` names another host.
   */
  sameOrigin(ctx: Context): void {
    const site = ctx.get('sec-fetch-site');
    if (site !== '' && site !== 'same-origin') this.forbid(ctx, `cross-site form (${site})`, CROSS_SITE);
    const origin = ctx.get('origin');
    if (origin === '') return;
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      host = null;
    }
    if (host !== ctx.host) this.forbid(ctx, 'form from another origin', CROSS_SITE);
  }

  /** The write credential, and for a session the form's CSRF token; refused (403) otherwise. */
  requireWrite(ctx: Context, viewer: Viewer): void {
    if (viewer.role !== 'write') this.forbid(ctx, 'read-only credential', READ_ONLY);
  }

  checkCsrf(ctx: Context, viewer: Viewer, given: unknown): void {
    if (viewer.csrf === null) return;
    if (typeof given !== 'string' || !equal(given, viewer.csrf)) this.forbid(ctx, 'bad CSRF token', BAD_CSRF);
  }

  /** Sets the session cookie. */
  start(ctx: Context, role: Role): Viewer {
    const { cookie, viewer, expires } = this.issue(role);
    ctx.cookies.set(SESSION_COOKIE, cookie, {
      path: '/status',
      httpOnly: true,
      sameSite: 'strict',
      secure: this.secure(ctx),
      expires,
      maxAge: SESSION_MS,
      overwrite: true,
    });
    return viewer;
  }

  /**
   * Logs out: the session is recorded as ended until its cookie would expire, so that a copy of
   * the cookie is refused everywhere, and the browser's cookie is cleared.
   */
  async end(ctx: Context): Promise<void> {
    const cookie = ctx.cookies.get(SESSION_COOKIE);
    const session = cookie ? this.session(cookie) : null;
    if (session && 'claims' in session && session.claims.exp > this.now() && this.ended) {
      await this.ended.remember([endedId(String(session.claims.nonce))], new Date(session.claims.exp));
    }
    this.clear(ctx);
  }

  /** Whether the cookie is Secure: always in production, else when the request came over HTTPS. */
  private secure(ctx: Context): boolean {
    if (!this.secureCookie) return ctx.secure;
    // The cookies library refuses a Secure cookie on a request it believes is plain HTTP.
    ctx.cookies.secure = true;
    return true;
  }

  clear(ctx: Context): void {
    ctx.cookies.set(SESSION_COOKIE, '', {
      path: '/status',
      httpOnly: true,
      sameSite: 'strict',
      secure: this.secure(ctx),
      expires: new Date(0),
      overwrite: true,
    });
  }
}
