import { createHash } from 'node:crypto';
import type { ApkLimits, ApkPackage } from '../apk/read-apk.ts';
import { readApk } from '../apk/read-apk.ts';
import { AppError } from '../errors.ts';
import { type AttestationKey, publishStatement, signStatement } from '../provenance/publish-statement.ts';
import { checkDescribes } from '../sbom/parse.ts';
import type { SbomFormat } from '../sbom/types.ts';
import type { BlobStore, TempBlob } from '../store/blob-store.ts';
import type { FileListStore } from '../store/file-list-store.ts';
import type {
  IndexKey,
  Libc,
  PackageStore,
  SlotHolder,
  StoredPackage,
  StoredProvenance,
} from '../store/package-store.ts';
import type { SbomStore } from '../store/sbom-store.ts';
import { listedFiles } from './file-list.ts';
import type { Indexer } from './indexer.ts';
import { requirePublishedPackage } from './lookup.ts';
import type { ProvenancePolicies, ProvenanceResult, PublisherProvenance } from './provenance.ts';
import { type PreparedSbom, prepareSbom, type SbomBlob, storeBytes } from './sbom.ts';
import type { SbomMemory } from './sbom-memory.ts';
import type { SbomParser } from './sbom-parser.ts';

/**
 * Publishing and deleting packages: the service behind the upload API and the
 * CLI. It knows nothing of HTTP; it speaks AppError.
 */

export interface PublishDeps {
  store: PackageStore;
  sboms: SbomStore;
  /** What each package installs. */
  fileLists: FileListStore;
  /** Base URI of generated SPDX documentNamespace values. */
  sbomNamespace: string;
  /** Signs reef's record of every publish. */
  attestationKey: AttestationKey;
  /** Each repository's provenance policy. */
  provenance: ProvenancePolicies;
  blobs: BlobStore;
  indexer: Indexer;
  locks: KeyedLock;
  limits?: Partial<ApkLimits>;
  /** Parses sent and embedded SBOMs off the event loop. */
  sbomParser: SbomParser;
  /** Bounds the embedded SBOM bytes all uploads hold at once. */
  sbomMemory: SbomMemory;
}

export interface PublishResult {
  outcome: 'created' | 'exists';
  pkg: StoredPackage;
  warnings: string[];
}

