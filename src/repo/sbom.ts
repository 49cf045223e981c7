import { createHash } from 'node:crypto';
import type { ApkPackage } from '../apk/read-apk.ts';
import { AppError } from '../errors.ts';
import { cycloneDxToSpdx, spdxToCycloneDx } from '../sbom/convert.ts';
import { generateSpdx } from '../sbom/generate.ts';
import { checkDescribes, checkSbomSize, parseSbom, parseSbomDocument } from '../sbom/parse.ts';
import type { ParsedSbom, SbomFormat } from '../sbom/types.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { SbomSource, SbomStore, StoredSbom } from '../store/sbom-store.ts';

/**
 * Where a package's SBOM comes from (issue 5): one sent with it, else the one
 * melange embedded, else one reef generates from the package itself. Sent and
 * embedded documents are validated and must describe this package.
 */

export interface PreparedSbom {
  source: SbomSource;
  bytes: Buffer;
  sha256: string;
  parsed: ParsedSbom;
}

export function prepareSbom(input: {
  repo: string;
  libc: string;
  apk: ApkPackage;
  uploaded: Buffer | undefined;
  namespaceBase: string;
  now: Date;
}): PreparedSbom {
  const { apk } = input;
  const describe = { name: apk.pkginfo.name, version: apk.pkginfo.version };
  let source: SbomSource;
  let bytes: Buffer;
  let parsed: ParsedSbom;
  if (input.uploaded || apk.sbom) {
    source = input.uploaded ? 'uploaded' : 'embedded';
    bytes = (input.uploaded ?? apk.sbom)!;
    parsed = withSource(source, () => parseSbom(bytes));
  } else {
    source = 'generated';
    const doc = generateSpdx({
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
    bytes = Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
    // The same checks as a sent document, on the tree just built rather than on a parse of its bytes.
    parsed = withSource(source, () => {
      checkSbomSize(bytes.length);
      return parseSbomDocument(doc);
    });
  }
  withSource(source, () => checkDescribes(parsed, describe));
  return { source, bytes, sha256: createHash('sha256').update(bytes).digest('hex'), parsed };
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

/** Writes bytes held in memory (an SBOM, an attestation) as a blob: content-addressed, fsynced. */
export async function storeBytes(blobs: BlobStore, bytes: Buffer, sha256: string): Promise<void> {
  const temp = await blobs.createTemp();
  try {
    await temp.write(bytes);
    await temp.finish();
  } catch (err) {
    await temp.discard();
    throw err;
  }
  await blobs.commit(temp, sha256);
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
