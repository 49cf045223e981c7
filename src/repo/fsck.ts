import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { streamOf } from '../apk/byte-source.ts';
import { readIndex } from '../apk/index-reader.ts';
import { readApk } from '../apk/read-apk.ts';
import { loadPublicKey, type PublicKeyEntry } from '../apk/signature.ts';
import type { S3Settings } from '../config.ts';
import { AppError, isAppError } from '../errors.ts';
import { PUBLISH_PREDICATE } from '../provenance/publish-statement.ts';
import { parseStatement } from '../provenance/statement.ts';
import { BundleVerifier, parseDsseBundle } from '../provenance/verify-bundle.ts';
import { type BlobInventory, type BlobStore, DiskBlobStore, digestOf } from '../store/blob-store.ts';
import { queryableOf, readSchema } from '../store/copy-database.ts';
import type { Queryable } from '../store/database.ts';
import { lockExclusive } from '../store/db.ts';
import { FileKeyStore, type KeyStore } from '../store/key-store.ts';
import type { PostgresDatabase } from '../store/postgres-database.ts';
import { S3BlobStore } from '../store/s3-blob-store.ts';
import { loadAttestationPublicKeys } from './keys.ts';

/**
 * `reef fsck`: checks a data folder against its database. Every stored blob
 * (packages, SBOMs, attestations) must hash to its address and have the size
 * the database records; every live index blob must exist, hash to its
 * address, parse, verify with the signing keys and list exactly the database's
 * packages with their C: and S:; every attestation of reef's must verify
 * (its DSSE signature) with an attestation key the folder holds and name its
 * package's SHA-256, as `reef verify` checks it. Index blobs replaced less
 * than the server's grace ago (superseded_index_blobs) are the server's to
 * collect, not garbage. Temp files, bytes nothing references and the index
 * files of reef before indexes were blobs (`indexes/`) are garbage:
 * reported, and removed only by `repair`, which needs the server stopped.
 *
 * Blobs are read and listed through the blob store, whichever engine holds
 * them: the data folder's `blobs/`, or the object store REEF_BLOB_URL names,
 * where an object's LastModified stands for a file's mtime. Bytes are hashed
 * as they stream, never held whole.
 *
 * It only reads (SQLite read-only, files read-only) and may run while the
 * server serves. A live server changes the folder under it, so when it sees
 * one (someone else has the database open) it ignores files younger than
 * `graceMs` as garbage and reports a damage only when a second pass sees it too.
 */

export type FsckProblemCode =
  | 'BLOB_MISSING'
  | 'BLOB_SIZE_MISMATCH'
  | 'BLOB_CORRUPT'
  | 'BLOB_SIZE_DISAGREES'
  | 'PACKAGE_UNREADABLE'
  | 'PACKAGE_CHECKSUM_MISMATCH'
  | 'PACKAGE_NOT_INDEXED'
  | 'INDEX_STALE'
  | 'INDEX_FILE_MISSING'
  | 'INDEX_SIZE_MISMATCH'
  | 'INDEX_CORRUPT'
  | 'INDEX_SIGNATURE_INVALID'
  | 'INDEX_SIGNERS_MISMATCH'
  | 'INDEX_ENTRIES_MISMATCH'
  | 'KEYS_MISSING'
  | 'ATTESTATION_UNVERIFIABLE';

export type FsckGarbageCode = 'TEMP_FILE' | 'UNREFERENCED_BLOB' | 'UNREFERENCED_INDEX_FILE' | 'STRAY_FILE';

export interface FsckProblem {
  code: FsckProblemCode;
  /** What is damaged: a blob digest, `repo/libc/arch`, or `repo/libc/arch/file.apk`. */
  subject: string;
  path?: string;
  message: string;
}

export interface FsckGarbage {
  code: FsckGarbageCode;
  path: string;
  bytes: number;
}

export interface FsckReport {
  dataDir: string;
  /** Another process (a server) had the database open; young files were left alone. */
  serverRunning: boolean;
  checked: {
    packages: number;
    sboms: number;
    attestations: number;
    /** Other blob references (publisher provenance documents, …). */
    otherBlobs: number;
    blobs: number;
    blobBytes: number;
    indexes: number;
    indexEntries: number;
  };
  problems: FsckProblem[];
  garbage: FsckGarbage[];
  /** Paths `repair` removed. */
  removed: string[];
  durationMs: number;
}

