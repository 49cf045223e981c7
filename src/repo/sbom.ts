import { createHash } from 'node:crypto';
import type { ApkPackage } from '../apk/read-apk.ts';
import { AppError } from '../errors.ts';
import { cycloneDxToSpdx, spdxToCycloneDx } from '../sbom/convert.ts';
import { generateSpdxParts, type SpdxParts, spdxJsonText } from '../sbom/generate.ts';
import { checkDescribes, checkSbomSize, parseGeneratedSpdx, parseSbom } from '../sbom/parse.ts';
import type { ParsedSbom, SbomFormat } from '../sbom/types.ts';
import type { BlobStore, TempBlob } from '../store/blob-store.ts';
import type { SbomSource, SbomStore, StoredSbom } from '../store/sbom-store.ts';

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
  /** Writes the document as its blob (content-addressed, fsynced); the caller holds the blob's lock. */
  store(blobs: BlobStore): Promise<void>;
  /** Removes what prepareSbom wrote and store did not commit; a no-op otherwise. */
  discard(): Promise<void>;
}

export async function prepareSbom(input: {
  repo: string;
  libc: string;
  apk: ApkPackage;
  uploaded: Buffer | undefined;
  namespaceBase: string;
  now: Date;
  blobs: BlobStore;
}): Promise<PreparedSbom> {
  const { apk } = input;
  const describe = { name: apk.pkginfo.name, version: apk.pkginfo.version };
  if (input.uploaded || apk.sbom) {
    const source = input.uploaded ? 'uploaded' : 'embedded';
    const bytes = (input.uploaded ?? apk.sbom)!;
    const parsed = withSource(source, () => parseSbom(bytes));
    withSource(source, () => checkDescribes(parsed, describe));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return {
      source,
      sha256,
      size: bytes.length,
      parsed: { format: parsed.format, specVersion: parsed.specVersion, components: parsed.components },
      store: (blobs) => storeBytes(blobs, bytes, sha256),
      discard: async () => {},
    };
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
  });
  // The same checks as a sent document, in windows of the document rather than on its whole tree.
  const parsed = withSource(source, () => parseGeneratedSpdx(parts));
  withSource(source, () => checkDescribes(parsed, describe));
  const written = await writeGenerated(input.blobs, parts);
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

/** Bytes are gathered to about this many before a write: one write per file entry would be 40,000 syscalls. */
const WRITE_CHUNK = 64 * 1024;

/**
 * The generated document's text streamed into a temp blob, hashed and
 * size-limited as it goes: the whole text (8 MB for 20,000 files) is never
 * in memory. Nothing is left behind on failure.
 */
async function writeGenerated(
  blobs: BlobStore,
  parts: SpdxParts,
): Promise<{ temp: TempBlob; sha256: string; size: number }> {
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
      withSource('generated', () => checkSbomSize(size));
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
    if (err instanceof AppError && source !== 'uploaded') {
      throw new AppError(err.code, `the ${source} SBOM: ${err.message}`, {
        cause: err,
        details: err.details,
      });
    }
    throw err;
  }
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

/**
 * A package's SBOM in the asked format: the stored bytes when the format
 * matches, else a conversion (deterministic, so its ETag is stable).
 */
export async function renderSbom(
  deps: { sboms: SbomStore; blobs: BlobStore },
  packageId: number,
  format: SbomFormat,
): Promise<RenderedSbom> {
  const stored = deps.sboms.get(packageId);
  if (!stored) throw new AppError('SBOM_NOT_FOUND', 'this package has no SBOM');
  const original = await deps.blobs.readAll(stored.sha256);
  if (stored.format === format) return { bytes: original, sha256: stored.sha256, stored };
  const doc = JSON.parse(original.toString('utf8')) as Record<string, unknown>;
  const converted = format === 'cyclonedx' ? spdxToCycloneDx(doc) : cycloneDxToSpdx(doc);
  const bytes = Buffer.from(`${JSON.stringify(converted, null, 2)}\n`);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), stored };
}
