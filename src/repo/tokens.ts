import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, isAppError } from '../errors.ts';
import type { Database } from '../store/database.ts';
import { type Db, translateDbError, writingDb } from '../store/db.ts';
import { sqliteOf } from '../store/sqlite-database.ts';

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

export interface TokenRecord extends TokenInfo {
  id: number;
  createdAt: number;
  expiresAt: number | undefined;
  revokedAt: number | undefined;
  lastUsedAt: number | undefined;
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

interface TokenRow {
  id: number;
  name: string;
  hash: string;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

function toRecord(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    name: r.name,
    scopes: JSON.parse(r.scopes),
    createdAt: r.created_at,
    expiresAt: r.expires_at ?? undefined,
    revokedAt: r.revoked_at ?? undefined,
    lastUsedAt: r.last_used_at ?? undefined,
  };
}

export class TokenService {
  private readonly configHash: Buffer | undefined;

  private readonly db: Db;

  constructor(
    private readonly database: Database,
    configAdminToken: string | undefined,
  ) {
    this.db = sqliteOf(database);
    this.configHash = configAdminToken ? hashToken(configAdminToken) : undefined;
  }

  /** Creates the bootstrap admin token when none is configured or stored; returns it once, in clear. */
  ensureAdminToken(now = Date.now()): string | undefined {
    if (this.configHash) return undefined;
    if (this.db.prepare('SELECT 1 FROM tokens WHERE revoked_at IS NULL LIMIT 1').get()) return undefined;
    return this.create('admin (generated at first start)', ['*:admin'], undefined, now).token;
  }

  /** A new token; the clear text is returned here and never again. */
  create(
    name: string,
    scopes: string[],
    expiresAt?: number,
    now = Date.now(),
  ): { token: string; record: TokenRecord } {
    validateScopes(scopes);
    const token = generateToken();
    const info = writingDb(() =>
      this.db
        .prepare('INSERT INTO tokens (name, hash, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?)')
        .run(name, hashToken(token).toString('hex'), JSON.stringify(scopes), now, expiresAt ?? null),
    );
    return { token, record: this.get(Number(info.lastInsertRowid))! };
  }

  get(id: number): TokenRecord | undefined {
    const row = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return row && toRecord(row);
  }

  list(): TokenRecord[] {
    return (this.db.prepare('SELECT * FROM tokens ORDER BY id').all() as TokenRow[]).map(toRecord);
  }

  revoke(id: number, now = Date.now()): TokenRecord {
    const result = writingDb(() =>
      this.db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id),
    );
    const record = this.get(id);
    if (!record) throw new AppError('TOKEN_NOT_FOUND', `no token with id ${id}`);
    if (result.changes === 0 && record.revokedAt === undefined) {
      throw new AppError('TOKEN_NOT_FOUND', `token ${id} could not be revoked`);
    }
    return record;
  }

  verify(presented: string, now = Date.now()): TokenInfo | undefined {
    const hash = hashToken(presented);
    if (this.configHash && timingSafeEqual(hash, this.configHash)) {
      return { id: undefined, name: 'REEF_ADMIN_TOKEN', scopes: ['*:admin'] };
    }
    // Looked up by hash: the time the search takes says nothing about the token itself.
    const row = this.db.prepare('SELECT * FROM tokens WHERE hash = ?').get(hash.toString('hex')) as
      | TokenRow
      | undefined;
    if (!row || !timingSafeEqual(Buffer.from(row.hash, 'hex'), hash)) return undefined;
    if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now)) return undefined;
    try {
      this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now, row.id);
    } catch (err) {
      // "Last used" is a note, not a condition: a database that cannot be written still lets a token read.
      if (!isAppError(translateDbError(err))) throw err;
    }
    return { id: row.id, name: row.name, scopes: JSON.parse(row.scopes) };
  }
}