export interface FsckOptions {
  /** Remove garbage; refused (DATA_DIR_BUSY) while another process has the database open. */
  repair?: boolean;
  /** With a server running, files younger than this are work in progress, not garbage (default 10 min). */
  graceMs?: number;
  /** How long a second pass waits before confirming damage seen next to a live server. */
  recheckDelayMs?: number;
  /** The object store REEF_BLOB_URL names; unset, the blobs are in the data folder. */
  s3?: S3Settings;
  /**
   * The database REEF_DATABASE_URL names, with its key store; unset, the data
   * folder's reef.db and keys/. PostgreSQL's own storage is its server's to
   * check: fsck reads it in one snapshot, as it reads SQLite.
   */
  postgres?: { database: PostgresDatabase; keys: KeyStore };
}

const SHA256_RE = /^[0-9a-f]{64}$/;
const DEFAULT_GRACE_MS = 10 * 60 * 1000;

interface Snapshot {
  packages: PackageRow[];
  blobs: Map<string, { size: number; subjects: string[] }>;
  indexes: IndexRow[];
  /** Index blobs the server collects after a grace: replaced, or written by a build not recorded. */
  supersededIndexBlobs: Set<string>;
  attestationRows: AttestationRow[];
  sboms: number;
  attestations: number;
  /** Rows of other blob-referencing tables (publisher provenance, …). */
  otherBlobs: number;
}

interface PackageRow {
  id: number;
  repo: string;
  libc: string;
  arch: string;
  name: string;
  version: string;
  filename: string;
  sha256: string;
  size: number;
  checksum: string;
  published_at: number | null;
}

interface AttestationRow {
  package_id: number;
  sha256: string;
  key_name: string;
}

interface IndexRow {
  repo: string;
  libc: string;
  arch: string;
  sha256: string | null;
  size: number | null;
  signed_by: string | null;
  generation: number;
  built_generation: number;
}

export async function fsck(dataDir: string, options: FsckOptions = {}): Promise<FsckReport> {
  const started = performance.now();
  const dbPath = join(dataDir, 'reef.db');
  const postgres = options.postgres;
  if (!postgres && !existsSync(dbPath))
    throw new AppError('NOT_FOUND', `${dataDir} holds no reef database (reef.db)`);
  // An exclusive lock tells that no server has the database open. Repair holds it
  // throughout, so no server starts meanwhile; a check lets go at once. PostgreSQL has no
  // such lock: there, other connections to the database stand for a server.
  let exclusive = postgres ? undefined : lockExclusive(dbPath);
  const serverRunning = postgres ? (await postgres.database.otherSessions()) > 0 : exclusive === undefined;
  if (options.repair && serverRunning) {
    throw new DataDirBusyError(
      `another process (a running server?) has ${dbPath} open; stop it before 'reef fsck --repair'`,
    );
  }
  if (!options.repair) {
    exclusive?.close();
    exclusive = undefined;
  }
  // Not init(): it would create a missing bucket and empty data/tmp under a live server's uploads.
  const blobs = options.s3 ? new S3BlobStore(options.s3, dataDir) : new DiskBlobStore(dataDir);
  const where = options.s3 ? 'in the object store' : 'on disk';
  try {
    const graceMs = serverRunning ? (options.graceMs ?? DEFAULT_GRACE_MS) : 0;
    const keyStore = postgres?.keys ?? new FileKeyStore(dataDir);
    const snapshot = () =>
      postgres
        ? postgres.database.read(() => readSnapshot(postgres.database))
        : readSqliteSnapshot(dbPath, exclusive);
    const check = () => checkOnce({ dataDir, snapshot, graceMs, blobs, where, keyStore });
    let pass = await check();
    if (serverRunning && pass.problems.length > 0) {
      // A publish or delete may have moved things between our read of the database and of the files.
      await new Promise((r) => setTimeout(r, options.recheckDelayMs ?? 1000));
      const again = await check();
      const seen = new Set(pass.problems.map(problemKey));
      again.problems = again.problems.filter((p) => seen.has(problemKey(p)));
      pass = again;
    }
    const removed: string[] = [];
    if (options.repair) {
      for (const g of pass.garbage) {
        await g.remove();
        removed.push(g.item.path);
      }
    }
    return {
      dataDir,
      serverRunning,
      checked: pass.checked,
      problems: pass.problems,
      garbage: pass.garbage.map((g) => g.item),
      removed,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    exclusive?.close();
    blobs.close();
  }
}

/** Garbage found, and how `repair` removes it: a file, a blob or a stray through the blob store. */
interface FoundGarbage {
  item: FsckGarbage;
  remove(): Promise<void>;
}

interface CheckContext {
  dataDir: string;
  snapshot: () => Promise<Snapshot>;
  keyStore: KeyStore;
  graceMs: number;
  blobs: BlobStore & BlobInventory;
  /** Where blobs live, for messages: 'on disk' or 'in the object store'. */
  where: string;
}

const problemKey = (p: FsckProblem) => `${p.code} ${p.subject}`;

/** `repair` was asked for while another process has the database open. */
export class DataDirBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirBusyError';
  }
}