export const LIBCS: readonly Libc[] = ['glibc', 'musl'];
/** Names that would collide with reef's own top-level paths. */
const RESERVED_REPOS = new Set(['api', 'keys', 'healthz', 'readyz', 'metrics', 'docs']);
const REPO_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function validateRepo(repo: string, libc: string): asserts libc is Libc {
  if (!REPO_RE.test(repo) || RESERVED_REPOS.has(repo) || repo.includes('..')) {
    throw new AppError(
      'PUBLISH_BAD_REPO',
      `repository name '${repo.slice(0, 80)}' is invalid: use 1-64 of a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  if (!LIBCS.includes(libc as Libc)) {
    throw new AppError('PUBLISH_BAD_REPO', `libc '${libc.slice(0, 80)}' is invalid: use glibc or musl`);
  }
}

/**
 * The libc a package was built for, from its shared-library dependencies
 * (`so:libc.musl-<arch>.so.1` for musl, `so:libc.so.6` or `so:ld-linux-*` for
 * glibc; apk itself has no libc dimension); undefined for packages that need
 * neither.
 */
export function detectLibc(depends: string[]): { libc: Libc; dependency: string } | undefined {
  for (const dep of depends) {
    const name = dep.replace(/^!/, '').split(/[<>=~]/)[0]!;
    if (name.startsWith('so:libc.musl-')) return { libc: 'musl', dependency: dep };
    if (name === 'so:libc.so.6' || name.startsWith('so:ld-linux-')) return { libc: 'glibc', dependency: dep };
  }
  return undefined;
}

async function* teeToBlob(source: AsyncIterable<Uint8Array>, temp: TempBlob): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    await temp.write(chunk);
    yield chunk;
  }
}

export async function publishPackage(
  deps: PublishDeps,
  target: { repo: string; libc: string },
  body: AsyncIterable<Uint8Array>,
  options: {
    /** An SBOM and provenance sent with the package; called once the package body is consumed. */
    extras?: () => Promise<{ sbom?: SbomBlob | Buffer; provenance?: Buffer }>;
    /** Who publishes, for reef's attestation. */
    publishedBy?: { tokenId: number | null; tokenName: string };
  } = {},
): Promise<PublishResult> {
  const { repo, libc } = target;
  validateRepo(repo, libc);
  const temp = await deps.blobs.createTemp();
  let apk: ApkPackage;
  let sbom: PreparedSbom;
  /** Set once prepared: a generated SBOM is then in a temp blob that a failure must discard. */
  let prepared: PreparedSbom | undefined;
  let provenance: PublisherProvenance | undefined;
  let attestation: { bytes: Buffer; sha256: string };
  const sbomHold = deps.sbomMemory.hold();
  try {
    apk = await readApk(teeToBlob(body, temp), { limits: deps.limits, reserveSbom: sbomHold.take });
    await temp.finish();
    const detected = detectLibc(apk.pkginfo.depends);
    if (detected && detected.libc !== libc) {
      throw new AppError(
        'PUBLISH_LIBC_MISMATCH',
        `${apk.pkginfo.name}-${apk.pkginfo.version} depends on ${detected.dependency}, a ${detected.libc} library; publish it to /${repo}/${detected.libc}, not /${repo}/${libc}`,
        { details: { dependency: detected.dependency, libc: detected.libc } },
      );
    }
    deps.provenance.checkPackageSignature(repo, apk);
    const extras = (await options.extras?.()) ?? {};
    sbom = prepared = await prepareSbom({
      repo,
      libc,
      apk,
      uploaded: extras.sbom,
      namespaceBase: deps.sbomNamespace,
      distro: (await deps.store.getRepo(repo))?.distro,
      now: new Date(),
      blobs: deps.blobs,
      parser: deps.sbomParser,
      hold: sbomHold,
    });
    const p = apk.pkginfo;
    provenance =
      extras.provenance &&
      (await deps.provenance.evaluate(repo, extras.provenance, {
        filename: `${p.name}-${p.version}.apk`,
        sha256: apk.sha256,
        datahash: p.datahash,
        name: p.name,
        version: p.version,
      }));
    deps.provenance.enforce(repo, provenance);
    attestation = await attest(deps, apk, sbom, { repo, libc }, options.publishedBy, provenance);
  } catch (err) {
    sbomHold.release();
    await temp.discard();
    await prepared?.discard();
    throw err;
  }

  const p = apk.pkginfo;
  const key: IndexKey = { repo, libc, arch: p.arch };
  const sides = [
    sbom,
    {
      sha256: attestation.sha256,
      store: () => storeBytes(deps.blobs, attestation.bytes, attestation.sha256),
    },
    ...(provenance
      ? [
          {
            sha256: provenance.sha256,
            store: () => storeBytes(deps.blobs, provenance.bytes, provenance.sha256),
          },
        ]
      : []),
  ];
  const blobKeys = [apk.sha256, ...sides.map((side) => side.sha256)];
  // Every blob this publish writes stays locked from its store to the row insert: a delete
  // sharing any of them (an SBOM sent with two packages) must not collect it in between.
  const result = await deps.locks.runAll(blobKeys, async () => {
    const holder = await deps.store.slotHolder(key, p.name, p.version);
    // A deleted version's own bytes may come back (an undo): they go on to the insert.
    if (holder && !(holder.kind === 'deleted' && holder.deleted.sha256 === apk.sha256)) {
      await temp.discard();
      await sbom.discard();
      return { outcome: 'held' as const, holder };
    }
    let inserted: Awaited<ReturnType<typeof insertPackage>>;
    try {
      // Side by side: on an object store each is a round trip of its own.
      await allDone([deps.blobs.commit(temp, apk.sha256), ...sides.map((side) => side.store(deps.blobs))]);
      inserted = await insertPackage();
    } catch (err) {
      // The temp blobs (package, generated SBOM) when the failure came before their commit.
      await temp.discard();
      await sbom.discard();
      await collectWritten();
      throw err;
    }
    if (inserted.outcome === 'created') return inserted;
    // A concurrent publish of the same name and version with other bytes won the slot.
    await collectWritten();
    const won: SlotHolder =
      inserted.outcome === 'exists'
        ? { kind: 'package', pkg: inserted.pkg }
        : { kind: 'deleted', deleted: inserted.deleted };
    return { outcome: 'held' as const, holder: won };

    /** The row never landed, so nothing may reference what this publish wrote: collect it (as delete does). */
    async function collectWritten() {
      for (const sha256 of blobKeys) await collectUnreferenced(deps, sha256);
    }
  });

  if (result.outcome === 'held') return finishExisting(deps, result.holder, apk);
  // 201 only once an index listing the package is live (design invariant 1).
  try {
    await deps.indexer.refresh(await deps.store.indexesListing(result.pkg));
  } catch (err) {
    const failure = await takeBack(deps, result.pkg, err);
    if (failure !== undefined) throw failure;
  }
  const pkg = (await deps.store.find(key, p.name, p.version)) ?? result.pkg;
  return { outcome: 'created', pkg, warnings: apk.warnings };

  function insertPackage() {
    return deps.store.insert(
      {
        ...key,
        name: p.name,
        version: p.version,
        filename: `${p.name}-${p.version}.apk`,
        sha256: apk.sha256,
        size: apk.size,
        checksum: apk.checksum,
        datahash: p.datahash,
        installedSize: p.installedSize,
        description: p.description,
        url: p.url,
        license: p.license,
        origin: p.origin,
        maintainer: p.maintainer,
        builddate: p.builddate,
        commit: p.commit,
        providerPriority: p.providerPriority,
        depends: p.depends,
        provides: p.provides,
        installIf: p.installIf,
        pkginfo: p.fields,
        signatures: apk.signatures.map((s) => ({ algorithm: s.algorithm, keyName: s.keyName })),
      },
      Date.now(),
      async (created) => {
        // In the package's transaction: no package is ever listed without its files.
        await deps.fileLists.save(created.id, listedFiles(apk.files));
        await deps.sboms.save(created.id, {
          source: sbom.source,
          format: sbom.parsed.format,
          specVersion: sbom.parsed.specVersion,
          sha256: sbom.sha256,
          size: sbom.size,
          components: sbom.parsed.components,
        });
        await deps.store.saveAttestation(created.id, {
          sha256: attestation.sha256,
          size: attestation.bytes.length,
          keyName: deps.attestationKey.keyName,
        });
        if (provenance) await saveProvenance(deps, created.id, provenance);
      },
    );
  }
}

/** Deletes a blob nothing references any more; the caller holds the blob's lock. */
async function collectUnreferenced(deps: PublishDeps, sha256: string): Promise<void> {
  if (!(await deps.store.isBlobReferenced(sha256))) await deps.blobs.delete(sha256).catch(() => {});
}

async function finishExisting(
  deps: PublishDeps,
  holder: SlotHolder,
  apk: ApkPackage,
): Promise<PublishResult> {
  const p = apk.pkginfo;
  const target = `${p.name}-${p.version} (${p.arch})`;
  if (holder.kind === 'deleted') {
    const d = holder.deleted;
    throw new AppError(
      'PUBLISH_VERSION_DELETED',
      `${target} was published in ${d.repo}/${d.libc} before${sameSlotAs(d, p)} and deleted on ${new Date(d.deletedAt).toISOString()}; a version once served never changes its bytes (caches keep them), so only the identical file may come back: bump pkgrel to publish a new build`,
      { details: { name: d.name, version: d.version, arch: d.arch, sha256: d.sha256 } },
    );
  }
  const existing = holder.pkg;
  if (existing.sha256 !== apk.sha256) {
    throw new AppError(
      'PUBLISH_VERSION_EXISTS',
      `${target} already exists in ${existing.repo}/${existing.libc}${sameSlotAs(existing, p)} with different content; bump pkgrel to publish a new build`,
      {
        details: {
          name: existing.name,
          version: existing.version,
          arch: existing.arch,
          sha256: existing.sha256,
        },
      },
    );
  }
  // Identical bytes: idempotent. Make sure a publish interrupted before its index is finished now.
  if (existing.publishedAt === undefined) {
    await deps.indexer.refresh(await deps.store.indexesListing(existing));
    return {
      outcome: 'exists',
      pkg: (await deps.store.find(existing, existing.name, existing.version)) ?? existing,
      warnings: [],
    };
  }
  return { outcome: 'exists', pkg: existing, warnings: [] };
}

/** ", as hello-01.0-r0 (noarch)," when the holder is spelled or built otherwise than the upload. */
function sameSlotAs(
  holder: { name: string; version: string; arch: string },
  upload: { version: string; arch: string },
): string {
  if (holder.version === upload.version && holder.arch === upload.arch) return '';
  const why =
    holder.arch !== upload.arch
      ? "noarch packages share every arch's index"
      : 'apk compares the two versions as equal';
  return ` as ${holder.name}-${holder.version} (${holder.arch}), the same package to apk (${why})`;
}

export async function deletePackage(
  deps: PublishDeps,
  key: { repo: string; libc: string; arch: string },
  name: string,
  version: string,
): Promise<StoredPackage> {
  validateRepo(key.repo, key.libc);
  const indexKey: IndexKey = { ...key, libc: key.libc };
  const removed = await deps.store.remove(indexKey, name, version);
  if (!removed) {
    const noarch = key.arch !== 'noarch' && (await deps.store.findListed(indexKey, name, version));
    throw new AppError(
      'PACKAGE_NOT_FOUND',
      noarch
        ? `${name}-${version} is a noarch package, listed in every arch's index of ${key.repo}/${key.libc}: delete it as /api/v1/repos/${key.repo}/${key.libc}/noarch/${name}/${version}, which removes it from all of them`
        : `${name}-${version} (${key.arch}) is not in ${key.repo}/${key.libc}`,
    );
  }
  // The index stops listing the package before its bytes go (design invariant 1).
  await deps.indexer.refresh(removed.indexes);
  for (const sha256 of removed.blobs) {
    await deps.locks.run(sha256, async () => {
      if (!(await deps.store.isBlobReferenced(sha256))) await deps.blobs.delete(sha256);
    });
  }
  return removed.pkg;
}

