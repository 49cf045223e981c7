import { AppError } from '../errors.ts';

/**
 * A bound on the SBOM bytes held in memory across all uploads at once. An
 * embedded SBOM is kept in memory while its package streams past (up to
 * MAX_SBOM_BYTES each); forty uploads at once would hold forty of them. Each
 * upload takes what it keeps from this budget when the SBOM's tar header
 * gives its size, and gives it back once the bytes are in a temp blob. The
 * taking happens inside the synchronous tar reader, which cannot wait, so an
 * upload that finds the budget spent is refused with SBOM_BUSY (503 and
 * Retry-After) rather than queued; a retry finds it free within seconds.
 */

export interface SbomHold {
  /** Takes `bytes` for this upload, or throws SBOM_BUSY. */
  take(bytes: number): void;
  /** Gives back all this upload took; idempotent. */
  release(): void;
}

/** Seconds a refused client is told to wait: the time to write one document to disk and then some. */
const RETRY_AFTER_SECONDS = 2;

export class SbomMemory {
  private used = 0;

  constructor(readonly capacity: number) {}

  /** Bytes held now, over all uploads. */
  get inUse(): number {
    return this.used;
  }

  hold(): SbomHold {
    let held = 0;
    return {
      take: (bytes) => {
        if (this.used + bytes > this.capacity) {
          throw new AppError(
            'SBOM_BUSY',
            `reef is holding as many SBOM bytes as it allows (${this.capacity}) for other uploads; retry in ${RETRY_AFTER_SECONDS} s`,
            { details: { retryAfterSeconds: RETRY_AFTER_SECONDS } },
          );
        }
        this.used += bytes;
        held += bytes;
      },
      release: () => {
        this.used -= held;
        held = 0;
      },
    };
  }
}