/**
 * The data folder's database read in one transaction: on the exclusive lock's
 * connection when it is held, else read-only, a consistent picture even while
 * a server writes.
 */
async function readSqliteSnapshot(dbPath: string, locked: Database.Database | undefined): Promise<Snapshot> {
  if (locked) return readSnapshot(queryableOf(locked));
  const db = new Database(dbPath, { readonly: true, fileMustExist: true, timeout: 5000 });
  try {
    db.exec('BEGIN');
    return await readSnapshot(queryableOf(db));
  } finally {
    db.close();
  }
}

/** What the database says is stored, read in the caller's snapshot. */
async function readSnapshot(db: Queryable): Promise<Snapshot> {
  const packages = await db.all<PackageRow>(
    `SELECT id, repo, libc, arch, name, version, filename, sha256, size, checksum, published_at
       FROM packages ORDER BY id`,
  );
  // Every other table with (package_id, sha256, size) names a blob: SBOMs, attestations,
  // and whatever later migrations add in the same shape.
  const tables = (await readSchema(db)).tables.filter(
    (t) => !['packages', 'indexes', 'superseded_index_blobs'].includes(t.name),
  );
  const side: Array<{ table: string; rows: SideRow[] }> = [];
  for (const { name, columns } of tables.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!['package_id', 'sha256', 'size'].every((c) => columns.includes(c))) continue;
    side.push({ table: name, rows: await db.all<SideRow>(`SELECT package_id, sha256, size FROM "${name}"`) });
  }
  const indexes = await db.all<IndexRow>(
    'SELECT repo, libc, arch, sha256, size, signed_by, generation, built_generation FROM indexes ORDER BY repo, libc, arch',
  );
  // A database not yet migrated to 0018 has no such table (its indexes are files of `indexes/`).
  const supersededIndexBlobs = new Set(
    (await readSchema(db)).tables.some((t) => t.name === 'superseded_index_blobs')
      ? (await db.all<{ sha256: string }>('SELECT sha256 FROM superseded_index_blobs')).map((r) => r.sha256)
      : [],
  );
  const attestationRows = tables.some((t) => t.name === 'attestations')
    ? await db.all<AttestationRow>(
        'SELECT package_id, sha256, key_name FROM attestations ORDER BY package_id',
      )
    : [];
  const blobs: Snapshot['blobs'] = new Map();
  const byId = new Map(packages.map((p) => [p.id, p]));
  const add = (sha256: string, size: number, subject: string) => {
    let b = blobs.get(sha256);
    if (!b) {
      b = { size, subjects: [] };
      blobs.set(sha256, b);
    }
    if (b.size !== size) b.size = -1; // rows disagree: reported below
    b.subjects.push(subject);
  };
  for (const p of packages) add(p.sha256, p.size, subjectOf(p));
  for (const { table, rows } of side) {
    for (const r of rows) add(r.sha256, r.size, `${table} of ${subjectOfId(byId, r.package_id)}`);
  }
  const count = (table: string) => side.find((t) => t.table === table)?.rows.length ?? 0;
  const otherBlobs = side
    .filter((t) => t.table !== 'sboms' && t.table !== 'attestations')
    .reduce((n, t) => n + t.rows.length, 0);
  return {
    packages,
    blobs,
    indexes,
    supersededIndexBlobs,
    attestationRows,
    sboms: count('sboms'),
    attestations: count('attestations'),
    otherBlobs,
  };
}

