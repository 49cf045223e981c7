import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../store/db.ts';

/**
 * API tokens. Only a SHA-256 of each token is stored; a presented token is
 * hashed and compared in constant time. Until per-repo scopes land, the one
 * admin token guards every write.
 */

export interface TokenInfo {
  id: number | 'config';
  name: string;
  scopes: string[];
}

const PREFIX = 'reef_';

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function generateToken(): string {
  return `${PREFIX}${randomBytes(32).toString('base64url')}`;
}

export class TokenService {
  private readonly configHash: Buffer | undefined;

  constructor(
    private readonly db: Db,
    configAdminToken: string | undefined,
  ) {
    this.configHash = configAdminToken ? hashToken(configAdminToken) : undefined;
  }

  /** Creates the bootstrap admin token when none is configured or stored; returns it once, in clear. */
  ensureAdminToken(now = Date.now()): string | undefined {
    if (this.configHash) return undefined;
    const row = this.db.prepare('SELECT 1 FROM tokens WHERE revoked_at IS NULL LIMIT 1').get();
    if (row) return undefined;
    const token = generateToken();
    this.db
      .prepare('INSERT INTO tokens (name, hash, scopes, created_at) VALUES (?, ?, ?, ?)')
      .run(
        'admin (generated at first start)',
        hashToken(token).toString('hex'),
        JSON.stringify(['admin']),
        now,
      );
    return token;
  }

  verify(presented: string, now = Date.now()): TokenInfo | undefined {
    const hash = hashToken(presented);
    if (this.configHash && timingSafeEqual(hash, this.configHash)) {
      return { id: 'config', name: 'REEF_ADMIN_TOKEN', scopes: ['admin'] };
    }
    // The lookup is by hash, so the timing of the index search says nothing about the token itself.
    const row = this.db
      .prepare('SELECT id, name, hash, scopes, expires_at, revoked_at FROM tokens WHERE hash = ?')
      .get(hash.toString('hex')) as
      | {
          id: number;
          name: string;
          hash: string;
          scopes: string;
          expires_at: number | null;
          revoked_at: number | null;
        }
      | undefined;
    if (!row || !timingSafeEqual(Buffer.from(row.hash, 'hex'), hash)) return undefined;
    if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now)) return undefined;
    this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now, row.id);
    return { id: row.id, name: row.name, scopes: JSON.parse(row.scopes) };
  }
}
