import { createHash } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { ApkPackage } from '../apk/read-apk.ts';
import { AppError } from '../errors.ts';
import { cycloneDxToSpdx, spdxToCycloneDx } from '../sbom/convert.ts';
import { generateSpdxParts, type PurlDistro, type SpdxParts, spdxJsonText } from '../sbom/generate.ts';
import { MAX_SBOM_BYTES } from '../sbom/limits.ts';
import { normalizeSpdx } from '../sbom/normalize.ts';
import { checkDescribes, checkSbomSize, DEFAULT_SBOM_LIMITS, readGeneratedSpdx } from '../sbom/parse.ts';
import type { ParsedSbom, SbomFormat, SbomSummary } from '../sbom/types.ts';
import type { BlobStore, TempBlob } from '../store/blob-store.ts';
import type { SbomSource, SbomStore, StoredSbom } from '../store/sbom-store.ts';
import type { SbomHold } from './sbom-memory.ts';
import type { SbomParser } from './sbom-parser.ts';

/**
 * Where a package's SBOM comes from (issue 5): one sent with it, else the one
 * melange embedded, else one reef generates from the package itself. Sent and
 * embedded documents are validated and must describe this package.
 */

export interface PreparedSbom {
  source: SbomSource;
  sha256: string;
  size: number;
  /** What the database keeps; not the document's tree, which is let go once read. */
  parsed: Pick<ParsedSbom, 'format' | 'specVersion' | 'components'>;
  /** Commits the document's temp blob (content-addressed, fsynced); the caller holds the blob's lock. */
  store(blobs: BlobStore): Promise<void>;
  /** Removes what prepareSbom wrote and store did not commit; a no-op otherwise. */
  discard(): Promise<void>;
}

/** A sent or embedded document written to a temp blob, hashed and size-limited on the way. */
export interface SbomBlob {
  temp: TempBlob;
  sha256: string;
  size: number;
}

export async function prepareSbom(input: {
  repo: string;
  libc: string;
  apk: ApkPackage;
  /** A document sent with the package: streamed to a temp blob by the route, or in memory. */
  uploaded: SbomBlob | Buffer | undefined;
  namespaceBase: string;
  /** The repository's vendor, for the purl of a generated document. */
  distro?: PurlDistro;
  now: Date;
  blobs: BlobStore;
  parser: SbomParser;
  /** What the embedded SBOM took from the memory budget while the package was read; released here. */
  hold?: SbomHold;
}): Promise<PreparedSbom> {
  const { apk } = input;
  const describe = { name: apk.pkginfo.name, version: apk.pkginfo.version };
  let sent: SbomBlob | undefined;
  try {
    const bytes = input.uploaded ?? apk.sbom;
    sent = bytes instanceof Uint8Array ? await writeSbomBlob(input.blobs, bytes) : bytes;
  } finally {
    // The embedded bytes are on disk now (or not wanted): let them and their budget go.
    apk.sbom = undefined;
    input.hold?.release();
  }
  if (sent) {
    const source = input.uploaded ? 'uploaded' : 'embedded';
    let parsed: SbomSummary;
    try {
      parsed = await input.parser.parse(sent.temp.path, { sent: source === 'uploaded' });
      checkDescribes(parsed, describe);
    } catch (err) {
      await sent.temp.discard();
      throw fromSource(source, err);
    }
    return preparedBlob(source, sent, parsed);
  }
  const source = 'generated';
  const parts = generateSpdxParts({
    repo: input.repo,
    libc: input.libc,
    arch: apk.pkginfo.arch,
    pkginfo: apk.pkginfo,
    files: apk.files,
    sha256: apk.sha256,
    checksum: apk.checksum,
    // The build date makes the document a function of the package alone.
    created: apk.pkginfo.builddate ? new Date(apk.pkginfo.builddate * 1000) : input.now,
    namespaceBase: input.namespaceBase,
    distro: input.distro,
  });
  // The same checks as a sent document, in windows of the document rather than on its whole tree,
  // with a turn of the event loop between windows.
  const reading = readGeneratedSpdx(parts);
  let step = withSource(source, () => reading.next());
  while (!step.done) {
    await setImmediate();
    step = withSource(source, () => reading.next());
  }
  const parsed = step.value;
  withSource(source, () => checkDescribes(parsed, describe));
  return preparedBlob(source, await writeGenerated(input.blobs, parts), parsed);
}

function preparedBlob(
  source: SbomSource,
  written: SbomBlob,
  parsed: Pick<ParsedSbom, 'format' | 'specVersion' | 'components'>,
): PreparedSbom {
  let pending = true;
  return {
    source,
    sha256: written.sha256,
    size: written.size,
    parsed: { format: parsed.format, specVersion: parsed.specVersion, components: parsed.components },
    store: async (blobs) => {
      await blobs.commit(written.temp, written.sha256);
      pending = false;
    },
    discard: async () => {
      if (pending) await written.temp.discard();
      pending = false;
    },
  };
}

/**
 * A sent or embedded document into a temp blob, hashed and bounded as it
 * arrives (SBOM_TOO_LARGE past `maxBytes`): a document streamed from the
 * request is never held in memory. Nothing is left behind on failure.
 */
export async function writeSbomBlob(
  blobs: BlobStore,
  source: AsyncIterable<Uint8Array> | Uint8Array,
  maxBytes = MAX_SBOM_BYTES,
): Promise<SbomBlob> {
  const temp = await blobs.createTemp();
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of source instanceof Uint8Array ? [source] : source) {
      size += chunk.length;
      checkSbomSize(size, { ...DEFAULT_SBOM_LIMITS, maxBytes });
      hash.update(chunk);
      await temp.write(chunk);
    }
    await temp.finish();
    return { temp, sha256: hash.digest('hex'), size };
  } catch (err) {
    await temp.discard();
    throw err;
  }
}