interface SideRow {
  package_id: number;
  sha256: string;
  size: number;
}

const subjectOf = (p: PackageRow) => `${p.repo}/${p.libc}/${p.arch}/${p.filename}`;
const subjectOfId = (byId: Map<number, PackageRow>, id: number) => {
  const p = byId.get(id);
  return p ? subjectOf(p) : `package #${id}`;
};

async function checkOnce({ dataDir, snapshot, keyStore, graceMs, blobs, where }: CheckContext): Promise<{
  checked: FsckReport['checked'];
  problems: FsckProblem[];
  garbage: FoundGarbage[];
}> {
  const snap = await snapshot();
  const problems: FsckProblem[] = [];
  const garbage: FoundGarbage[] = [];
  const removeFile = (path: string) => () => rm(path, { force: true });
  let blobBytes = 0;

  // Blobs: address == SHA-256 of the content == what the database recorded, size included.
  const packagesBySha = new Map<string, PackageRow>();
  for (const p of snap.packages) packagesBySha.set(p.sha256, p);
  /** Blobs whose bytes are what the database says: only these are worth reading further. */
  const intact = new Set<string>();
  for (const [sha256, ref] of snap.blobs) {
    // A digest the database mangled names no place in the store: nothing there to find.
    const path = SHA256_RE.test(sha256) ? blobs.locationOf(sha256) : undefined;
    const subject = `${sha256} (${ref.subjects.slice(0, 3).join(', ')}${ref.subjects.length > 3 ? ', …' : ''})`;
    if (ref.size === -1) {
      problems.push({
        code: 'BLOB_SIZE_DISAGREES',
        subject,
        path,
        message: 'rows of the database record different sizes for these bytes',
      });
    }
    const missing = () =>
      problems.push({
        code: 'BLOB_MISSING',
        subject,
        path,
        message: `referenced by the database, not ${where}`,
      });
    const size = path === undefined ? undefined : await blobs.size(sha256);
    if (size === undefined) {
      missing();
      continue;
    }
    blobBytes += size;
    if (ref.size !== -1 && size !== ref.size) {
      problems.push({
        code: 'BLOB_SIZE_MISMATCH',
        subject,
        path,
        message: `${size} bytes ${where}, the database records ${ref.size}`,
      });
      continue;
    }
    let actual: string;
    try {
      actual = (await digestOf(blobs.read(sha256))).sha256;
    } catch (err) {
      // Gone between the size and the read (a live server's delete): missing, not a failed fsck.
      if (await blobs.has(sha256)) throw err;
      missing();
      continue;
    }
    if (actual !== sha256) {
      problems.push({
        code: 'BLOB_CORRUPT',
        subject,
        path,
        message: `content hashes to ${actual}, not to its address`,
      });
      continue;
    }
    intact.add(sha256);
    const pkg = packagesBySha.get(sha256);
    if (pkg) {
      // The index's C: comes from the database; it must still describe these bytes.
      const bytes = blobs.read(sha256);
      try {
        const apk = await readApk(bytes, { requireDatahash: false });
        if (apk.checksum !== pkg.checksum) {
          problems.push({
            code: 'PACKAGE_CHECKSUM_MISMATCH',
            subject: subjectOf(pkg),
            path,
            message: `C: of the stored bytes is ${apk.checksum}, the database records ${pkg.checksum}`,
          });
        }
      } catch (err) {
        // An object store that stopped answering says nothing about the package.
        if (isAppError(err, 'STORAGE_UNAVAILABLE')) throw err;
        problems.push({
          code: 'PACKAGE_UNREADABLE',
          subject: subjectOf(pkg),
          path,
          message: `stored package does not parse: ${(err as Error).message}`,
        });
      } finally {
        // readApk may stop before the end: let go of the file or the object's download.
        bytes.destroy();
      }
    }
  }

  problems.push(...(await checkAttestations(keyStore, snap, intact, blobs)));

  // Indexes: the blob the row names, signed by the current keys, listing exactly the database's packages.
  const keys = keyStore instanceof FileKeyStore ? await loadIndexKeys(dataDir) : await indexKeysOf(keyStore);
  if (keys.length === 0 && snap.indexes.some((i) => i.sha256)) {
    problems.push({
      code: 'KEYS_MISSING',
      subject: 'keys',
      path: join(dataDir, 'keys'),
      message: 'no index signing public key (*.rsa.pub) to verify indexes with',
    });
  }
  const liveIndexBlobs = new Set<string>();
  let indexEntries = 0;
  for (const row of snap.indexes) {
    const id = `${row.repo}/${row.libc}/${row.arch}`;
    const expected = snap.packages.filter(
      (p) => p.repo === row.repo && p.libc === row.libc && (p.arch === row.arch || p.arch === 'noarch'),
    );
    const stale = row.generation > row.built_generation;
    if (stale) {
      problems.push({
        code: 'INDEX_STALE',
        subject: id,
        message: `the database changed after the last build (generation ${row.generation}, built ${row.built_generation}); 'reef serve' rebuilds it at start, or run 'reef reindex ${row.repo}'`,
      });
    }
    if (!row.sha256) {
      if (!stale && expected.length > 0) {
        problems.push({
          code: 'INDEX_FILE_MISSING',
          subject: id,
          message: `no index recorded, but ${expected.length} packages belong in it`,
        });
      }
      continue;
    }
    liveIndexBlobs.add(row.sha256);
    // A digest the database mangled names no place in the store.
    const path = SHA256_RE.test(row.sha256) ? blobs.locationOf(row.sha256) : undefined;
    const missing = () =>
      problems.push({
        code: 'INDEX_FILE_MISSING',
        subject: id,
        path,
        message: `the database names index blob ${row.sha256}, which is not ${where}`,
      });
    if (path === undefined || !(await blobs.has(row.sha256))) {
      missing();
      continue;
    }
    let bytes: Buffer;
    try {
      // An index is read whole to parse; tens of MB at the most.
      bytes = await blobs.readAll(row.sha256);
    } catch (err) {
      // Gone between the check and the read (a live server's collection): missing, not a failed fsck.
      if (await blobs.has(row.sha256)) throw err;
      missing();
      continue;
    }
    if (bytes.length !== row.size) {
      problems.push({
        code: 'INDEX_SIZE_MISMATCH',
        subject: id,
        path,
        message: `${bytes.length} bytes ${where}, the database records ${row.size}`,
      });
    }
    const { sha256: actual } = await digestOf(streamOf(bytes));
    if (actual !== row.sha256) {
      problems.push({
        code: 'INDEX_CORRUPT',
        subject: id,
        path,
        message: `content hashes to ${actual}, not to its address`,
      });
      continue;
    }
    let records: Awaited<ReturnType<typeof readIndex>>;
    try {
      records = await readIndex(streamOf(bytes), { keys, requireValidSignature: true });
    } catch (err) {
      const code = isAppError(err, 'INDEX_SIGNATURE_INVALID') || isAppError(err, 'INDEX_UNSIGNED');
      problems.push({
        code: code ? 'INDEX_SIGNATURE_INVALID' : 'INDEX_CORRUPT',
        subject: id,
        path,
        message: (err as Error).message,
      });
      continue;
    }
    const bad = records.verification?.checks.filter((c) => c.verdict === 'bad-signature') ?? [];
    if (bad.length > 0) {
      problems.push({
        code: 'INDEX_SIGNATURE_INVALID',
        subject: id,
        path,
        message: `signature(s) ${bad.map((c) => `${c.algorithm}.${c.keyName}`).join(', ')} do not verify`,
      });
    }
    const signers = [...new Set(records.signatures.map((s) => s.keyName))].sort().join(',');
    const recorded = (row.signed_by ?? '').split(',').filter(Boolean).sort().join(',');
    if (signers !== recorded) {
      problems.push({
        code: 'INDEX_SIGNERS_MISMATCH',
        subject: id,
        path,
        message: `signed by ${signers || 'nobody'}, the database records ${recorded || 'nobody'}`,
      });
    }
    indexEntries += records.records.length;
    const byNameVersion = new Map(expected.map((p) => [`${p.name}-${p.version}`, p]));
    const listed = new Set<string>();
    const diffs: string[] = [];
    for (const r of records.records) {
      const k = `${r.name}-${r.version}`;
      const p = byNameVersion.get(k);
      if (listed.has(k)) diffs.push(`${k} listed twice`);
      listed.add(k);
      if (!p) {
        if (!stale) diffs.push(`${k} listed, not in the database`);
        continue;
      }
      if (r.checksum !== p.checksum) diffs.push(`${k}: C:${r.checksum}, database ${p.checksum}`);
      if (r.size !== p.size) diffs.push(`${k}: S:${r.size}, database ${p.size}`);
    }
    if (!stale) {
      for (const p of expected) {
        if (!listed.has(`${p.name}-${p.version}`))
          diffs.push(`${p.name}-${p.version} in the database, not listed`);
      }
    }
    if (diffs.length > 0) {
      problems.push({
        code: 'INDEX_ENTRIES_MISMATCH',
        subject: id,
        path,
        message: `${diffs.slice(0, 10).join('; ')}${diffs.length > 10 ? `; and ${diffs.length - 10} more` : ''}`,
      });
    }
  }
  // Every published package has an index that should list it (design invariant 1); whether
  // that index does is the entries check above.
  for (const p of snap.packages) {
    if (p.published_at === null) continue;
    const hasIndex = snap.indexes.some(
      (i) =>
        i.repo === p.repo &&
        i.libc === p.libc &&
        (i.arch === p.arch || p.arch === 'noarch') &&
        (i.sha256 !== null || i.generation > i.built_generation),
    );
    if (!hasIndex) {
      problems.push({
        code: 'PACKAGE_NOT_INDEXED',
        subject: subjectOf(p),
        message: 'published, but no index of its repository, libc and arch exists',
      });
    }
  }

  // Garbage: what nothing references. Young files next to a live server are work in progress.
  const now = Date.now();
  const old = (mtimeMs: number) => now - mtimeMs >= graceMs;
  for (const f of await walk(join(dataDir, 'tmp'))) {
    if (old(f.mtimeMs))
      garbage.push({ item: { code: 'TEMP_FILE', path: f.path, bytes: f.size }, remove: removeFile(f.path) });
  }
  // Index files of reef before indexes were blobs: a server rebuilt each as a blob at start.
  for (const f of await walk(join(dataDir, 'indexes'))) {
    if (!old(f.mtimeMs)) continue;
    const name = f.path.slice(f.path.lastIndexOf('/') + 1);
    const code = name.endsWith('.tmp')
      ? 'TEMP_FILE'
      : /^[0-9a-f]{64}\.tar\.gz$/.test(name)
        ? 'UNREFERENCED_INDEX_FILE'
        : 'STRAY_FILE';
    garbage.push({ item: { code, path: f.path, bytes: f.size }, remove: removeFile(f.path) });
  }
  // Objects as files: an unreferenced object younger than the grace may be a publish whose row is not yet in.
  for await (const entry of blobs.list()) {
    if (
      entry.kind === 'blob' &&
      (snap.blobs.has(entry.sha256) ||
        liveIndexBlobs.has(entry.sha256) ||
        snap.supersededIndexBlobs.has(entry.sha256))
    )
      continue;
    if (!old(entry.modifiedAt)) continue;
    const item = { path: entry.location, bytes: entry.size };
    garbage.push(
      entry.kind === 'blob'
        ? { item: { code: 'UNREFERENCED_BLOB', ...item }, remove: () => blobs.delete(entry.sha256) }
        : { item: { code: 'STRAY_FILE', ...item }, remove: () => blobs.deleteStray(entry.location) },
    );
  }

  return {
    checked: {
      packages: snap.packages.length,
      sboms: snap.sboms,
      attestations: snap.attestations,
      otherBlobs: snap.otherBlobs,
      blobs: snap.blobs.size,
      blobBytes,
      indexes: snap.indexes.filter((i) => i.sha256).length,
      indexEntries,
    },
    problems,
    garbage,
  };
}