/**
 * Serializes work per key. Publishing a blob (commit + insert) and collecting
 * it (check + delete) run under the blob's lock, so a delete can never remove
 * bytes that a concurrent publish has just started to reference.
 *
 * A write that references several blobs holds all their locks, from its first
 * store until its row commits (`runAll`). Pins of in-flight blobs recorded in
 * the database would not be enough on their own: a collector's check and its
 * unlink are two steps, and a pin taken between them still loses the file, so
 * pins need this same per-blob exclusion. Replicas sharing one database keep
 * the protocol by swapping this class for a cross-process lock (PostgreSQL's
 * `pg_advisory_xact_lock` keyed by digest, taken in the same sorted order).
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /**
   * Runs `fn` holding every key's lock. Keys are taken in sorted order, so two
   * callers sharing keys cannot deadlock; `fn` must not `run` a key it holds.
   */
  async runAll<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const from = (i: number): Promise<T> =>
      i === sorted.length ? fn() : this.run(sorted[i]!, () => from(i + 1));
    return from(0);
  }
}

function saveProvenance(
  deps: PublishDeps,
  packageId: number,
  provenance: PublisherProvenance,
): Promise<void> {
  return deps.store.saveProvenance(packageId, {
    sha256: provenance.sha256,
    size: provenance.bytes.length,
    format: provenance.result.format,
    verified: provenance.result.verified,
    result: provenance.result,
  });
}

