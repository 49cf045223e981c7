import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { AppError } from '../errors.ts';

/**
 * Keeps small content-addressed files (packages, indexes) in memory. Their
 * bytes never change for a given SHA-256, so nothing is ever invalidated;
 * each file is hashed once when loaded, so a corrupted file on disk is
 * refused instead of being served and cached.
 */
export class ContentCache {
  private readonly cache: LRUCache<string, Buffer>;

  constructor(
    private readonly maxTotalBytes: number,
    private readonly maxEntryBytes: number,
  ) {
    this.cache = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, maxTotalBytes),
      sizeCalculation: (b) => Math.max(1, b.length),
    });
  }

  /** The bytes of `sha256`, from memory or `load`; undefined when too large to cache. */
  async get(sha256: string, size: number, load: () => Promise<Buffer>): Promise<Buffer | undefined> {
    if (size > this.maxEntryBytes || this.maxTotalBytes === 0) return undefined;
    const hit = this.cache.get(sha256);
    if (hit) return hit;
    const bytes = await load();
    if (bytes.length !== size || createHash('sha256').update(bytes).digest('hex') !== sha256) {
      throw new AppError('STORAGE_CORRUPT', `stored content ${sha256} does not match its digest`);
    }
    this.cache.set(sha256, bytes);
    return bytes;
  }
}