/**
 * reef's attestations: each must verify with an attestation key in
 * keys/attestation/ and be about its package's bytes. A data folder that
 * lost its key (a restore without keys/attestation/, or a key generated
 * afresh) serves attestations no client can verify; the blobs themselves
 * are intact, so only this check sees it.
 */
async function checkAttestations(
  keyStore: KeyStore,
  snap: Snapshot,
  intact: Set<string>,
  blobs: BlobStore & BlobInventory,
): Promise<FsckProblem[]> {
  if (snap.attestationRows.length === 0) return [];
  const problems: FsckProblem[] = [];
  const dir =
    keyStore instanceof FileKeyStore ? join(keyStore.dataDir, 'keys', 'attestation') : keyStore.location;
  const keys = await loadAttestationPublicKeys(keyStore);
  const held = new Set(keys.map((k) => k.name));
  // Key-signed, offline: no CA, no transparency log, as `reef verify` trusts reef's key.
  const verifier = new BundleVerifier({
    keys,
    identities: [],
    trustedRoot: undefined,
    identityThresholds: { tlog: 1, ctlog: 1, timestamp: 1 },
    keyThresholds: { tlog: 0, timestamp: 0 },
  });
  const byId = new Map(snap.packages.map((p) => [p.id, p]));
  for (const row of snap.attestationRows) {
    // A missing or corrupt blob is reported as such above.
    if (!intact.has(row.sha256)) continue;
    const pkg = byId.get(row.package_id);
    const path = blobs.locationOf(row.sha256);
    const unverifiable = (why: string) =>
      problems.push({
        code: 'ATTESTATION_UNVERIFIABLE',
        subject: pkg ? subjectOf(pkg) : `package #${row.package_id}`,
        path,
        message: `reef's attestation (signed by ${row.key_name}) ${why}`,
      });
    if (keys.length === 0) {
      unverifiable(`cannot be verified: ${dir} holds no attestation key; restore it from a backup`);
      continue;
    }
    // reef's own attestation, a JSON document of a few KB: read whole to parse.
    const bytes = await blobs.readAll(row.sha256);
    try {
      const { bundle, payload } = parseDsseBundle(bytes);
      const verdict = verifier.verify(bundle);
      if (!verdict.verified) {
        unverifiable(
          held.has(row.key_name)
            ? `does not verify: ${verdict.reason}`
            : `does not verify with the keys in ${dir} (${[...held].join(', ')}); restore ${row.key_name} ` +
                `(its .pem, or only its .pub.pem) from a backup: ${verdict.reason}`,
        );
        continue;
      }
      const statement = parseStatement(payload, PUBLISH_PREDICATE);
      const digests = statement.subject.map((s) => s.digest.sha256);
      if (pkg && !digests.includes(pkg.sha256)) {
        unverifiable(`is about sha256 ${digests.join(', ')}, not this package (${pkg.sha256})`);
      }
    } catch (err) {
      unverifiable(
        `does not parse: ${isAppError(err) ? `${err.code}: ${err.message}` : (err as Error).message}`,
      );
    }
  }
  return problems;
}

