import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { AppError } from '../errors.ts';
import { type BlobStore, DiskBlobStore, readdirIfExists } from '../store/blob-store.ts';
import type { Database as Storage } from '../store/database.ts';
import type { Db } from '../store/db.ts';
import { listReferencedBlobs, REFERENCED_BLOBS_SQL } from '../store/db.ts';
import { type DatabaseKeyStore, FileKeyStore } from '../store/key-store.ts';
import { SqliteDatabase } from '../store/sqlite-database.ts';
import { copyBlob, copyBlobs } from './copy-blobs.ts';
import { copyInstallation } from './copy-installation.ts';

/**
 * A consistent copy of a data folder that `reef serve --data DEST` can start
 * from, taken while reef runs, wherever its blobs are kept (an object
 * store's are copied into the backup's blobs/ folder, each verified against
 * its address). Order matters: blobs are copied first, then
 * SQLite's online backup takes a snapshot, then every blob that snapshot
 * references (packages, SBOMs, attestations, publisher provenance) and the
 * first pass missed is copied. The live index blobs the snapshot names are
 * copied when still stored; a restored server rebuilds any that are missing
 * (or replaced meanwhile) at start, from the copied database. Then the whole keys/ folder:
 * index keys, keys/retired/ and keys/attestation/. Without the attestation
 * key every stored attestation would be unverifiable, and a server refuses
 * to start on such a copy (loadOrCreateAttestationKey).
 */

export interface BackupReport {
  dest: string;
  packages: number;
  blobs: number;
  bytes: number;
  /** Live index blobs copied (the rest are rebuilt when the copy is served). */
  indexes: number;
  /** Active index signing keys. */
  keys: number;
  retiredKeys: number;
  attestationKeys: number;
}

