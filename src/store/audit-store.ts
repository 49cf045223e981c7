import type { Database } from './database.ts';

/** One line of the audit log as stored and listed. */
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

/** The audit_log table: appended to, never changed; read newest first. */
export class AuditStore {
  constructor(private readonly database: Database) {}

  async append(entry: Omit<AuditEntry, 'id'>): Promise<void> {
    await this.database.run(
      `INSERT INTO audit_log (at, token_id, token_name, action, target, remote_addr, result, code, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        entry.at,
        entry.tokenId ?? null,
        entry.tokenName ?? null,
        entry.action,
        entry.target,
        entry.remoteAddr ?? null,
        entry.result,
        entry.code ?? null,
        entry.detail ? JSON.stringify(entry.detail) : null,
      ],
    );
  }

  /** Newest first, paged by id. */
  async list(limit: number, beforeId = Number.MAX_SAFE_INTEGER): Promise<AuditEntry[]> {
    const rows = await this.database.all<AuditRow>(
      'SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?',
      [beforeId, limit],
    );
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
