import type { S3Settings } from '../config.ts';
import { type BlobStore, DiskBlobStore } from './blob-store.ts';
import { S3BlobStore } from './s3-blob-store.ts';

/**
 * The blob store a configuration names, ready: the data folder's, or the
 * object store of REEF_BLOB_URL (its bucket created if missing). `close`
 * lets go of its connections. Only the server, starting, sweeps the temp
 * folder (`sweepSpool`): a command beside it would delete its uploads.
 */
export async function openBlobStore(
  config: { dataDir: string; s3: S3Settings | undefined },
  options: { sweepSpool: boolean },
): Promise<{ blobs: BlobStore; close(): void }> {
  if (config.s3) {
    const blobs = new S3BlobStore(config.s3, config.dataDir);
    try {
      await blobs.init(options.sweepSpool);
    } catch (err) {
      blobs.close();
      throw err;
    }
    return { blobs, close: () => blobs.close() };
  }
  const blobs = new DiskBlobStore(config.dataDir);
  await blobs.init(options.sweepSpool);
  return { blobs, close: () => {} };
}
