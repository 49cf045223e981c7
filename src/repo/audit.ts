import type { AuditEntry, AuditStore } from '../store/audit-store.ts';
import type { TokenInfo } from './tokens.ts';

/** The append-only record of every write: who, what, when, from where, and how it ended. */

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

export class AuditLog {
  constructor(private readonly store: AuditStore) {}

  async record(event: AuditEvent, now = Date.now()): Promise<void> {
    await this.store.append({
      at: now,
      tokenId: event.token?.id,
      tokenName: event.token?.name,
      action: event.action,
      target: event.target,
      remoteAddr: event.remoteAddr,
      result: event.result,
      code: event.code,
      detail: event.detail,
    });
  }

  /** Newest first, paged by id. */
  list(limit: number, beforeId?: number): Promise<AuditEntry[]> {
    return this.store.list(limit, beforeId);
  }
}