/** Bytes are gathered to about this many before a write: one write per file entry would be 40,000 syscalls. */
const WRITE_CHUNK = 64 * 1024;

/**
 * The generated document's text streamed into a temp blob, hashed as it
 * goes: the whole text (8 MB for 20,000 files) is never in memory. Nothing
 * is left behind on failure. No size limit: the limit on documents is for
 * what publishers send, and reef must describe every package it accepts
 * (read-apk's maxEntries and maxNameLength bound this document already).
 */
async function writeGenerated(blobs: BlobStore, parts: SpdxParts): Promise<SbomBlob> {
  const temp = await blobs.createTemp();
  try {
    const hash = createHash('sha256');
    let size = 0;
    let pending: string[] = [];
    let pendingLength = 0;
    const flush = async () => {
      const chunk = Buffer.from(pending.join(''));
      pending = [];
      pendingLength = 0;
      size += chunk.length;
      hash.update(chunk);
      await temp.write(chunk);
    };
    for (const piece of spdxJsonText(parts)) {
      pending.push(piece);
      pendingLength += piece.length;
      if (pendingLength >= WRITE_CHUNK) await flush();
    }
    await flush();
    await temp.finish();
    return { temp, sha256: hash.digest('hex'), size };
  } catch (err) {
    await temp.discard();
    throw err;
  }
}

/** Errors about an embedded SBOM say so: the publisher did not send it, melange put it there. */
function withSource<T>(source: SbomSource, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromSource(source, err);
  }
}

function fromSource(source: SbomSource, err: unknown): unknown {
  if (err instanceof AppError && source !== 'uploaded' && err.kind !== 'internal') {
    return new AppError(err.code, `the ${source} SBOM: ${err.message}`, { cause: err, details: err.details });
  }
  return err;
}

/**
 * Writes bytes held in memory (an SBOM, an attestation) as a blob:
 * content-addressed, fsynced. A failed commit leaves no temp file; a blob it
 * may have placed is the caller's to collect, under the blob's lock.
 */
export async function storeBytes(blobs: BlobStore, bytes: Buffer, sha256: string): Promise<void> {
  const temp = await blobs.createTemp();
  try {
    await temp.write(bytes);
    await temp.finish();
    await blobs.commit(temp, sha256);
  } catch (err) {
    await temp.discard();
    throw err;
  }
}

export interface RenderedSbom {
  bytes: Buffer;
  sha256: string;
  stored: StoredSbom;
}

/** What renderSbom serves: SPDX 2.3, CycloneDX, or the stored document byte for byte. */
export type SbomRendering = SbomFormat | 'original';

/**
 * The base of the documentNamespace reef gives a document it normalizes. A
 * constant, not the public URL: what is served beside a package is cached as
 * immutable, so it must be a function of the stored bytes alone.
 */
const NORMALIZED_NAMESPACE_BASE = 'https://reef.invalid/spdxdocs/normalized';

/**
 * A package's SBOM as served: `original` is the stored bytes; `spdx` is
 * SPDX 2.3 that conforms to the specification and its official schema (an
 * embedded or sent document normalized, normalize.ts; reef's own as stored);
 * `cyclonedx` the stored CycloneDX or a conversion of that SPDX. Each is a
 * deterministic function of the stored bytes and the package, so its ETag is
 * stable; the stored document is never altered. Normalizing on the way out
 * rather than at publish serves packages stored before it existed the same way.
 */
export async function renderSbom(
  deps: { sboms: SbomStore; blobs: BlobStore },
  /** `filename`: `<name>-<version>.apk`. */
  pkg: { id: number; repo: string; libc: string; filename: string },
  rendering: SbomRendering,
): Promise<RenderedSbom> {
  const stored = await deps.sboms.get(pkg.id);
  if (!stored) throw new AppError('SBOM_NOT_FOUND', 'this package has no SBOM');
  const original = await deps.blobs.readAll(stored.sha256);
  const as = (bytes: Buffer): RenderedSbom => ({
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    stored,
  });
  const asStored: RenderedSbom = { bytes: original, sha256: stored.sha256, stored };
  if (rendering === 'original') return asStored;
  // reef's own documents conform as generated (checked against the official schema in the tests).
  if (stored.source === 'generated' && stored.format === rendering) return asStored;
  if (stored.format === 'cyclonedx' && rendering === 'cyclonedx') return asStored;
  const doc = JSON.parse(original.toString('utf8')) as Record<string, unknown>;
  let spdx = doc;
  if (stored.format === 'spdx' && stored.source !== 'generated') {
    const nameVersion = pkg.filename.replace(/\.apk$/, '');
    const path = [pkg.repo, pkg.libc, nameVersion].map(encodeURIComponent).join('/');
    const changes = normalizeSpdx(doc, {
      // One per package and document (the arches of a build embed documents that differ in their purls):
      // the one melange namespace of a build's subpackages becomes one each.
      namespace: `${NORMALIZED_NAMESPACE_BASE}/${path}-${stored.sha256}`,
      // melange's namespaces are shared by the subpackages of a build, or a bare prefix.
      replaceNamespace: stored.source === 'embedded',
    });
    if (rendering === 'spdx') return changes.length === 0 ? asStored : as(jsonBytes(doc));
  } else if (stored.format === 'cyclonedx') {
    spdx = cycloneDxToSpdx(doc);
    if (rendering === 'spdx') return as(jsonBytes(spdx));
  }
  return as(jsonBytes(spdxToCycloneDx(spdx)));
}

const jsonBytes = (doc: unknown) => Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
