import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler, RouteOptions } from 'fastify';
import { AppError } from '../errors.ts';
import type { Services } from '../repo/services.ts';
import { hasScope, type Scope, type TokenInfo } from '../repo/tokens.ts';

/**
 * Who is asking, and may they. Tokens come as `Authorization: Bearer <token>`
 * or as HTTP Basic with the token as password (apk, apko and melange send the
 * userinfo of the repository URL that way). No credentials → 401 with a
 * Basic challenge (apk only retries with credentials after a 401); valid
 * credentials without the scope → 403.
 *
 * Each route declares its rule on the route (`config.access`); one hook
 * (enforceAccess) applies it before the handler runs and leaves the outcome
 * on the request (`request.caller`). A route that declares no rule is refused
 * at registration, so no handler runs without a check, and no handler awaits
 * (or forgets to await) one of its own.
 */

/** The repository a request names, for its route's rule. */
export type RepoOf = (request: FastifyRequest) => string;

/** Who may call a route. */
export type Access =
  /** Anyone; credentials are not looked at. */
  | { kind: 'public' }
  /** Anyone; credentials sent must be valid (401), and the handler sees their token. */
  | { kind: 'optional' }
  /**
   * Public repositories answer anyone; private ones need `<repo>:read`, and
   * answer 401 first (apk sends credentials only after a 401). So does a
   * repository that does not exist: without a token that may read that name,
   * no caller can tell a private repository from none (401 and 403 alike);
   * with one, it is then the route's 404.
   */
  | { kind: 'read'; repo: RepoOf }
  /** A token with `scope` on the repository, or on every repository (`*`: global operations). */
  | { kind: 'scope'; scope: Scope; repo: RepoOf | '*' };

/** The `:repo` path parameter. */
export const repoParam: RepoOf = (request) => (request.params as { repo: string }).repo;

/** Rules as routes declare them: `{ config: { access: allow.read() } }`. */
export const allow = {
  public: { kind: 'public' } as Access,
  optional: { kind: 'optional' } as Access,
  read: (repo: RepoOf = repoParam): Access => ({ kind: 'read', repo }),
  scope: (scope: Scope, repo: RepoOf | '*' = repoParam): Access => ({ kind: 'scope', scope, repo }),
};

/** What the access hook found, for the handler. */
export interface Caller {
  /** The presented token, when the rule looked at credentials and some were sent. */
  token: TokenInfo | undefined;
  /** The repository a read rule let the caller read (a scope such as publish does not imply read). */
  readable: string | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    /** Set by the access hook before the handler; null until then (and on routes it did not run for). */
    caller: Caller | null;
  }
}

/**
 * Counts failed authentications per client address; past the limit, further
 * failures from there are answered 429 until the window has passed. Only
 * failures: a valid token is never refused by it (a proxy without
 * REEF_TRUST_PROXY makes every client one address, and a flood of bad tokens
 * must not lock out everyone's good ones). So a 429 does tell a guesser that
 * a guess was wrong: what makes guessing hopeless is the tokens' 256 random
 * bits; the limit bounds the work and the log lines a flood of failures costs.
 */
export class FailedAuthLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = 20,
    private readonly windowMs = 60_000,
  ) {}

  /** Records a failure from `key`, or throws AUTH_RATE_LIMITED when the window already holds the limit. */
  fail(key: string, now = Date.now()): void {
    const recent = this.prune(key, now);
    if (recent.length >= this.maxFailures) {
      // Not recorded: the window (and the map entry) stays bounded at maxFailures.
      const retryAfterSeconds = Math.max(1, Math.ceil((recent[0]! + this.windowMs - now) / 1000));
      throw new AppError(
        'AUTH_RATE_LIMITED',
        `too many failed authentications from this address; wait ${retryAfterSeconds} s`,
        { details: { retryAfterSeconds } },
      );
    }
    recent.push(now);
    this.failures.set(key, recent);
    // Bound the map: forget the oldest addresses first.
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  private prune(key: string, now: number): number[] {
    const recent = (this.failures.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (recent.length === 0) this.failures.delete(key);
    return recent;
  }
}

/** The web interface's sign-in cookie: the token itself, HttpOnly, SameSite=Strict, Path=/ui/. */
export const UI_COOKIE = 'reef_ui';

export function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return uiCookie(request);
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value || undefined;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    // Token as password (user name ignored); a URL with only a user part puts it there.
    const password = colon >= 0 ? decoded.slice(colon + 1) : '';
    return password || (colon >= 0 ? decoded.slice(0, colon) : decoded) || undefined;
  }
  return undefined;
}

/**
 * The sign-in cookie counts only for reading pages of the interface (GET and
 * HEAD under /ui/): never for the API, and never for a write, so a page of
 * another site cannot act with it.
 */
function uiCookie(request: FastifyRequest): string | undefined {
  if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
  if (!request.url.startsWith('/ui/')) return undefined;
  const cookies = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies;
  return cookies?.[UI_COOKIE] || undefined;
}

export class Authenticator {
  /** Tokens already verified for a request (the hook, then a page naming its viewer): one lookup each. */
  private readonly identified = new WeakMap<FastifyRequest, { presented: string; token: TokenInfo }>();

