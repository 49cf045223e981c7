import { mkdirSync } from 'node:fs';
import type { Config } from '../config.ts';
import { AuditLog } from '../repo/audit.ts';
import { TokenService } from '../repo/tokens.ts';
import { AuditStore } from '../store/audit-store.ts';
import type { Database } from '../store/database.ts';
import { openDatabase } from '../store/open-database.ts';
import { PackageStore } from '../store/package-store.ts';
import { TokenStore } from '../store/token-store.ts';
import { codeOf, type Output } from './command.ts';

/**
 * The light path for token and repo commands: the database, migrated, and the
 * few services over it; no signing keys, no index rebuild. SQLite in WAL mode
 * lets this run next to a live server on the same data folder.
 */
export interface LocalData {
  database: Database;
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
  const { database, applied } = await openDatabase(config);
  try {
    if (applied.length > 0) stderr.write(`reef: migrated the database: ${applied.join(', ')}\n`);
    return await run({
      database,
      store: new PackageStore(database, config.defaultArches),
      tokens: new TokenService(new TokenStore(database), config.adminToken),
      audit: new AuditLog(new AuditStore(database)),
    });
  } finally {
    await database.close();
  }
}

/**
 * Records one CLI change in the audit log, as the HTTP layer does for API
 * writes: no token (the operator has the data folder), remote address `cli`.
 */
export function cliAuditor(audit: AuditLog, action: string, target: string) {
  const base = { token: undefined, action, remoteAddr: 'cli' };
  return {
    async ok(finalTarget = target, detail?: Record<string, unknown>) {
      await audit.record({ ...base, target: finalTarget, result: 'ok', detail });
    },
    async rejected(err: unknown) {
      await audit.record({ ...base, target, result: 'rejected', code: codeOf(err) });
    },
  };
}
