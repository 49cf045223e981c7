import { DataDirBusyError, type FsckReport, fsck } from '../repo/fsck.ts';
import { openKeyStore } from '../store/key-store.ts';
import { PostgresDatabase } from '../store/postgres-database.ts';
import { type CliContext, CliError, parseCommand, usageError } from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { fsckOptions } from './options.ts';

const USAGE = `usage: reef fsck [options]

Checks the data folder against its database: every stored blob (packages,
SBOMs, attestations) hashes to its address and has the recorded size, every
stored package still has the C: the database records, and every live index
exists, hashes to its name, parses, verifies with the signing keys in keys/
and lists exactly the database's packages with their C: and S:; and every
attestation of reef's verifies with an attestation key in keys/attestation/
and names its package's SHA-256 (ATTESTATION_UNVERIFIABLE otherwise: restore
keys/attestation/ from a backup).

With REEF_BLOB_URL the blobs are read from the object store it names, and
listed there: what lies under <prefix>/blobs/sha256/ is checked as the data
folder's blobs/ would be. With REEF_DATABASE_URL the rows are read from
PostgreSQL in one snapshot and the keys from its keys table (which needs
REEF_KEY_ENCRYPTION_KEY(_FILE)); index files from the data folder given.
PostgreSQL's own pages are its server's to check (amcheck, pg_checksums):
fsck checks what the rows say is stored. Other connections to the database
count as a running server.

It also finds garbage: temp files left by a crash, blobs nothing references
(index blobs replaced less than the server's grace ago are not garbage),
index files of data/indexes/ (where reef kept indexes before they were
blobs), and stray files or objects among the blobs. Garbage costs
space only; --repair removes it.

It only reads, and may run while the server serves: then files (and objects,
by their LastModified) younger than --grace are taken for work in progress,
and damage is reported only when a second pass sees it too. --repair needs the server stopped (it takes the
database's exclusive lock and refuses when a server holds it). Damage is never
repaired automatically: 'reef reindex' rebuilds indexes; a corrupt package
blob must be restored from a backup.

options:
${DATA_OPTION_USAGE}
  --json               the report as JSON on stdout
  --repair             remove garbage (server stopped)
  --grace SECONDS      with a server running, ignore files younger than this (600)
  -h, --help

exit codes: 0 clean, 1 damage found or fsck failed, 2 bad usage,
3 only garbage found (run --repair with the server stopped)`;

export async function runFsck(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('fsck', {
    args,
    options: fsckOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length > 0) throw usageError(`unexpected argument '${positionals[0]}'`);
  let graceMs: number | undefined;
  if (values.grace !== undefined) {
    if (!/^\d+$/.test(values.grace)) throw usageError(`--grace wants whole seconds, not '${values.grace}'`);
    graceMs = Number(values.grace) * 1000;
  }
  const config = configFromFlags(ctx, values);
  let report: FsckReport;
  const database = config.databaseUrl
    ? new PostgresDatabase(config.databaseUrl, { maxConnections: 2 })
    : undefined;
  try {
    const postgres = database && { database, keys: openKeyStore(config, database) };
    report = await fsck(config.dataDir, { repair: values.repair === true, graceMs, s3: config.s3, postgres });
  } catch (err) {
    if (err instanceof DataDirBusyError) throw new CliError(err.message, 1, 'DATA_DIR_BUSY');
    throw err;
  } finally {
    await database?.close();
  }
  const code = exitCodeOf(report);
  if (values.json) ctx.stdout.write(`${JSON.stringify({ ...report, exitCode: code }, null, 2)}\n`);
  else ctx.stdout.write(formatReport(report, config.blobUrl));
  return code;
}

export function exitCodeOf(report: FsckReport): number {
  if (report.problems.length > 0) return 1;
  const left = report.garbage.filter((g) => !report.removed.includes(g.path));
  return left.length > 0 ? 3 : 0;
}

function formatReport(r: FsckReport, blobUrl: string | undefined): string {
  const c = r.checked;
  const lines = [
    `checked ${r.dataDir}${blobUrl ? ` with blobs in ${blobUrl}` : ''}${r.serverRunning ? ' (a server has it open)' : ''}: ${c.packages} packages, ${c.sboms} SBOMs, ${c.attestations} attestations, ${c.otherBlobs} other documents in ${c.blobs} blobs (${c.blobBytes} bytes); ${c.indexes} indexes with ${c.indexEntries} entries; ${r.durationMs} ms`,
  ];
  for (const p of r.problems) {
    lines.push(`DAMAGE ${p.code} ${p.subject}: ${p.message}${p.path ? ` [${p.path}]` : ''}`);
  }
  for (const g of r.garbage) {
    const done = r.removed.includes(g.path) ? 'removed ' : '';
    lines.push(`garbage ${done}${g.code} ${g.path} (${g.bytes} bytes)`);
  }
  const garbageLeft = r.garbage.length - r.removed.length;
  lines.push(
    r.problems.length === 0 && garbageLeft === 0
      ? 'ok: no damage, no garbage'
      : `${r.problems.length} damaged, ${garbageLeft} garbage${r.removed.length ? `, ${r.removed.length} removed` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