/**
 * Attaches publisher provenance to a published package (`PUT …/provenance`).
 * The same checks as at upload; a package has at most one, never replaced
 * (an auditor must be able to rely on what was shown before). reef re-issues
 * its own attestation so that it records the result.
 */
export async function attachProvenance(
  deps: PublishDeps,
  key: IndexKey,
  name: string,
  version: string,
  bytes: Buffer,
): Promise<{ outcome: 'created' | 'exists'; pkg: StoredPackage }> {
  validateRepo(key.repo, key.libc);
  const pkg = await requirePublishedPackage(deps.store, key, name, version);
  const provenance = await deps.provenance.evaluate(key.repo, bytes, subjectOf(pkg));
  return deps.locks.run(`provenance:${pkg.id}`, async () => {
    const existing = await deps.store.getProvenance(pkg.id);
    if (existing) {
      if (existing.sha256 === provenance.sha256) return { outcome: 'exists' as const, pkg };
      throw new AppError(
        'PROVENANCE_EXISTS',
        `${pkg.name}-${pkg.version} already has provenance (sha256 ${existing.sha256}); provenance is never replaced, publish a new pkgrel instead`,
        { details: { sha256: existing.sha256 } },
      );
    }
    deps.provenance.enforce(key.repo, provenance);
    await swapAttestation(
      deps,
      pkg.id,
      { ...provenance.result, sha256: provenance.sha256 },
      { publisherProvenanceAttachedAt: new Date().toISOString() },
      [provenance],
      async () => {
        await saveProvenance(deps, pkg.id, provenance);
        return true;
      },
    );
    return { outcome: 'created' as const, pkg };
  });
}

