import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.ts';
import { AuditLog } from '../repo/audit.ts';
import { TokenService } from '../repo/tokens.ts';
import { type Db, migrate, openDb } from '../store/db.ts';
import { PackageStore } from '../store/package-store.ts';
import { codeOf, type Output } from './command.ts';

/**
 * The light path for token and repo commands: the database, migrated, and the
 * few services over it; no signing keys, no index rebuild. SQLite in WAL mode
 * lets this run next to a live server on the same data folder.
 */
export interface LocalData {
  db: Db;
  store: PackageStore;
  tokens: TokenService;
  audit: AuditLog;
}

export async function withLocalData<T>(
  config: Config,
  stderr: Output,
  run: (data: LocalData) => T | Promise<T>,
): Promise<T> {
  mkdirSync(config.dataDir, { recursive: true });
  const db = openDb(join(config.dataDir, 'reef.db'));
  try {
    const migrated = migrate(db);
    if (migrated.applied.length > 0) {
      stderr.write(`reef: migrated ${config.dataDir}: ${migrated.applied.join(', ')}\n`);
    }
    return await run({
      db,
      store: new PackageStore(db, config.defaultArches),
      tokens: new TokenService(db, config.adminToken),
      audit: new AuditLog(db),
    });
  } finally {
    db.close();
  }
}

/**
 * Records one CLI change in the audit log, as the HTTP layer does for API
 * writes: no token (the operator has the data folder), remote address `cli`.
 */
export function cliAuditor(audit: AuditLog, action: string, target: string) {
  const base = { token: undefined, action, remoteAddr: 'cli' };
  return {
    ok(finalTarget = target, detail?: Record<string, unknown>) {
      audit.record({ ...base, target: finalTarget, result: 'ok', detail });
    },
    rejected(err: unknown) {
      audit.record({ ...base, target, result: 'rejected', code: codeOf(err) });
    },
  };
}
