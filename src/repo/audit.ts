import type { Database } from '../store/database.ts';
import { type Db, writingDb } from '../store/db.ts';
import { sqliteOf } from '../store/sqlite-database.ts';
import type { TokenInfo } from './tokens.ts';

/** The append-only record of every write: who, what, when, from where, and how it ended. */

export interface AuditEntry {
  id: number;
  at: number;
  tokenId: number | undefined;
  tokenName: string | undefined;
  action: string;
  target: string;
  remoteAddr: string | undefined;
  result: 'ok' | 'rejected';
  code: string | undefined;
  detail: Record<string, unknown> | undefined;
}

export interface AuditEvent {
  token: TokenInfo | undefined;
  action: string;
  target: string;
  remoteAddr?: string;
  result: 'ok' | 'rejected';
  code?: string;
  /** Facts worth keeping (sha256, outcome); never secrets. */
  detail?: Record<string, unknown>;
}

interface AuditRow {
  id: number;
  at: number;
  token_id: number | null;
  token_name: string | null;
  action: string;
  target: string;
  remote_addr: string | null;
  result: 'ok' | 'rejected';
  code: string | null;
  detail: string | null;
}

export class AuditLog {
  private readonly db: Db;

  constructor(private readonly database: Database) {
    this.db = sqliteOf(database);
  }

  record(event: AuditEvent, now = Date.now()): void {
    writingDb(() =>
      this.db
        .prepare(
          `INSERT INTO audit_log (at, token_id, token_name, action, target, remote_addr, result, code, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          now,
          event.token?.id ?? null,
          event.token?.name ?? null,
          event.action,
          event.target,
          event.remoteAddr ?? null,
          event.result,
          event.code ?? null,
          event.detail ? JSON.stringify(event.detail) : null,
        ),
    );
  }

  /** Newest first, paged by id. */
  list(limit: number, beforeId = Number.MAX_SAFE_INTEGER): AuditEntry[] {
    const rows = this.db
      .prepare('SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?')
      .all(beforeId, limit) as AuditRow[];
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      tokenId: r.token_id ?? undefined,
      tokenName: r.token_name ?? undefined,
      action: r.action,
      target: r.target,
      remoteAddr: r.remote_addr ?? undefined,
      result: r.result,
      code: r.code ?? undefined,
      detail: r.detail ? JSON.parse(r.detail) : undefined,
    }));
  }
}