  constructor(
    private readonly services: Services,
    private readonly limiter: FailedAuthLimiter,
  ) {}

  /**
   * The caller's token, if any credentials were sent; invalid credentials are
   * a 401, or a 429 past the failure limit of the caller's address. The token
   * is checked first (by its hash, in constant time), so a valid one always
   * authenticates; only failures are counted and refused.
   */
  async identify(request: FastifyRequest): Promise<TokenInfo | undefined> {
    const presented = presentedToken(request);
    if (presented === undefined) return undefined;
    const known = this.identified.get(request);
    if (known?.presented === presented) return known.token;
    const token = await this.verify(request, presented);
    this.identified.set(request, { presented, token });
    return token;
  }

  /** Checks a token typed into the sign-in form as a presented one is checked (failures counted). */
  async verify(request: FastifyRequest, token: string): Promise<TokenInfo> {
    const found = await this.services.tokens.verify(token);
    if (found) return found;
    this.limiter.fail(request.ip);
    throw new AppError('AUTH_INVALID', 'the token is not valid (unknown, revoked or expired)');
  }

  /** Applies a route's rule: who the caller is and what was checked, or 401/403/429. */
  async authorize(request: FastifyRequest, rule: Access): Promise<Caller> {
    switch (rule.kind) {
      case 'public':
        return { token: undefined, readable: undefined };
      case 'optional':
        return { token: await this.identify(request), readable: undefined };
      case 'read': {
        const repo = rule.repo(request);
        return { token: await this.requireRead(request, repo), readable: repo };
      }
      case 'scope': {
        const repo = rule.repo === '*' ? '*' : rule.repo(request);
        return { token: await this.require(request, repo, rule.scope), readable: undefined };
      }
    }
  }

  /** A token with `scope` on `repo` (`*` for global operations), or 401/403. */
  private async require(request: FastifyRequest, repo: string, scope: Scope): Promise<TokenInfo> {
    const token = await this.identify(request);
    if (!token) throw new AppError('AUTH_REQUIRED', 'this needs a token: send Authorization: Bearer <token>');
    if (!hasScope(token, repo, scope)) {
      throw new AppError(
        'AUTH_FORBIDDEN',
        `the token lacks the '${scope}' scope on ${repo === '*' ? 'all repositories' : repo}`,
      );
    }
    return token;
  }

  /** Nothing for a public repository (credentials are not looked at); else a token that may read it. */
  private async requireRead(request: FastifyRequest, repo: string): Promise<TokenInfo | undefined> {
    const found = await this.services.store.getRepo(repo);
    if (found && !found.private) return undefined;
    return this.require(request, repo, 'read');
  }

  /**
   * Which repository names the caller may see: public repositories that
   * exist, and any name its token may read.
   */
  async readableNames(request: FastifyRequest): Promise<(repo: string) => boolean> {
    const token = request.caller?.token;
    const open = new Set(
      (await this.services.store.listRepos()).filter((r) => !r.private).map((r) => r.name),
    );
    return (repo) => open.has(repo) || (token !== undefined && hasScope(token, repo, 'read'));
  }

  /** The repositories the caller may read, by name: what searches across repositories look in. */
  async readableRepos(request: FastifyRequest): Promise<string[]> {
    const token = request.caller?.token;
    return (await this.services.store.listRepos()).filter((r) => canRead(token, r)).map((r) => r.name);
  }
}

export function canRead(token: TokenInfo | undefined, repo: { name: string; private: boolean }): boolean {
  return !repo.private || (token !== undefined && hasScope(token, repo.name, 'read'));
}

/** The token a route's scope rule let in: what its handler acts as (and audits). */
export function callerToken(request: FastifyRequest): TokenInfo {
  const token = request.caller?.token;
  // Fail closed: only a route whose rule demanded a token gets one here.
  if (!token) throw new AppError('AUTH_REQUIRED', 'this needs a token: send Authorization: Bearer <token>');
  return token;
}

/**
 * That the route's rule (`allow.read`) checked read access to `repo`: what a
 * handler asserts before it reads the repository's data under a name taken
 * from the request. Fails closed (500) on a route declared otherwise.
 */
export function assertCallerMayRead(request: FastifyRequest, repo: string): void {
  if (request.caller?.readable !== repo) {
    throw new Error(`${request.method} ${request.url}: its access rule did not check read access to ${repo}`);
  }
}

/**
 * Makes every route declare its access rule and enforces it: a route without
 * `config.access` is refused when it is registered (the app does not start);
 * a route with one gets a preHandler that applies it, after the hooks of its
 * scope (the interface's sign-in cookie expiry runs first) and before its own.
 * Call before any route is registered.
 */
export function enforceAccess(app: FastifyInstance, auth: Authenticator): void {
  app.decorateRequest('caller', null);
  app.addHook('onRoute', (route: RouteOptions) => {
    const rule = route.config?.access;
    if (!rule) {
      throw new Error(
        `${String(route.method)} ${route.url} declares no access rule: give it config.access (allow.public, allow.read(), …)`,
      );
    }
    const check: preHandlerAsyncHookHandler = async (request) => {
      request.caller = await auth.authorize(request, rule);
    };
    const own = route.preHandler === undefined ? [] : [route.preHandler].flat();
    route.preHandler = [check, ...own];
  });
}
