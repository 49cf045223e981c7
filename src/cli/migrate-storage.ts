import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, loadConfig } from '../config.ts';
import { AuditLog } from '../repo/audit.ts';
import { type BlobCopyReport, copyBlobs } from '../repo/copy-blobs.ts';
import { copyInstallation, type InstallationCopyReport } from '../repo/copy-installation.ts';
import { AuditStore } from '../store/audit-store.ts';
import { queryableOf } from '../store/copy-database.ts';
import type { Database, Queryable } from '../store/database.ts';
import { lockExclusive, migrate, openDb, REFERENCED_BLOBS_SQL } from '../store/db.ts';
import { KeyEncryption } from '../store/key-encryption.ts';
import { DatabaseKeyStore, FileKeyStore } from '../store/key-store.ts';
import { openBlobStore } from '../store/open-blob-store.ts';
import { PostgresDatabase } from '../store/postgres-database.ts';
import { SqliteDatabase } from '../store/sqlite-database.ts';
import { redactUrl } from '../url-credentials.ts';
import { type CliContext, CliError, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { cliAuditor } from './local-data.ts';
import { migrateStorageOptions } from './options.ts';

const USAGE = `usage: reef migrate-storage [--to BLOBS] [--to-database DATABASE] [options]

Moves an installation, whole or in parts, with the server stopped: its blobs
(--to), its database and signing keys (--to-database), or both in one run.
What moves is read from where the configuration keeps it now: the data
folder, or REEF_BLOB_URL and REEF_DATABASE_URL.

--to s3://BUCKET[/PREFIX] | data-folder
  Copies every blob the database references (packages, SBOMs, attestations,
  publisher provenance) to the object store or into the data folder, each
  one verified against its SHA-256 on the way. The object store's
  credentials, region and endpoint come from the AWS variables, as for
  'reef serve'. Run it again after an interruption: blobs already there are
  skipped.

--to-database postgres://USER@HOST/DB | sqlite
  Copies every table's rows, ids and values unchanged, into a PostgreSQL
  database, or into reef.db in the data folder (sqlite), which must be new or
  empty: an interrupted copy leaves it empty, to run again. The signing and
  attestation keys go along: from the data folder's keys/ into the database,
  encrypted with REEF_KEY_ENCRYPTION_KEY(_FILE), which then must be set (and
  is needed to start reef on it); back into keys/ (private keys 0600).

Blobs are copied before the database, so the copy never names a blob its
store lacks. The source is left as it was. Then start reef with the new
REEF_BLOB_URL and REEF_DATABASE_URL (or without them, for the data folder)
and check with 'reef fsck'.

options:
  --to BLOBS             s3://BUCKET[/PREFIX], or data-folder
  --to-database DB       postgres://…, or sqlite
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

/** Where the database goes: PostgreSQL at a URL, or the data folder's reef.db. */
type DatabaseTarget = { kind: 'postgres'; url: string } | { kind: 'sqlite'; path: string };

export async function runMigrateStorage(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('migrate-storage', {
    args,
    options: migrateStorageOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length > 0) throw usageError(`unexpected argument '${positionals[0]}'`);
  if (!values.to && !values['to-database']) {
    throw usageError(
      'name what moves: --to s3://BUCKET[/PREFIX] | data-folder (blobs), --to-database postgres://… | sqlite (database and keys)',
    );
  }
  const source = configFromFlags(ctx, values);
  const blobTarget = values.to === undefined ? undefined : blobTargetOf(values.to, source, ctx);
  const databaseTarget =
    values['to-database'] === undefined ? undefined : databaseTargetOf(values['to-database'], source, ctx);
  // The keys are encrypted in PostgreSQL: moving them in or out needs the key that seals them.
  const encryption = databaseTarget ? KeyEncryption.fromSettings(source) : undefined;
  if (databaseTarget && !encryption) {
    throw usageError(
      'moving the database to or from PostgreSQL moves the private keys, kept there encrypted: set ' +
        "REEF_KEY_ENCRYPTION_KEY_FILE (or REEF_KEY_ENCRYPTION_KEY) to 32 random bytes ('openssl rand -hex 32')",
    );
  }

  const held = source.databaseUrl ? await holdPostgres(source.databaseUrl) : holdSqlite(source.dataDir);
  const lines: string[] = [];
  let outcome: { ok: Record<string, unknown> } | { err: unknown };
  let target: Database | undefined;
  try {
    outcome = await held.snapshot(async (db) => {
      const detail: Record<string, unknown> = {};
      if (blobTarget) {
        const report = await moveBlobs(db, source, blobTarget.config, ctx);
        detail.blobs = report;
        lines.push(
          `copied ${report.copied} blobs (${report.bytes} bytes) to ${values.to}; ${report.present} were there already, ${report.blobs} in all.`,
        );
      }
      if (databaseTarget) {
        target = await openTarget(databaseTarget);
        const report = await moveDatabase(db, source, databaseTarget, target, encryption!, ctx);
        const rows = Object.values(report.rows).reduce((a, b) => a + b, 0);
        detail.database = { tables: Object.keys(report.rows).length, rows, keys: report.keys };
        lines.push(
          `copied ${rows} rows of ${Object.keys(report.rows).length} tables and ${report.keys} keys to ${shownTarget(databaseTarget)}.`,
        );
      }
      return { ok: detail };
    });
    lines.push(
      `Start reef with ${startHint(source, blobTarget?.config, databaseTarget)}, then run 'reef fsck'.`,
    );
  } catch (err) {
    outcome = { err };
  }
  try {
    const what = [values.to, databaseTarget && shownTarget(databaseTarget)].filter(Boolean).join(' + ');
    const audited = cliAuditor(new AuditLog(new AuditStore(await held.release())), 'storage.migrate', what);
    if ('err' in outcome) {
      await audited.rejected(outcome.err);
      throw outcome.err;
    }
    await audited.ok(what, outcome.ok);
    // The installation that goes on records where it came from.
    if (target)
      await cliAuditor(new AuditLog(new AuditStore(target)), 'storage.migrate', what).ok(what, outcome.ok);
    ctx.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await held.close();
    await target?.close();
  }
}

function blobTargetOf(to: string, source: Config, ctx: CliContext): { config: Config } {
  const toDisk = to === 'data-folder';
  if (!toDisk && !to.startsWith('s3://')) {
    throw usageError(`--to takes s3://BUCKET[/PREFIX] or data-folder, not '${to}'`);
  }
  // The target's settings are read as REEF_BLOB_URL would be, so they are checked alike.
  const config = toDisk
    ? { ...source, s3: undefined }
    : loadConfig({ ...ctx.env, REEF_BLOB_URL: to }, { dataDir: source.dataDir });
  const same = toDisk
    ? source.s3 === undefined
    : source.s3 !== undefined &&
      source.s3.bucket === config.s3!.bucket &&
      source.s3.prefix === config.s3!.prefix;
  if (same) throw usageError(`the blobs are already there (${to})`);
  return { config };
}