/**
 * Replaces a published package's SBOM with one its publisher sends
 * (`PUT …/sbom`); the document must describe the package. The blob it
 * replaces is collected once nothing references it, and a failure collects
 * the new one: neither is left behind unreferenced.
 */
export async function attachSbom(
  deps: PublishDeps,
  key: IndexKey,
  name: string,
  version: string,
  sent: SbomBlob,
): Promise<{ pkg: StoredPackage; sbom: { format: SbomFormat; specVersion: string; sha256: string } }> {
  try {
    validateRepo(key.repo, key.libc);
    const pkg = await requirePublishedPackage(deps.store, key, name, version);
    // Parsed off the event loop, from the temp blob (src/repo/sbom-parser.ts).
    const parsed = await deps.sbomParser.parse(sent.temp.path, { sent: true });
    checkDescribes(parsed, { name: pkg.name, version: pkg.version });
    const { sha256 } = sent;
    const sbom = { format: parsed.format, specVersion: parsed.specVersion, sha256 };
    // One replacement of a package's SBOM at a time, so each knows the blob it replaces.
    return await deps.locks.run(`sbom:${pkg.id}`, async () => {
      const previous = (await deps.sboms.get(pkg.id))?.sha256;
      await deps.locks.run(sha256, async () => {
        try {
          await deps.blobs.commit(sent.temp, sha256);
          await deps.sboms.save(pkg.id, {
            source: 'uploaded',
            ...sbom,
            size: sent.size,
            components: parsed.components,
          });
        } catch (err) {
          await collectUnreferenced(deps, sha256);
          throw err;
        }
      });
      if (previous && previous !== sha256) {
        await deps.locks.run(previous, () => collectUnreferenced(deps, previous));
      }
      return { pkg, sbom };
    });
  } finally {
    // Committed above, or not wanted: the temp blob does not outlive the call.
    await sent.temp.discard();
  }
}

