import { AppError } from '../errors.ts';
import { type CopyReport, copyRows, countRows, KEYS_TABLE, prepareTarget } from '../store/copy-database.ts';
import type { Database, Queryable } from '../store/database.ts';
import { DatabaseKeyStore, FileKeyStore, type KeyEntry } from '../store/key-store.ts';

/**
 * An installation's database and keys copied into another database (and key
 * store): `reef migrate-storage --to-database` and, into a new data folder,
 * `reef backup` on PostgreSQL. Blobs are not part of it: they are addressed by
 * their hash, copied (and verified) on their own.
 *
 * The caller holds the source still: under SQLite's exclusive lock, or inside
 * one `read` snapshot. The target must be empty after its migrations. Its
 * rows are written in one transaction, committed last: a copy that stops
 * halfway leaves a target with no rows, which the next run fills from the
 * start, never one that looks complete. Keys kept as files are written
 * before that commit, so the committed database never lacks them; a second
 * run accepts the files the first one wrote, byte for byte the same.
 */
export interface InstallationSide {
  db: Queryable;
  keys: FileKeyStore | DatabaseKeyStore;
}

export interface InstallationTarget {
  database: Database;
  keys: FileKeyStore | DatabaseKeyStore;
  /** For messages: "PostgreSQL at …", "the data folder's reef.db". */
  where: string;
}

export interface InstallationCopyReport {
  rows: CopyReport;
  keys: number;
}

export async function copyInstallation(
  source: InstallationSide,
  target: InstallationTarget,
  progress?: (table: string, rows: number) => void,
): Promise<InstallationCopyReport> {
  const schema = await prepareTarget(source.db, target.database, target.where);
  // Between two PostgreSQL databases the keys' rows go as they are (encrypted under the same key
  // encryption key); across engines they move through the key stores, files on one side.
  const sameKeyStore = source.db.dialect === 'postgres' && target.database.dialect === 'postgres';
  const skip = new Set(sameKeyStore ? [] : [KEYS_TABLE]);
  if (source.db.dialect === 'sqlite' && (await countRows(source.db, KEYS_TABLE)) > 0) {
    // The embedded engine keeps its keys as files; rows here are something reef did not write.
    throw new AppError(
      'STORAGE_SCHEMA_MISMATCH',
      "the data folder's database holds rows in its keys table, which the embedded engine never writes; nothing was copied",
    );
  }
  const keys = sameKeyStore ? [] : await inventoryOf(source.keys, target);
  if (!sameKeyStore && target.keys instanceof FileKeyStore) {
    await writeKeyFiles(target.keys, keys);
  }
  const rows = await target.database.transact(async () => {
    const copied = await copyRows(source.db, target.database, schema, { skip, progress });
    if (!sameKeyStore && target.keys instanceof DatabaseKeyStore) {
      for (const key of keys) await target.keys.put(key);
    }
    return copied;
  });
  return { rows, keys: sameKeyStore ? (rows[KEYS_TABLE] ?? 0) : keys.length };
}

async function inventoryOf(
  from: FileKeyStore | DatabaseKeyStore,
  target: InstallationTarget,
): Promise<KeyEntry[]> {
  const { keys, publicOnly } = await from.inventory();
  if (publicOnly.length > 0 && target.keys instanceof DatabaseKeyStore) {
    // The keys table holds pairs: a lone public key (kept so that what an older key signed
    // still verifies) would be dropped on the way.
    throw new AppError(
      'KEY_INVALID',
      `${publicOnly.join(', ')} ${publicOnly.length === 1 ? 'is a public key' : 'are public keys'} without ` +
        `a private half, which ${target.where} cannot keep; restore the private key beside it, or move the file ` +
        'out of the keys folder if nothing it verifies is still served',
      { details: { publicOnly } },
    );
  }
  return keys;
}

/**
 * Writes the keys into a key folder (private halves 0600). A folder holding
 * exactly these keys already (an earlier run that stopped before its commit)
 * is left as it is; one holding any other key is refused: its owner's keys
 * would mix with the copy's.
 */
async function writeKeyFiles(to: FileKeyStore | DatabaseKeyStore, keys: KeyEntry[]): Promise<void> {
  const held = (await to.inventory()).keys;
  const same = (a: KeyEntry, b: KeyEntry) =>
    a.kind === b.kind &&
    a.name === b.name &&
    a.state === b.state &&
    a.privatePem.equals(b.privatePem) &&
    a.publicPem.equals(b.publicPem);
  const foreign = held.filter((h) => !keys.some((k) => same(h, k)));
  if (foreign.length > 0) {
    throw new AppError(
      'STORAGE_TARGET_NOT_EMPTY',
      `${to.location} holds other keys already (${foreign.map((k) => k.name).join(', ')}); copy into a new data folder`,
    );
  }
  for (const key of keys) if (!held.some((h) => same(h, key))) await to.put(key);
}
