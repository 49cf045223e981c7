import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database, { type Statement } from 'better-sqlite3';
import { AppError } from '../errors.ts';
import type { MigrationResult } from './database.ts';

export type { MigrationResult };

export type Db = Database.Database;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/**
 * Opens the SQLite database in WAL mode. synchronous=FULL: a publish is only
 * acknowledged after its row is on disk (design invariant 7).
 */
/**
 * SQLite's own out-of-space result as reef's STORAGE_FULL (507), and a
 * database it may not write (SQLITE_READONLY and its extended codes: a
 * read-only file or file system; SQLITE_CANTOPEN: the journal or WAL
 * cannot be created beside it) as STORAGE_READ_ONLY (503); other errors
 * pass unchanged. Called where a write runs.
 */
/** Runs a database write, its storage failures (full, read-only) thrown as reef's codes. */
export function writingDb<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw translateDbError(err);
  }
}

export function translateDbError(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_FULL') {
    return new AppError(
      'STORAGE_FULL',
      'the server has no storage space left for its database; try again later',
      {
        cause: err,
      },
    );
  }
  if (typeof code === 'string' && /^SQLITE_(READONLY|CANTOPEN)(_|$)/.test(code)) {
    return new AppError(
      'STORAGE_READ_ONLY',
      "the server's database is read-only (its file or the data folder cannot be written); writes fail until it is writable again",
      { cause: err },
    );
  }
  return err;
}

export function openDb(path: string): Db {
  const db = new Database(path);
  try {
    // WAL needs its -wal and -shm files: on a read-only data folder this is where the start stops.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    db.close();
    throw translateDbError(err);
  }
  return db;
}

/** Applies migrations/NNNN_name.sql in order, each in its own transaction, tracked by version. */
export function migrate(db: Db, dir = MIGRATIONS_DIR): MigrationResult {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
  const done = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map(
      (r) => r.version,
    ),
  );
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort();
  const applied: string[] = [];
  for (const file of files) {
    const version = Number(file.slice(0, 4));
    if (done.has(version)) continue;
    const sql = readFileSync(`${dir}/${file}`, 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        version,
        file,
        Date.now(),
      );
    })();
    applied.push(file);
  }
  // A migration may rewrite or index a whole table (tens of MB at a million packages): fold those
  // pages into the database and cut the WAL back, rather than leave it that size on disk.
  if (applied.length > 0) db.pragma('wal_checkpoint(TRUNCATE)');
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  return { applied, version: row.v ?? 0 };
}

/** Statements prepared once per SQL text: compiling costs more than running these queries. */
export function statementCache(db: Db): (sql: string) => Statement {
  const statements = new Map<string, Statement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
}

/**
 * The database opened with SQLite's exclusive lock, held until closed, or
 * undefined when another process (a running server) has it open: what
 * commands that must run alone take first.
 */
export function lockExclusive(path: string): Database.Database | undefined {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 200 });
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    return db;
  } catch {
    db?.close();
    return undefined;
  }
}

/**
 * Every blob a row names: packages, SBOMs, attestations, publisher provenance
 * (the tables isBlobReferenced asks). A copy of the database is whole only
 * with all of these beside it.
 */
export function listReferencedBlobs(db: Db): string[] {
  return (db.prepare(REFERENCED_BLOBS_SQL).all() as Array<{ sha256: string }>).map((r) => r.sha256);
}

/** listReferencedBlobs's query, in the SQL both engines share: one list for either. */
export const REFERENCED_BLOBS_SQL = `SELECT sha256 FROM packages UNION SELECT sha256 FROM sboms UNION SELECT sha256 FROM attestations
         UNION SELECT sha256 FROM publisher_provenance ORDER BY sha256`;