/**
 * A publish whose index could not be written (storage full or failing): its
 * row comes out again and its blobs are collected, so the failure stays a
 * failure, and not a package that appears at the next build. Returns the
 * error to answer with, or undefined when an index listed the package
 * meanwhile (another publish's build): then it was published. When even
 * taking it back fails, the answer says the package will be listed later.
 */
async function takeBack(deps: PublishDeps, pkg: StoredPackage, cause: unknown): Promise<unknown> {
  let removed: Awaited<ReturnType<PackageStore['removeUnpublished']>>;
  try {
    removed = await deps.store.removeUnpublished(pkg.id);
  } catch {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new AppError(
      'PUBLISH_INDEX_PENDING',
      `${pkg.filename} is stored, but its index could not be written (${reason.slice(0, 200)}), nor the package taken back; ` +
        'it will be listed by the next index build that succeeds (a publish, a reindex or a restart). Sending the same file again is safe',
      { cause, details: { sha256: pkg.sha256 } },
    );
  }
  if (removed === 'published') return undefined;
  for (const sha256 of removed?.blobs ?? []) {
    await deps.locks.run(sha256, () => collectUnreferenced(deps, sha256)).catch(() => {});
  }
  return cause;
}

/** What a provenance statement about a stored package must name. */
const subjectOf = (pkg: StoredPackage) => ({
  filename: pkg.filename,
  sha256: pkg.sha256,
  datahash: pkg.datahash,
  name: pkg.name,
  version: pkg.version,
});

/**
 * Re-issues reef's attestation of a package: the statement as first signed,
 * with `publisherProvenance` and `stamp` set in its predicate, signed again.
 * The new bundle and the `extra` blobs are stored; `commit` (the row changes
 * that go with them) and the attestation row land in one transaction. The
 * bundle it replaces is collected; a failure, or a `commit` that returns
 * false, collects the new blobs instead. Returns whether it committed.
 */
