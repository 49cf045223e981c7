import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { MAX_SBOM_BYTES } from '../sbom/limits.ts';
import { AdvisoryStore } from '../store/advisory-store.ts';
import { AuditStore } from '../store/audit-store.ts';
import { ContentCache } from '../store/content-cache.ts';
import { type Database, pingDatabase } from '../store/database.ts';
import { FileListStore } from '../store/file-list-store.ts';
import { openKeyStore } from '../store/key-store.ts';
import { openBlobStore } from '../store/open-blob-store.ts';
import { openDatabase } from '../store/open-database.ts';
import { PackageStore } from '../store/package-store.ts';
import { SbomStore } from '../store/sbom-store.ts';
import { TokenStore } from '../store/token-store.ts';
import { VulnerabilityStore } from '../store/vulnerability-store.ts';
import { WriteProbe } from '../store/write-probe.ts';
import { AdvisoryService } from './advisories.ts';
import { AuditLog } from './audit.ts';
import { IndexMaintenance } from './index-maintenance.ts';
import { Indexer } from './indexer.ts';
import { KeyRing, loadOrCreateAttestationKey, loadOrCreateSigningKeys, type SigningKey } from './keys.ts';
import { ProvenancePolicies } from './provenance.ts';
import { KeyedLock, type PublishDeps } from './publish.ts';
import { SbomMemory } from './sbom-memory.ts';
import { SbomParser } from './sbom-parser.ts';
import { TokenService } from './tokens.ts';
import { VulnerabilityService } from './vulnerabilities.ts';

/** Everything the server and the CLI work with, wired once. */
export interface Services extends PublishDeps {
  config: Config;
  /** The metadata database: SQLite in the data folder, or PostgreSQL shared by replicas. */
  database: Database;
  tokens: TokenService;
  audit: AuditLog;
  /** Security advisories and the feeds built from them. */
  advisories: AdvisoryService;
  /** Uploaded OSV records and which packages they affect. */
  vulnerabilities: VulnerabilityService;
  /** Stale indexes and replaced index blobs, seen to now and then: a server starts it. */
  indexMaintenance: IndexMaintenance;
  /** Small packages and indexes held in memory for serving. */
  cache: ContentCache;
  /** Whether the data folder takes writes now (readiness). */
  writeProbe: WriteProbe;
  /** The keys that sign indexes now (rotation changes them at run time). */
  keyRing: KeyRing;
  readonly signingKeys: SigningKey[];
  /** Set at first start when reef generated the admin token; shown once. */
  generatedAdminToken: string | undefined;
  generatedKey: boolean;
  /** Resolves when the metadata database answers a query (readiness). */
  pingDatabase(): Promise<void>;
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Mint the first admin token when none exists (the server does; maintenance commands do not). */
  bootstrapAdminToken?: boolean;
}

export async function createServices(
  config: Config,
  log: Logger,
  options: ServiceOptions = {},
): Promise<Services> {
  await mkdir(config.dataDir, { recursive: true });
  // Policies first: a bad key file or trusted root stops the start with a message.
  const provenance = new ProvenancePolicies(config.provenance, config.configDir);
  const { database, applied } = await openDatabase(config);
  try {
    if (applied.length > 0) log.info({ applied }, 'database migrated');
    const blobs = await openBlobStore(config, { sweepSpool: true });
    const store = new PackageStore(database, config.defaultArches);
    // What signed before is read only when a key is missing (attestations: a scan of the table).
    const signedBefore = async () =>
      (await store.listIndexes()).flatMap((i) => i.signedBy?.split(',').filter(Boolean) ?? []);
    const keyStore = openKeyStore(config, database);
    const { keys, created } = await loadOrCreateSigningKeys(keyStore, config.keyBits, signedBefore);
    const keyRing = new KeyRing(keyStore, keys, config.keyBits, config.indexSha1);
    const attestationKey = await loadOrCreateAttestationKey(keyStore, () => store.attestationKeyNames());
    if (created) log.info({ key: keys[0]!.keyName }, 'generated an index signing key');
    const sbomParser = new SbomParser();
    const indexer = new Indexer(store, blobs, () => keyRing.signers(), log.child({ module: 'indexer' }));
    const tokens = new TokenService(new TokenStore(database), config.adminToken);
    const generatedAdminToken =
      options.bootstrapAdminToken === false ? undefined : await tokens.ensureAdminToken();
    const sboms = new SbomStore(database);
    const advisoryStore = new AdvisoryStore(database);
    const rebuilt = await indexer.recover();
    if (rebuilt.length > 0)
      log.info({ indexes: rebuilt }, 'rebuilt indexes that disagreed with the database');
    // reef before indexes were blobs kept them as files of indexes/: recover() has stored each
    // live one as a blob by now (rebuilt, byte for byte), so the files are of no more use.
    await rm(join(config.dataDir, 'indexes'), { recursive: true, force: true });
    const indexMaintenance = new IndexMaintenance(
      { database, store, blobs, indexer, log: log.child({ module: 'index-maintenance' }) },
      { graceMs: config.indexGraceMs },
    );
    return {
      config,
      database,
      store,
      sboms,
      fileLists: new FileListStore(database),
      attestationKey,
      provenance,
      sbomNamespace: `${config.publicUrl?.replace(/\/$/, '') ?? 'https://reef.invalid'}/spdxdocs`,
      blobs,
      indexer,
      indexMaintenance,
      locks: new KeyedLock(),
      sbomParser,
      // Four largest embedded SBOMs at once, or hundreds of ordinary ones (tens of KB each).
      sbomMemory: new SbomMemory(4 * MAX_SBOM_BYTES),
      limits: { maxCompressedBytes: config.maxUploadBytes },
      tokens,
      audit: new AuditLog(new AuditStore(database)),
      advisories: new AdvisoryService(advisoryStore, store, attestationKey),
      vulnerabilities: new VulnerabilityService(
        new VulnerabilityStore(database),
        store,
        sboms,
        advisoryStore,
      ),
      cache: new ContentCache(config.cacheBytes, 1024 * 1024),
      writeProbe: new WriteProbe(join(config.dataDir, 'tmp')),
      keyRing,
      get signingKeys() {
        return keyRing.active;
      },
      generatedAdminToken,
      generatedKey: created,
      pingDatabase: () => pingDatabase(database),
      async close() {
        await indexMaintenance.stop();
        await indexer.idle();
        await sbomParser.close();
        blobs.close();
        await database.close();
      },
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}