/** The index keys' public halves a database key store holds, every one it keeps. */
async function indexKeysOf(store: KeyStore): Promise<PublicKeyEntry[]> {
  const keys: PublicKeyEntry[] = [];
  for (const { name, pem } of await store.publicKeys('index')) {
    try {
      keys.push(loadPublicKey(name, pem));
    } catch {
      // As below: an unreadable key verifies nothing.
    }
  }
  return keys;
}

/** The public halves of the index signing keys (keys/*.rsa.pub), as apk finds them by name. */
async function loadIndexKeys(dataDir: string): Promise<PublicKeyEntry[]> {
  const dir = join(dataDir, 'keys');
  const names = await readdir(dir).catch(() => [] as string[]);
  const keys: PublicKeyEntry[] = [];
  for (const name of names.filter((n) => n.endsWith('.rsa.pub')).sort()) {
    try {
      keys.push(loadPublicKey(name, await readFile(join(dir, name))));
    } catch {
      // An unreadable key verifies nothing; the index checks report what it should have verified.
    }
  }
  return keys;
}

async function walk(dir: string): Promise<Array<{ path: string; size: number; mtimeMs: number }>> {
  const out: Array<{ path: string; size: number; mtimeMs: number }> = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(path)));
    else {
      const s = await stat(path).catch(() => undefined);
      if (s) out.push({ path, size: s.size, mtimeMs: s.mtimeMs });
    }
  }
  return out;
}
