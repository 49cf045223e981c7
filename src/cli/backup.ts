import { resolve } from 'node:path';
import { backupDatabase, backupDataDir } from '../repo/backup.ts';
import { type DatabaseKeyStore, openKeyStore } from '../store/key-store.ts';
import { openBlobStore } from '../store/open-blob-store.ts';
import { SqliteDatabase } from '../store/sqlite-database.ts';
import { type CliContext, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { cliAuditor, withLocalData } from './local-data.ts';
import { dataOptions } from './options.ts';

const USAGE = `usage: reef backup DEST [options]

Copies the data folder into DEST (which must be empty or absent) while the
server keeps running: blobs (from the object store too, with REEF_BLOB_URL:
into DEST/blobs, each verified), an online SQLite snapshot, every blob that
snapshot references (packages, SBOMs, attestations, publisher provenance),
the live index blobs it names and the whole keys/ folder: index signing keys, keys/retired/
and reef's attestation key in keys/attestation/ (private keys 0600).
'reef serve --data DEST' starts from the copy; indexes the copy lacks are
rebuilt at start. Keep the copy as secret as the data folder: it holds
the private keys.

With REEF_DATABASE_URL the backup is a data folder too: the database's rows,
read in one snapshot, copied into DEST/reef.db (SQLite), the keys decrypted
into DEST/keys/ (needs REEF_KEY_ENCRYPTION_KEY(_FILE); private keys 0600),
and the blobs the snapshot references into DEST/blobs. 'reef serve --data
DEST' starts from it; 'reef migrate-storage --to-database postgres://…'
moves it back.

options:
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

export async function runBackup(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('backup', {
    args,
    options: dataOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw usageError('reef backup needs exactly one destination folder');
  const dest = resolve(positionals[0]!);
  const config = configFromFlags(ctx, values);
  if (dest === config.dataDir || dest.startsWith(`${config.dataDir}/`)) {
    throw usageError('the backup destination must be outside the data folder');
  }
  return withLocalData(config, ctx.stderr, async ({ database, audit }) => {
    const audited = cliAuditor(audit, 'backup', dest);
    try {
      const blobs = await openBlobStore(config, { sweepSpool: false });
      const report = await (database instanceof SqliteDatabase
        ? backupDataDir(database.raw, config.dataDir, dest, blobs)
        : backupDatabase(database, openKeyStore(config, database) as DatabaseKeyStore, dest, blobs)
      ).finally(() => blobs.close());
      await audited.ok(dest, { packages: report.packages, blobs: report.blobs, bytes: report.bytes });
      ctx.stdout.write(
        `backed up ${config.dataDir} to ${dest}: ${report.packages} packages, ${report.blobs} blobs (${report.bytes} bytes), ${report.indexes} indexes, ${report.keys} signing keys (${report.retiredKeys} retired), ${report.attestationKeys} attestation key${report.attestationKeys === 1 ? '' : 's'}\n`,
      );
      return 0;
    } catch (err) {
      await audited.rejected(err);
      throw err;
    }
  });
}