function databaseTargetOf(to: string, source: Config, ctx: CliContext): DatabaseTarget {
  if (to === 'sqlite') {
    if (!source.databaseUrl) throw usageError("the database is already the data folder's (sqlite)");
    return { kind: 'sqlite', path: join(source.dataDir, 'reef.db') };
  }
  if (!/^postgres(ql)?:\/\//.test(to)) {
    throw usageError(`--to-database takes a postgres:// URL or sqlite, not '${redactUrl(to)}'`);
  }
  // Checked as REEF_DATABASE_URL would be.
  const url = loadConfig({ ...ctx.env, REEF_DATABASE_URL: to }, { dataDir: source.dataDir }).databaseUrl!;
  if (source.databaseUrl && sameDatabase(source.databaseUrl, url)) {
    throw usageError(`the database is already there (${redactUrl(url)})`);
  }
  return { kind: 'postgres', url };
}

function sameDatabase(a: string, b: string): boolean {
  const [x, y] = [new URL(a), new URL(b)];
  return x.hostname === y.hostname && (x.port || '5432') === (y.port || '5432') && x.pathname === y.pathname;
}

function shownTarget(target: DatabaseTarget): string {
  return target.kind === 'postgres' ? redactUrl(target.url) : target.path;
}

function startHint(source: Config, blobs: Config | undefined, database: DatabaseTarget | undefined): string {
  const s3 = blobs ? blobs.s3 : source.s3;
  const blobUrl = s3 ? `REEF_BLOB_URL=s3://${s3.bucket}/${s3.prefix.replace(/\/$/, '')}` : 'no REEF_BLOB_URL';
  const databaseUrl = database
    ? database.kind === 'postgres'
      ? `REEF_DATABASE_URL=${redactUrl(database.url)} and the same REEF_KEY_ENCRYPTION_KEY`
      : 'no REEF_DATABASE_URL'
    : source.databaseUrl
      ? `REEF_DATABASE_URL as now`
      : 'no REEF_DATABASE_URL';
  return `${blobUrl}, ${databaseUrl} and the data folder ${source.dataDir}`;
}

/** The source database, held still while everything is read from it. */
interface HeldSource {
  /** Runs `fn` with the source in one consistent state that nothing else changes. */
  snapshot<T>(fn: (db: Queryable) => Promise<T>): Promise<T>;
  /** Lets go of the lock; the source, opened for writing again (the audit log). */
  release(): Promise<Database>;
  close(): Promise<void>;
}

