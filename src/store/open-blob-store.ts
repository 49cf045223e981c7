import type { S3Settings } from '../config.ts';
import { type BlobStore, DiskBlobStore } from './blob-store.ts';
import { S3BlobStore } from './s3-blob-store.ts';

/**
 * The blob store a configuration names, ready: the data folder's, or the
 * object store of REEF_BLOB_URL (its bucket created if missing); `close` it
 * when done. Only the server, starting, sweeps the temp folder
 * (`sweepSpool`): a command beside it would delete its uploads.
 */
export async function openBlobStore(
  config: { dataDir: string; s3: S3Settings | undefined },
  options: { sweepSpool: boolean },
): Promise<BlobStore> {
  const blobs = config.s3 ? new S3BlobStore(config.s3, config.dataDir) : new DiskBlobStore(config.dataDir);
  try {
    await blobs.init(options.sweepSpool);
  } catch (err) {
    blobs.close();
    throw err;
  }
  return blobs;
}