export async function backupDataDir(
  db: Db,
  dataDir: string,
  dest: string,
  blobs: BlobStore,
): Promise<BackupReport> {
  await createEmptyDest(dest);
  // A backup is a data folder: blobs kept in an object store land in its blobs/ folder.
  const destBlobs = new DiskBlobStore(dest);
  const copied = new Set<string>();
  let bytes = 0;

  const copyOne = async (sha256: string): Promise<boolean> => {
    if (!(blobs instanceof DiskBlobStore)) {
      if ((await blobs.size(sha256)) === undefined) return false;
      bytes += await copyBlob(blobs, destBlobs, sha256);
      copied.add(sha256);
      return true;
    }
    const from = blobs.pathOf(sha256);
    const to = destBlobs.pathOf(sha256);
    try {
      await mkdir(dirname(to), { recursive: true });
      await copyFile(from, to, constants.COPYFILE_EXCL);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    bytes += (await stat(to)).size;
    copied.add(sha256);
    return true;
  };

  // Pass 1: whatever is stored now (in an object store: what the database references now).
  if (blobs instanceof DiskBlobStore) {
    for await (const entry of blobs.list()) if (entry.kind === 'blob') await copyOne(entry.sha256);
  } else {
    await destBlobs.init();
    for (const sha256 of listReferencedBlobs(db)) await copyOne(sha256);
  }

  // The snapshot: from here on, the backup is the database as of this instant.
  const dbPath = join(dest, 'reef.db');
  await db.backup(dbPath);
  const snapshot = new Database(dbPath, { readonly: true });
  let packages: number;
  let indexRows: Array<{ sha256: string }>;
  try {
    packages = (snapshot.prepare('SELECT count(*) AS n FROM packages').get() as { n: number }).n;
    // Pass 2: blobs written between pass 1 and the snapshot. A publish stores its package,
    // SBOM and attestation blobs before its row commits, so any of them can be new here.
    for (const sha256 of listReferencedBlobs(snapshot)) {
      if (copied.has(sha256)) continue;
      if (!(await copyOne(sha256))) {
        throw new AppError(
          'INTERNAL',
          `blob ${sha256} was deleted while the backup ran; run the backup again into an empty folder`,
        );
      }
    }
    indexRows = snapshot
      .prepare('SELECT sha256 FROM indexes WHERE sha256 IS NOT NULL')
      .all() as typeof indexRows;
  } finally {
    snapshot.close();
  }

  // Index blobs: the copy of pass 1 (a data folder's), or now. One gone meanwhile (collected after
  // a newer index replaced it) is no loss: the restored server rebuilds it from the snapshot.
  let indexes = 0;
  for (const { sha256 } of indexRows) {
    if (copied.has(sha256) || (await copyOne(sha256))) indexes++;
  }

  const keys = await copyKeys(join(dataDir, 'keys'), join(dest, 'keys'));
  return {
    dest,
    packages,
    blobs: copied.size,
    bytes,
    indexes,
    keys: keys.filter((f) => !f.includes('/') && f.endsWith('.rsa')).length,
    retiredKeys: keys.filter((f) => f.startsWith('retired/') && f.endsWith('.rsa')).length,
    attestationKeys: keys.filter((f) => f.startsWith('attestation/') && isPrivateKeyFile(f)).length,
  };
}

/** Private halves: index keys (`.rsa`) and attestation keys (`.pem`, not `.pub.pem`). */
function isPrivateKeyFile(name: string): boolean {
  return name.endsWith('.rsa') || (name.endsWith('.pem') && !name.endsWith('.pub.pem'));
}

/**
 * Copies the keys folder whole, subfolders included, and returns the paths
 * copied (relative, `/`-separated). Every file goes, not only the kinds reef
 * knows today: a key left behind is found missing only when a restore needs it.
 * Folders are 0700 and private keys 0600 in the copy, whatever the source says.
 */
async function copyKeys(from: string, to: string, rel = ''): Promise<string[]> {
  const entries = await readdirIfExists(from);
  if (entries.length === 0) return [];
  await mkdir(to, { recursive: true, mode: 0o700 });
  await chmod(to, 0o700);
  const copiedFiles: string[] = [];
  for (const name of entries.sort()) {
    // writeFileAtomic's temp files: a half-written key, not a key.
    if (name.startsWith('.') && name.endsWith('.tmp')) continue;
    const source = join(from, name);
    // stat, not lstat: a key linked in from elsewhere (a secrets mount) is copied as its content.
    const st = await stat(source);
    if (st.isDirectory()) {
      copiedFiles.push(...(await copyKeys(source, join(to, name), `${rel}${name}/`)));
    } else if (st.isFile()) {
      const target = join(to, name);
      await copyFile(source, target, constants.COPYFILE_EXCL);
      await chmod(target, isPrivateKeyFile(name) ? 0o600 : st.mode & 0o777);
      copiedFiles.push(`${rel}${name}`);
    }
  }
  return copiedFiles;
}

/**
 * A backup of an installation on PostgreSQL, as a data folder: the rows
 * copied into a new SQLite database (the copy `reef migrate-storage
 * --to-database` makes), the keys decrypted into keys/ (private keys 0600),
 * the blobs the database references into blobs/, each verified. So `reef
 * serve --data DEST` starts from it, and `reef migrate-storage` moves it
 * back to PostgreSQL.
 *
 * Rows and keys are read in one snapshot (REPEATABLE READ), so the copy is
 * of one instant while replicas keep writing; blobs are content-addressed
 * and never change, so they are copied after it, those the snapshot names.
 * The database is written as reef.db.partial and renamed to reef.db last:
 * a backup that stops early is no data folder a server would start on.
 */
export async function backupDatabase(
  database: Storage,
  keys: DatabaseKeyStore,
  dest: string,
  blobs: BlobStore,
): Promise<BackupReport> {
  await createEmptyDest(dest);
  const partial = join(dest, 'reef.db.partial');
  const target = new SqliteDatabase(partial);
  let copied: { packages: number; sha256s: string[]; keys: number };
  try {
    await target.migrate();
    const files = new FileKeyStore(dest);
    copied = await database.read(async () => {
      const report = await copyInstallation(
        { db: database, keys },
        { database: target, keys: files, where: partial },
      );
      const sha256s = (await database.all<{ sha256: string }>(REFERENCED_BLOBS_SQL)).map((r) => r.sha256);
      return { packages: report.rows.packages ?? 0, sha256s, keys: report.keys };
    });
  } finally {
    await target.close();
  }
  const destBlobs = new DiskBlobStore(dest);
  await destBlobs.init();
  let blobReport: Awaited<ReturnType<typeof copyBlobs>>;
  try {
    blobReport = await copyBlobs(blobs, destBlobs, copied.sha256s);
  } finally {
    destBlobs.close();
  }
  await rename(partial, join(dest, 'reef.db'));
  const inventory = (await new FileKeyStore(dest).inventory()).keys;
  return {
    dest,
    packages: copied.packages,
    blobs: blobReport.blobs,
    bytes: blobReport.bytes,
    indexes: 0,
    keys: inventory.filter((k) => k.kind === 'index' && k.state === 'active').length,
    retiredKeys: inventory.filter((k) => k.kind === 'index' && k.state === 'retired').length,
    attestationKeys: inventory.filter((k) => k.kind === 'attestation').length,
  };
}

/** The backup's folder, created private, or refused when it holds anything: a backup never mixes with other files. */
async function createEmptyDest(dest: string): Promise<void> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  if ((await readdir(dest)).length > 0) {
    throw new AppError('BAD_REQUEST', `backup destination ${dest} is not empty`);
  }
}
