import type { S3Settings } from '../config.ts';
import { type BlobStore, DiskBlobStore } from './blob-store.ts';
import { S3BlobStore } from './s3-blob-store.ts';

/**
 * The blob store a configuration names, ready: the data folder's, or the
 * object store of REEF_BLOB_URL (its bucket created if missing). `close`
 * lets go of its connections.
 */
export async function openBlobStore(config: {
  dataDir: string;
  s3: S3Settings | undefined;
}): Promise<{ blobs: BlobStore; close(): void }> {
  if (config.s3) {
    const blobs = new S3BlobStore(config.s3, config.dataDir);
    try {
      await blobs.init();
    } catch (err) {
      blobs.close();
      throw err;
    }
    return { blobs, close: () => blobs.close() };
  }
  const blobs = new DiskBlobStore(config.dataDir);
  await blobs.init();
  return { blobs, close: () => {} };
}
