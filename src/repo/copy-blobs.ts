import { createHash } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { BlobStore } from '../store/blob-store.ts';

/**
 * Copies one blob between stores, verified: the bytes are hashed on the way
 * and committed under their address only when they hash to it, so a corrupt
 * source never becomes a target blob that looks sound. Streams, never buffers.
 */
export async function copyBlob(from: BlobStore, to: BlobStore, sha256: string): Promise<number> {
  const temp = await to.createTemp();
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of from.read(sha256)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      await temp.write(chunk as Buffer);
    }
    await temp.finish();
    const digest = hash.digest('hex');
    if (digest !== sha256) {
      throw new AppError(
        'STORAGE_CORRUPT',
        `blob ${sha256} does not match its address (${size} bytes hashing to ${digest}); restore it from a backup`,
      );
    }
    await to.commit(temp, sha256);
    return size;
  } catch (err) {
    await temp.discard().catch(() => {});
    throw err;
  }
}

export interface BlobCopyReport {
  /** Blobs the database references. */
  blobs: number;
  copied: number;
  /** Already in the target with the source's size (an earlier, interrupted run). */
  present: number;
  bytes: number;
}

/**
 * Every blob in `sha256s` from one store to the other, in order. Resumable:
 * a blob the target already holds at the source's size is left alone (its
 * key is its content's hash; `reef fsck` reads it whole).
 */
export async function copyBlobs(
  from: BlobStore,
  to: BlobStore,
  sha256s: readonly string[],
  progress?: (done: number, total: number) => void,
): Promise<BlobCopyReport> {
  const report: BlobCopyReport = { blobs: sha256s.length, copied: 0, present: 0, bytes: 0 };
  for (const [i, sha256] of sha256s.entries()) {
    const size = await from.size(sha256);
    if (size === undefined) {
      throw new AppError(
        'STORAGE_CORRUPT',
        `blob ${sha256} is referenced by the database but missing from the source; restore it from a backup first`,
      );
    }
    if ((await to.size(sha256)) === size) {
      report.present++;
    } else {
      report.bytes += await copyBlob(from, to, sha256);
      report.copied++;
    }
    progress?.(i + 1, sha256s.length);
  }
  return report;
}