/**
 * The data folder's database under SQLite's exclusive lock: nobody else may
 * have it, not even while it is migrated, since a server of an older version
 * would go on writing rows without what the new schema records beside them.
 */
function holdSqlite(dataDir: string): HeldSource {
  const dbPath = join(dataDir, 'reef.db');
  const busy = () =>
    new CliError(
      `another process (a running server?) has ${dbPath} open; stop it before 'reef migrate-storage'`,
      1,
      'DATA_DIR_BUSY',
    );
  if (!existsSync(dbPath)) throw new CliError(`${dataDir} holds no reef database (reef.db)`, 1, 'NOT_FOUND');
  const probe = lockExclusive(dbPath);
  if (!probe) throw busy();
  probe.close();
  const migrating = openDb(dbPath);
  try {
    migrate(migrating);
  } finally {
    migrating.close();
  }
  const db = lockExclusive(dbPath);
  if (!db) throw busy();
  let locked = true;
  let reopened: SqliteDatabase | undefined;
  const unlock = () => {
    if (!locked) return;
    locked = false;
    db.exec('COMMIT');
    db.close();
  };
  return {
    snapshot: (fn) => fn(queryableOf(db)),
    async release() {
      unlock();
      reopened = new SqliteDatabase(dbPath);
      return reopened;
    },
    async close() {
      unlock();
      await reopened?.close();
    },
  };
}

/**
 * PostgreSQL, which has no lock a running server holds: any other client
 * connection refuses the move, and the move itself runs under an exclusive
 * lock (two moves at once) and inside one read snapshot.
 */
async function holdPostgres(url: string): Promise<HeldSource> {
  const database = new PostgresDatabase(url, { maxConnections: 2 });
  try {
    await database.migrate();
    await assertAlone(database, 'the source database');
  } catch (err) {
    await database.close();
    throw err;
  }
  return {
    snapshot: (fn) => database.exclusive('migrate-storage', () => database.read(() => fn(database))),
    release: async () => database,
    close: () => database.close(),
  };
}

async function assertAlone(database: PostgresDatabase, what: string): Promise<void> {
  // A server closed a moment ago may still be listed while its connections end.
  for (let attempt = 0; ; attempt++) {
    const others = await database.otherSessions();
    if (others === 0) return;
    if (attempt === 10) {
      throw new CliError(
        `${what} has ${others} other connection${others === 1 ? '' : 's'} (a running server?); stop every reef on it before 'reef migrate-storage'`,
        1,
        'DATA_DIR_BUSY',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function moveBlobs(
  db: Queryable,
  source: Config,
  target: Config,
  ctx: CliContext,
): Promise<BlobCopyReport> {
  const sha256s = (await db.all<{ sha256: string }>(REFERENCED_BLOBS_SQL)).map((r) => r.sha256);
  const from = await openBlobStore(source, { sweepSpool: false });
  try {
    const to = await openBlobStore(target, { sweepSpool: false });
    try {
      return await copyBlobs(from, to, sha256s, (done, total) => {
        if (done % 100 === 0 || done === total) ctx.stderr.write(`reef: ${done}/${total} blobs\n`);
      });
    } finally {
      to.close();
    }
  } finally {
    from.close();
  }
}

async function openTarget(target: DatabaseTarget): Promise<Database> {
  if (target.kind === 'postgres') {
    const database = new PostgresDatabase(target.url, { maxConnections: 2 });
    try {
      await database.migrate();
      await assertAlone(database, 'the target database');
    } catch (err) {
      await database.close();
      throw err;
    }
    return database;
  }
  mkdirSync(join(target.path, '..'), { recursive: true });
  const database = new SqliteDatabase(target.path);
  try {
    await database.migrate();
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}

async function moveDatabase(
  db: Queryable,
  source: Config,
  target: DatabaseTarget,
  database: Database,
  encryption: KeyEncryption,
  ctx: CliContext,
): Promise<InstallationCopyReport> {
  const keysOf = (on: Database | Queryable, postgres: boolean) =>
    postgres ? new DatabaseKeyStore(on as Database, encryption) : new FileKeyStore(source.dataDir);
  return copyInstallation(
    { db, keys: keysOf(db, db.dialect === 'postgres') },
    {
      database,
      keys: keysOf(database, target.kind === 'postgres'),
      where: target.kind === 'postgres' ? `the database at ${redactUrl(target.url)}` : target.path,
    },
    (table, rows) => ctx.stderr.write(`reef: ${table}: ${rows} rows\n`),
  );
}
