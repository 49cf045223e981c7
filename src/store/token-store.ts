import type { Database } from './database.ts';

/** A stored API token, without its hash. */
export interface TokenRecord {
  id: number;
  name: string;
  scopes: string[];
  createdAt: number;
  expiresAt: number | undefined;
  revokedAt: number | undefined;
  lastUsedAt: number | undefined;
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

export interface NewToken {
  name: string;
  hash: string;
  scopes: string[];
  createdAt: number;
  expiresAt: number | undefined;
}

/** The tokens table: a SHA-256 (hex) of each token, never the token. */
export class TokenStore {
  constructor(private readonly database: Database) {}

  /** Whether any token is not revoked (expired ones count). */
  async anyUnrevoked(): Promise<boolean> {
    return (await this.database.get('SELECT 1 FROM tokens WHERE revoked_at IS NULL LIMIT 1')) !== undefined;
  }

  async insert(token: NewToken): Promise<TokenRecord> {
    const row = await this.database.get<TokenRow>(
      'INSERT INTO tokens (name, hash, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING *',
      [token.name, token.hash, JSON.stringify(token.scopes), token.createdAt, token.expiresAt ?? null],
    );
    return toRecord(row!);
  }

  /**
   * Inserts `token` unless some token is not revoked, in one decision across
   * replicas: several starting at once on an empty database create one
   * bootstrap token, not one each. Resolves to undefined when one existed.
   */
  insertFirst(token: NewToken): Promise<TokenRecord | undefined> {
    return this.database.transact(async () => {
      await this.database.lockForTransaction('tokens:first');
      if (await this.anyUnrevoked()) return undefined;
      return this.insert(token);
    });
  }

  async get(id: number): Promise<TokenRecord | undefined> {
    const row = await this.database.get<TokenRow>('SELECT * FROM tokens WHERE id = ?', [id]);
    return row && toRecord(row);
  }

  async list(): Promise<TokenRecord[]> {
    return (await this.database.all<TokenRow>('SELECT * FROM tokens ORDER BY id')).map(toRecord);
  }

  /** The token stored under `hash`, with the hash as stored (for the caller's constant-time check). */
  async byHash(hash: string): Promise<(TokenRecord & { hash: string }) | undefined> {
    const row = await this.database.get<TokenRow>('SELECT * FROM tokens WHERE hash = ?', [hash]);
    return row && { ...toRecord(row), hash: row.hash };
  }

  /** Marks a token revoked unless it is already; resolves to whether this call revoked it. */
  async revoke(id: number, now: number): Promise<boolean> {
    return (
      (await this.database.run('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [
        now,
        id,
      ])) > 0
    );
  }

  async touch(id: number, now: number): Promise<void> {
    await this.database.run('UPDATE tokens SET last_used_at = ? WHERE id = ?', [now, id]);
  }
}
