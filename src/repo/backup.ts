import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { AppError } from '../errors.ts';
import type { Db } from '../store/db.ts';

/**
 * A consistent copy of a data folder that `reef serve --data DEST` can start
 * from, taken while reef runs. Order matters: blobs are copied first, then
 * SQLite's online backup takes a snapshot, then every blob that snapshot
 * references and the first pass missed is copied. Index files are copied
 * when present; a restored server rebuilds any that are missing.
 */

export interface BackupReport {
  dest: string;
  packages: number;
  blobs: number;
  bytes: number;
  indexes: number;
  keys: number;
}

export async function backupDataDir(db: Db, dataDir: string, dest: string): Promise<BackupReport> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  if ((await readdir(dest)).length > 0) {
    throw new AppError('BAD_REQUEST', `backup destination ${dest} is not empty`);
  }
  const blobsFrom = join(dataDir, 'blobs', 'sha256');
  const blobsTo = join(dest, 'blobs', 'sha256');
  const copied = new Set<string>();
  let bytes = 0;

  const copyBlob = async (sha256: string): Promise<boolean> => {
    const from = join(blobsFrom, sha256.slice(0, 2), sha256);
    const to = join(blobsTo, sha256.slice(0, 2), sha256);
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

  // Pass 1: whatever is stored now.
  for (const prefix of await readdirIfExists(blobsFrom)) {
    for (const sha256 of await readdirIfExists(join(blobsFrom, prefix))) {
      if (/^[0-9a-f]{64}$/.test(sha256)) await copyBlob(sha256);
    }
  }

  // The snapshot: from here on, the backup is the database as of this instant.
  const dbPath = join(dest, 'reef.db');
  await db.backup(dbPath);
  const snapshot = new Database(dbPath, { readonly: true });
  let packages: number;
  let indexRows: Array<{ repo: string; libc: string; arch: string; sha256: string }>;
  try {
    const referenced = snapshot.prepare('SELECT DISTINCT sha256 FROM packages').all() as Array<{
      sha256: string;
    }>;
    packages = (snapshot.prepare('SELECT count(*) AS n FROM packages').get() as { n: number }).n;
    // Pass 2: blobs written between pass 1 and the snapshot.
    for (const { sha256 } of referenced) {
      if (copied.has(sha256)) continue;
      if (!(await copyBlob(sha256))) {
        throw new AppError(
          'INTERNAL',
          `blob ${sha256} was deleted while the backup ran; run the backup again into an empty folder`,
        );
      }
    }
    indexRows = snapshot
      .prepare('SELECT repo, libc, arch, sha256 FROM indexes WHERE sha256 IS NOT NULL')
      .all() as typeof indexRows;
  } finally {
    snapshot.close();
  }

  let indexes = 0;
  for (const row of indexRows) {
    const rel = join('indexes', row.repo, row.libc, row.arch, `${row.sha256}.tar.gz`);
    try {
      await mkdir(dirname(join(dest, rel)), { recursive: true });
      await copyFile(join(dataDir, rel), join(dest, rel));
      indexes++;
    } catch (err) {
      // Replaced by a newer index meanwhile: the restored server rebuilds it from the snapshot.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  let keys = 0;
  for (const sub of ['keys', join('keys', 'retired')]) {
    const from = join(dataDir, sub);
    const files = (await readdirIfExists(from)).filter((f) => f.endsWith('.rsa') || f.endsWith('.rsa.pub'));
    if (files.length === 0) continue;
    await mkdir(join(dest, sub), { recursive: true, mode: 0o700 });
    for (const file of files) {
      await copyFile(join(from, file), join(dest, sub, file));
      // Private keys stay readable by the owner only.
      if (file.endsWith('.rsa')) await chmod(join(dest, sub, file), 0o600);
      if (sub === 'keys' && file.endsWith('.rsa')) keys++;
    }
  }
  return { dest, packages, blobs: copied.size, bytes, indexes, keys };
}

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
