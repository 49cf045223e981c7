import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, isAppError } from '../errors.ts';
import type { TokenRecord, TokenStore } from '../store/token-store.ts';

export type { TokenRecord };

/**
 * API tokens. Only a SHA-256 of each token is stored; a presented token is
 * hashed and compared in constant time. A token carries scopes
 * "<repo|*>:<read|publish|delete|advise|admin>"; `admin` on a repo implies the
 * others. `advise` writes the repo's security advisories.
 */

export const SCOPES = ['read', 'publish', 'delete', 'advise', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface TokenInfo {
  /** Row id; undefined for the token configured in REEF_ADMIN_TOKEN. */
  id: number | undefined;
  name: string;
  scopes: string[];
}

const PREFIX = 'reef_';
const SCOPE_RE = /^(\*|[a-z0-9][a-z0-9._-]{0,63}):(read|publish|delete|advise|admin)$/;

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function generateToken(): string {
  return `${PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function validateScopes(scopes: string[]): void {
  if (scopes.length === 0) throw new AppError('TOKEN_INVALID_SCOPE', 'a token needs at least one scope');
  for (const scope of scopes) {
    if (!SCOPE_RE.test(scope)) {
      throw new AppError(
        'TOKEN_INVALID_SCOPE',
        `scope '${scope.slice(0, 80)}' is invalid: use <repo|*>:<read|publish|delete|advise|admin>, e.g. main:publish`,
      );
    }
  }
}

/** Whether `token` may do `scope` on `repo` (`*` as repo asks for a global scope). */
export function hasScope(token: TokenInfo, repo: string, scope: Scope): boolean {
  return token.scopes.some((s) => {
    const [r, granted] = s.split(':');
    return (r === '*' || r === repo) && (granted === scope || granted === 'admin');
  });
}

export class TokenService {
  private readonly configHash: Buffer | undefined;

  constructor(
    private readonly store: TokenStore,
    configAdminToken: string | undefined,
  ) {
    this.configHash = configAdminToken ? hashToken(configAdminToken) : undefined;
  }

  /** Creates the bootstrap admin token when none is configured or stored; returns it once, in clear. */
  async ensureAdminToken(now = Date.now()): Promise<string | undefined> {
    if (this.configHash) return undefined;
    if (await this.store.anyUnrevoked()) return undefined;
    const token = generateToken();
    const record = await this.store.insertFirst({
      name: 'admin (generated at first start)',
      hash: hashToken(token).toString('hex'),
      scopes: ['*:admin'],
      createdAt: now,
      expiresAt: undefined,
    });
    return record && token;
  }

  /** A new token; the clear text is returned here and never again. */
  async create(
    name: string,
    scopes: string[],
    expiresAt?: number,
    now = Date.now(),
  ): Promise<{ token: string; record: TokenRecord }> {
    validateScopes(scopes);
    const token = generateToken();
    const record = await this.store.insert({
      name,
      hash: hashToken(token).toString('hex'),
      scopes,
      createdAt: now,
      expiresAt,
    });
    return { token, record };
  }

  get(id: number): Promise<TokenRecord | undefined> {
    return this.store.get(id);
  }

  list(): Promise<TokenRecord[]> {
    return this.store.list();
  }

  async revoke(id: number, now = Date.now()): Promise<TokenRecord> {
    const revoked = await this.store.revoke(id, now);
    const record = await this.store.get(id);
    if (!record) throw new AppError('TOKEN_NOT_FOUND', `no token with id ${id}`);
    if (!revoked && record.revokedAt === undefined) {
      throw new AppError('TOKEN_NOT_FOUND', `token ${id} could not be revoked`);
    }
    return record;
  }

  async verify(presented: string, now = Date.now()): Promise<TokenInfo | undefined> {
    const hash = hashToken(presented);
    if (this.configHash && timingSafeEqual(hash, this.configHash)) {
      return { id: undefined, name: 'REEF_ADMIN_TOKEN', scopes: ['*:admin'] };
    }
    // Looked up by hash: the time the search takes says nothing about the token itself.
    const found = await this.store.byHash(hash.toString('hex'));
    if (!found || !timingSafeEqual(Buffer.from(found.hash, 'hex'), hash)) return undefined;
    if (found.revokedAt !== undefined || (found.expiresAt !== undefined && found.expiresAt <= now)) {
      return undefined;
    }
    try {
      await this.store.touch(found.id, now);
    } catch (err) {
      // "Last used" is a note, not a condition: a database that cannot be written still lets a token read.
      if (!isAppError(err)) throw err;
    }
    return { id: found.id, name: found.name, scopes: found.scopes };
  }
}
