import type { Logger } from '../log.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { Database } from '../store/database.ts';
import type { PackageStore } from '../store/package-store.ts';
import type { Indexer } from './indexer.ts';

/**
 * What every server does now and then for the indexes, whichever replica
 * it is: build indexes a dead replica left stale, and delete the index blobs
 * that were replaced (or written by builds never recorded) once a grace has
 * passed. The grace covers a replica that read the old `indexes` row just
 * before it changed and still streams the old blob to a slow client.
 */
export interface IndexMaintenanceOptions {
  /** How long a replaced index blob stays before it is deleted. */
  graceMs: number;
  /** An index stale this long, with no build of it seen, is built by whoever notices. */
  staleAfterMs?: number;
  /** Between two looks for stale indexes (each with up to a third more, at random). */
  staleEveryMs?: number;
  /** Between two collections of replaced index blobs (each with up to a third more, at random). */
  collectEveryMs?: number;
}

export interface CollectionReport {
  /** Blobs deleted. */
  deleted: string[];
  /** Listed blobs an index, package or side document names again: kept, and no longer listed. */
  kept: number;
}

export class IndexMaintenance {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Set<Promise<unknown>>();
  private stopped = true;
  private readonly staleAfterMs: number;
  private readonly staleEveryMs: number;
  private readonly collectEveryMs: number;

  constructor(
    private readonly deps: {
      database: Database;
      store: PackageStore;
      blobs: BlobStore;
      indexer: Indexer;
      log: Logger;
    },
    private readonly options: IndexMaintenanceOptions,
  ) {
    // A build takes seconds: an index stale longer than this has nobody building it.
    this.staleAfterMs = options.staleAfterMs ?? 10_000;
    this.staleEveryMs = options.staleEveryMs ?? 30_000;
    this.collectEveryMs = options.collectEveryMs ?? 60_000;
  }

  /** Starts both loops (a server's, once it listens). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.every(this.staleEveryMs, async () => {
      const built = await this.deps.indexer.refreshStale(this.staleAfterMs);
      if (built.length > 0) this.deps.log.info({ indexes: built }, 'built indexes left stale');
    });
    this.every(this.collectEveryMs, async () => {
      const { deleted } = await this.collect();
      if (deleted.length > 0) this.deps.log.info({ deleted: deleted.length }, 'deleted replaced index blobs');
    });
  }

  /** Stops the loops and waits for a pass under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
  }

  /**
   * Deletes the listed index blobs older than the grace that nothing names,
   * one replica at a time (the others find the list done). Each blob is
   * claimed first (marked deleting, in a transaction that also checks no
   * row names it), so a build that wants the same bytes meanwhile waits,
   * and written anew after the delete; one claimed by a collection that
   * died is deleted by the next.
   */
  collect(now = Date.now()): Promise<CollectionReport> {
    const { database, store, blobs } = this.deps;
    return database.exclusive('index-gc', async () => {
      const before = now - this.options.graceMs;
      const report: CollectionReport = { deleted: [], kept: 0 };
      for (const { sha256 } of await store.indexBlobsToCollect(before)) {
        const fate = await store.claimIndexBlob(sha256, before);
        if (fate === 'kept') report.kept++;
        if (fate !== 'delete') continue;
        await blobs.delete(sha256);
        await store.forgetIndexBlob(sha256);
        report.deleted.push(sha256);
      }
      return report;
    });
  }

  /** Runs `pass` about every `ms` (jittered, so replicas started together spread out) until stopped. */
  private every(ms: number, pass: () => Promise<void>): void {
    const schedule = () => {
      if (this.stopped) return;
      const timer = setTimeout(
        () => {
          this.timers.delete(timer);
          const run = pass()
            .catch((err: unknown) =>
              this.deps.log.warn({ err }, 'index maintenance failed; tried again later'),
            )
            .finally(() => {
              this.running.delete(run);
              schedule();
            });
          this.running.add(run);
        },
        ms + Math.random() * (ms / 3),
      );
      // A server that is otherwise done need not wait for the next pass.
      timer.unref();
      this.timers.add(timer);
    };
    schedule();
  }
}
