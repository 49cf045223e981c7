import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { AuditLog } from '../repo/audit.ts';
import { copyBlobs } from '../repo/copy-blobs.ts';
import { AuditStore } from '../store/audit-store.ts';
import { listReferencedBlobs, lockExclusive, migrate, openDb } from '../store/db.ts';
import { openBlobStore } from '../store/open-blob-store.ts';
import { SqliteDatabase } from '../store/sqlite-database.ts';
import { type CliContext, CliError, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { cliAuditor } from './local-data.ts';
import { migrateStorageOptions } from './options.ts';

const USAGE = `usage: reef migrate-storage --to <s3://BUCKET[/PREFIX] | data-folder> [options]

Copies every blob the database references (packages, SBOMs, attestations,
publisher provenance) from where the configuration keeps them now (the data
folder, or REEF_BLOB_URL) to the place --to names, each one verified against
its SHA-256 on the way. The object store's credentials, region and endpoint
come from the AWS variables, as for 'reef serve'.

The server must be stopped: the database is locked while blobs are copied,
so no publish can add one behind the copy. Run it again after an
interruption: blobs already there are skipped. Then start reef with the new
REEF_BLOB_URL (or without it, for the data folder) and check with
'reef fsck'. The source blobs are left where they were.

options:
  --to TARGET          s3://BUCKET[/PREFIX], or data-folder
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

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
  if (!values.to) throw usageError('--to is required: s3://BUCKET[/PREFIX] or data-folder');
  const source = configFromFlags(ctx, values);
  const toDisk = values.to === 'data-folder';
  if (!toDisk && !values.to.startsWith('s3://')) {
    throw usageError(`--to takes s3://BUCKET[/PREFIX] or data-folder, not '${values.to}'`);
  }
  // The target's settings are read as REEF_BLOB_URL would be, so they are checked alike.
  const target = toDisk
    ? { ...source, s3: undefined }
    : loadConfig({ ...ctx.env, REEF_BLOB_URL: values.to }, { dataDir: source.dataDir });
  const same = toDisk
    ? source.s3 === undefined
    : source.s3 !== undefined &&
      source.s3.bucket === target.s3!.bucket &&
      source.s3.prefix === target.s3!.prefix;
  if (same) throw usageError(`the blobs are already there (${values.to})`);

  const dbPath = join(source.dataDir, 'reef.db');
  const busy = () =>
    new CliError(
      `another process (a running server?) has ${dbPath} open; stop it before 'reef migrate-storage'`,
      1,
      'DATA_DIR_BUSY',
    );
  // Nobody else may have the database, not even while it is migrated: a server of an older
  // version would go on writing rows without what the new schema records beside them.
  if (!existsSync(dbPath))
    throw new CliError(`${source.dataDir} holds no reef database (reef.db)`, 1, 'NOT_FOUND');
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
  // Recorded once the lock is released: the audit log is written through the shared interface,
  // which opens connections of its own.
  let outcome: { ok: Record<string, unknown> } | { err: unknown };
  try {
    const from = await openBlobStore(source, { sweepSpool: false });
    try {
      const to = await openBlobStore(target, { sweepSpool: false });
      try {
        const sha256s = listReferencedBlobs(db);
        const report = await copyBlobs(from, to, sha256s, (done, total) => {
          if (done % 100 === 0 || done === total) ctx.stderr.write(`reef: ${done}/${total} blobs\n`);
        });
        outcome = { ok: { ...report } };
        ctx.stdout.write(
          `copied ${report.copied} blobs (${report.bytes} bytes) to ${values.to}; ${report.present} were there already, ` +
            `${report.blobs} in all. Start reef ${toDisk ? 'without REEF_BLOB_URL' : `with REEF_BLOB_URL=${values.to}`} ` +
            `and the same data folder, then run 'reef fsck'.\n`,
        );
      } finally {
        to.close();
      }
    } finally {
      from.close();
    }
  } catch (err) {
    outcome = { err };
  } finally {
    // The lock goes with the connection, however the copy ended (a store that would not open too).
    db.exec('COMMIT');
    db.close();
  }
  const database = new SqliteDatabase(dbPath);
  try {
    const audited = cliAuditor(new AuditLog(new AuditStore(database)), 'storage.migrate', values.to);
    if ('err' in outcome) {
      await audited.rejected(outcome.err);
      throw outcome.err;
    }
    await audited.ok(values.to, outcome.ok);
    return 0;
  } finally {
    await database.close();
  }
}