async function swapAttestation(
  deps: PublishDeps,
  packageId: number,
  publisherProvenance: Record<string, unknown>,
  stamp: Record<string, string>,
  extra: Array<{ bytes: Buffer; sha256: string }>,
  commit: () => Promise<boolean>,
): Promise<boolean> {
  const previous = await deps.store.getAttestation(packageId);
  if (!previous) throw new AppError('INTERNAL', 'the package has no attestation to re-issue');
  const bundle = JSON.parse((await deps.blobs.readAll(previous.sha256)).toString('utf8'));
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
  Object.assign(statement.predicate, { publisherProvenance }, stamp);
  const bytes = await signStatement(statement, deps.attestationKey);
  const attestation = { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  const written = [...extra, attestation];
  // The blobs stay locked until the rows referencing them commit (see KeyedLock).
  const committed = await deps.locks.runAll(
    written.map((b) => b.sha256),
    async () => {
      let done = false;
      try {
        await allDone(written.map((blob) => storeBytes(deps.blobs, blob.bytes, blob.sha256)));
        done = await deps.store.transaction(async () => {
          if (!(await commit())) return false;
          await deps.store.replaceAttestation(packageId, {
            sha256: attestation.sha256,
            size: attestation.bytes.length,
            keyName: deps.attestationKey.keyName,
          });
          return true;
        });
      } finally {
        if (!done) for (const blob of written) await collectUnreferenced(deps, blob.sha256);
      }
      return done;
    },
  );
  if (committed && previous.sha256 !== attestation.sha256) {
    await deps.locks.run(previous.sha256, () => collectUnreferenced(deps, previous.sha256));
  }
  return committed;
}

/** What re-evaluating one package's stored provenance found (and did, unless a dry run). */
export type Reevaluation =
  | { pkg: StoredPackage; outcome: 'verified'; result: ProvenanceResult }
  | { pkg: StoredPackage; outcome: 'unverified' | 'skipped'; reason: string }
  | { pkg: StoredPackage; outcome: 'failed'; error: unknown };

/**
 * Checks again every publisher provenance stored as unverified (of one
 * repository, or all) under today's verifier and policies: after a verifier
 * upgrade (sigstore-js 5 verifies Rekor v2 bundles that 3.x could not) or a
 * policy change. One that verifies now is marked verified, with the earlier
 * reason kept in `reevaluated`, and reef's attestation is re-issued to record
 * it. One that still does not verify is left as it was. Reports each package.
 */
export async function reevaluateProvenance(
  deps: PublishDeps,
  options: { repo?: string; dryRun?: boolean },
  report: (r: Reevaluation) => void | Promise<void>,
): Promise<void> {
  let afterId = 0;
  for (;;) {
    const page = await deps.store.listUnverifiedProvenance(options.repo, 100, afterId);
    if (page.length === 0) return;
    for (const { pkg, provenance } of page) {
      afterId = pkg.id;
      await report(await reevaluateOne(deps, pkg, provenance, options.dryRun === true));
    }
  }
}

async function reevaluateOne(
  deps: PublishDeps,
  pkg: StoredPackage,
  stored: StoredProvenance,
  dryRun: boolean,
): Promise<Reevaluation> {
  if (deps.provenance.modeOf(pkg.repo) === 'off') {
    return { pkg, outcome: 'skipped', reason: `${pkg.repo}'s provenance policy is off: nothing is verified` };
  }
  try {
    const bytes = await deps.blobs.readAll(stored.sha256);
    const { result } = await deps.provenance.evaluate(pkg.repo, bytes, subjectOf(pkg));
    if (!result.verified) return { pkg, outcome: 'unverified', reason: result.reason ?? 'unknown reason' };
    const at = new Date().toISOString();
    const previousReason = typeof stored.result.reason === 'string' ? stored.result.reason : undefined;
    const verified: ProvenanceResult = { ...result, reevaluated: { at, previousReason } };
    if (dryRun) return { pkg, outcome: 'verified', result: verified };
    const committed = await deps.locks.run(`provenance:${pkg.id}`, () =>
      swapAttestation(
        deps,
        pkg.id,
        { ...verified, sha256: stored.sha256 },
        { publisherProvenanceReevaluatedAt: at },
        [],
        () => deps.store.markProvenanceVerified(pkg.id, stored.sha256, verified),
      ),
    );
    return committed
      ? { pkg, outcome: 'verified', result: verified }
      : { pkg, outcome: 'skipped', reason: 'the package or its provenance changed meanwhile' };
  } catch (error) {
    return { pkg, outcome: 'failed', error };
  }
}

/** reef's signed record of this publish (issue 6), made before the package row commits. */
async function attest(
  deps: PublishDeps,
  apk: ApkPackage,
  sbom: PreparedSbom,
  target: { repo: string; libc: string },
  publishedBy: { tokenId: number | null; tokenName: string } = { tokenId: null, tokenName: 'unknown' },
  provenance?: PublisherProvenance,
): Promise<{ bytes: Buffer; sha256: string }> {
  const p = apk.pkginfo;
  const statement = publishStatement({
    filename: `${p.name}-${p.version}.apk`,
    sha256: apk.sha256,
    repo: target.repo,
    libc: target.libc,
    arch: p.arch,
    name: p.name,
    version: p.version,
    checksum: apk.checksum,
    datahash: p.datahash,
    publishedBy,
    publishedAt: new Date(),
    origin: p.origin,
    commit: p.commit,
    url: p.url,
    sbom: { sha256: sbom.sha256, source: sbom.source, format: sbom.parsed.format },
    publisherProvenance: provenance ? { ...provenance.result, sha256: provenance.sha256 } : null,
  });
  const bytes = await signStatement(statement, deps.attestationKey);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Waits for every one of the promises, then throws the first failure: what
 * runs after a failure (collecting what was written) must not race a write
 * still under way.
 */
async function allDone(work: Array<Promise<unknown>>): Promise<void> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
