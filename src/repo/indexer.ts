import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChunkedIndex,
  type ChunkingRule,
  ChunkReadBackError,
  DEFAULT_CHUNKING,
  type FragmentSource,
  indexMemberOffset,
  sortForIndex,
} from '../apk/index-chunks.ts';
import { rewriteRecordArch, writeIndexFromChunks } from '../apk/index-writer.ts';
import type { IndexSigner } from '../apk/signature.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { IndexKey, PackageStore } from '../store/package-store.ts';
import { uniqueKeys } from '../store/package-store.ts';

/**
 * Regenerates signed indexes, one writer per (repo, libc, arch). A refresh
 * asked for while a build runs joins the next build, so a burst of publishes
 * costs one build in flight plus one queued, whatever its size (group commit),
 * and each caller resumes once an index containing its change is live.
 *
 * A signed index is a blob of the blob store, under its SHA-256 like any
 * package (so on an object store every replica serves what any replica
 * built), and the `indexes` row names the live one. A replaced index blob is
 * not deleted at once: a replica may have read the old row and still be
 * streaming it. It is listed for collection (superseded_index_blobs) and
 * deleted after a grace (index-maintenance.ts).
 *
 * Each index's text is kept as compressed chunks (index-chunks.ts). Once an
 * index is written, the indexer keeps only where each chunk lies in it
 * (about 200 KB per 100,000 entries, so every index stays cached), plus the
 * bytes themselves when they are small; the next build reads the untouched
 * chunks back from those bytes, or from the blob read once, each chunk
 * checked against its CRC-32. A build applies the changes recorded in the
 * database since the recorded index was built (index_changes, written with
 * each change's generation), recompressing only the chunks they touch:
 * whichever process made the changes, and after a restart too (the chunks
 * are then found again in the recorded blob). The changes and the
 * generation are read in one snapshot, and trusted only when their
 * generations run without a gap from the recorded build's to the current
 * one; otherwise (changes made before index_changes existed, too many of
 * them, a blob that does not read back) the build reads every record from
 * the database, a run at a time.
 */
/** What the indexer reports; http/metrics.ts's Metrics fits. */
export interface IndexObserver {
  observeIndexBuild(key: IndexKey, seconds: number, bytes: number, packages: number): void;
}

export class Indexer {
  /** Set by the app that serves metrics. */
  observer: IndexObserver | undefined;

  /** Per index: the build running in this process, and the one queued behind it with what it was asked for. */
  private readonly slots = new Map<
    string,
    { running: Promise<void>; next?: { waiting: Deferred; request: BuildRequest } }
  >();
  /** The chunks of each index as last written, with the generation and blob they match. */
  private readonly cached = new Map<string, CachedIndex>();
  /** One buffer the index bytes are written into, reused by whichever build is not waiting on another. */
  private scratch: Buffer | undefined;
  private scratchInUse = false;
  private readonly chunking: ChunkingRule;

  /** Per index: since when this process has seen it stale at one built generation (refreshStale). */
  private readonly staleSince = new Map<string, { builtGeneration: number; since: number }>();

  constructor(
    private readonly store: PackageStore,
    private readonly blobs: BlobStore,
    /** Read at every build, so a key rotation applies to the next index written. */
    private readonly signers: () => IndexSigner[],
    private readonly log: Logger,
    options: { chunking?: ChunkingRule } = {},
  ) {
    this.chunking = options.chunking ?? DEFAULT_CHUNKING;
  }

  private scratchOf(size: number): Buffer {
    if (!this.scratch || this.scratch.length < size)
      this.scratch = Buffer.allocUnsafe(Math.ceil(size * 1.25));
    return this.scratch;
  }

  private forget(id: string): void {
    this.cached.delete(id);
  }

  /**
   * Resolves once every given index reflects the database as it was at the
   * call: built here, or by another process (replica) meanwhile.
   */
  async refresh(keys: IndexKey[]): Promise<void> {
    await Promise.all(uniqueKeys(keys).map((k) => this.refreshOne(k)));
  }

  /**
   * Builds and records the given indexes whatever is recorded (new signing
   * keys, a lost file, an operator's request), one after another.
   */
  async rebuild(keys: IndexKey[]): Promise<void> {
    await this.inTurn(keys, (key) => this.enqueue(key, { generation: 0, force: true }));
  }

  private async refreshOne(key: IndexKey): Promise<void> {
    // Read after the caller's commit: the generation its change made, or a later one.
    const state = await this.store.getIndex(key);
    if (!state || state.builtGeneration >= state.generation) return;
    await this.enqueue(key, { generation: state.generation, force: false });
  }

  private enqueue(key: IndexKey, request: BuildRequest): Promise<void> {
    const id = indexId(key);
    const slot = this.slots.get(id);
    if (!slot) {
      const running = this.runLoop(id, key, request);
      this.slots.set(id, { running });
      return running;
    }
    if (slot.next) {
      const queued = slot.next.request;
      slot.next.request = {
        generation: Math.max(queued.generation, request.generation),
        force: queued.force || request.force,
      };
    } else {
      slot.next = { waiting: deferred(), request };
    }
    return slot.next.waiting.promise;
  }

  private async runLoop(id: string, key: IndexKey, request: BuildRequest): Promise<void> {
    try {
      await this.build(key, request);
    } finally {
      const slot = this.slots.get(id)!;
      const next = slot.next;
      if (next) {
        slot.next = undefined;
        slot.running = this.runLoop(id, key, next.request);
        slot.running.then(next.waiting.resolve, next.waiting.reject);
      } else {
        this.slots.delete(id);
      }
    }
  }

  /**
   * One build, holding the index's lock: one builder per index across every
   * process on the database. What waited for the lock may find the index
   * built already, by another process.
   */
  private async build(key: IndexKey, request: BuildRequest): Promise<void> {
    const id = indexId(key);
    await this.store.lockIndex(key, async () => {
      if (!request.force) {
        const state = await this.store.getIndex(key);
        if (!state || state.builtGeneration >= request.generation) return;
      }
      try {
        await this.buildOnce(id, key);
      } catch (err) {
        // The chunks may be ahead of what is recorded: the next build starts over.
        this.forget(id);
        throw err;
      }
    });
  }

  /**
   * The chunks for the database as it is now, with the generation they show
   * and the packages they list that were not yet published: the recorded
   * index's chunks (held since this process wrote it, or found again in
   * its blob) with the changes since its build applied, else a full build.
   * A delta build also returns where its untouched chunks are read back
   * from: the previous index's bytes.
   */
  private async currentChunks(id: string, key: IndexKey): Promise<CurrentChunks> {
    let cache = this.cached.get(id);
    this.forget(id);
    const { state, changes } = await this.store.indexChangesSinceBuild(key, MAX_CHANGES);
    // Chunks of another index than the recorded one (another process recorded a newer one) are of no use.
    if (cache && (cache.sha256 !== state?.sha256 || cache.generation !== state.builtGeneration)) {
      cache = undefined;
    }
    if (state?.sha256 && changes) {
      let closePrevious: (() => void) | undefined;
      try {
        cache ??= await this.reopen(key, state.sha256, state.builtGeneration);
        if (cache) {
          const { source, close } = await this.previousBytes(cache);
          closePrevious = close;
          const add: string[] = [];
          const remove: string[] = [];
          const newIds: number[] = [];
          for (const c of changes) {
            const text = rewriteRecordArch(c.record, c.arch, key.arch);
            if (c.op === 'add') {
              add.push(text);
              newIds.push(c.packageId);
            } else {
              // Added and removed between two builds: it never reaches the index.
              const at = add.indexOf(text);
              if (at >= 0) add.splice(at, 1);
              else remove.push(text);
            }
          }
          cache.index.update({ add, remove }, source);
          return {
            index: cache.index,
            generation: state.generation,
            newIds,
            mode: 'delta',
            source,
            close,
          };
        }
      } catch (err) {
        closePrevious?.();
        this.log.warn({ index: key, err }, 'index changes did not apply to the cached chunks; full build');
      }
    }
    return { ...(await this.fullBuild(key)), mode: 'full' };
  }

  /**
   * After a start (or when another process recorded the index): the chunks
   * of the recorded index blob, found again in it without recompressing
   * (ChunkedIndex.fromMember), so that build is a delta too. The bytes read
   * are kept for this build's untouched chunks.
   */
  private async reopen(key: IndexKey, sha256: string, generation: number): Promise<CachedIndex | undefined> {
    try {
      const bytes = await this.readIndexBlob(sha256);
      const memberOffset = indexMemberOffset(bytes);
      const index = ChunkedIndex.fromMember(
        bytes.subarray(memberOffset),
        { description: describe(key), mtime: 0 },
        this.chunking,
      );
      return { index, generation, sha256, memberOffset, bytes };
    } catch (err) {
      this.log.info({ index: key, err }, 'the live index blob does not read back as chunks; full build');
      return undefined;
    }
  }

  /**
   * Where a delta build reads the previous index's untouched chunks: the
   * bytes this process kept, else the blob where the store has it at hand
   * (the data folder: a few chunks read from the page cache, nothing
   * held between builds), else the whole blob read once from the store.
   */
  private async previousBytes(cache: CachedIndex): Promise<{ source: FragmentSource; close?: () => void }> {
    if (cache.bytes) return { source: fragmentsOf(cache.bytes, cache.memberOffset) };
    if (!this.blobs.openLocal) {
      return { source: fragmentsOf(await this.readIndexBlob(cache.sha256), cache.memberOffset) };
    }
    const reader = this.blobs.openLocal(cache.sha256);
    return {
      source: (target, at, offset, length) => {
        try {
          reader.read(target, at, cache.memberOffset + offset, length);
        } catch (err) {
          throw new ChunkReadBackError(`the index blob does not read back: ${(err as Error).message}`);
        }
      },
      close: () => reader.close(),
    };
  }

  /**
   * The bytes of a recorded index, read whole from the blob store. Only
   * bytes that still hash to their address are used: nothing but what reef
   * wrote and recorded is ever signed again.
   */
  private async readIndexBlob(sha256: string): Promise<Buffer> {
    const bytes = await this.blobs.readAll(sha256);
    if (createHash('sha256').update(bytes).digest('hex') !== sha256) {
      throw new ChunkReadBackError('the index blob does not hash to its address');
    }
    return bytes;
  }

  /**
   * Every record of the index from the database, sorted by name and version
   * first and then read and compressed a run at a time, giving the event
   * loop a turn every ~20 ms: 100,000 entries are ~35 MB of text and a second
   * of compression, which would otherwise hold memory and every request.
   */
  private async fullBuild(
    key: IndexKey,
  ): Promise<{ index: ChunkedIndex; generation: number; newIds: number[] }> {
    for (let attempt = 1; ; attempt++) {
      // A third attempt reads in one snapshot, without a break: no delete can come between its reads.
      const breaks = attempt < 3;
      const read = () => this.readIndex(key, breaks);
      const built = breaks ? await read() : await this.store.snapshot(read);
      if (built) return built;
      if (!breaks) throw new Error('packages of the index changed while it was read');
      this.log.info(
        { index: key, attempt },
        'a package was deleted while the index was read; reading it again',
      );
    }
  }

  /** fullBuild's one reading of the index; undefined when a package was deleted meanwhile. */
  private async readIndex(
    key: IndexKey,
    breaks: boolean,
  ): Promise<{ index: ChunkedIndex; generation: number; newIds: number[] } | undefined> {
    const { entries, generation } = await this.store.indexEntries(key);
    const sorted = sortForIndex(entries);
    const builder = ChunkedIndex.builder(this.chunking);
    let turn = performance.now();
    for (let i = 0; i < sorted.length; ) {
      let j = Math.min(i + RECORD_RUN, sorted.length);
      // One name-version in two arches is ordered by its text: such a pair is read in one run.
      while (
        j < sorted.length &&
        sorted[j]!.name === sorted[j - 1]!.name &&
        sorted[j]!.version === sorted[j - 1]!.version
      )
        j++;
      const rows = await this.store.indexRecords(sorted.slice(i, j).map((e) => e.id));
      if (rows.length !== j - i) return undefined;
      builder.add(rows.map((r) => rewriteRecordArch(r.record, r.arch, key.arch)));
      i = j;
      if (breaks && performance.now() - turn > 20) {
        await new Promise((resolve) => setImmediate(resolve));
        turn = performance.now();
      }
    }
    const newIds = entries.filter((e) => !e.published).map((e) => e.id);
    return { index: builder.finish(), generation, newIds };
  }

  private async buildOnce(id: string, key: IndexKey): Promise<void> {
    const started = performance.now();
    const current = await this.currentChunks(id, key);
    try {
      await this.publishBuild(key, current, started);
    } catch (err) {
      // A chunk of the previous index no longer reads back as written (changed in the store): never sign that.
      if (!(err instanceof ChunkReadBackError)) throw err;
      this.log.warn({ index: key, err }, 'index changes did not apply to the cached chunks; full build');
      await this.publishBuild(key, { ...(await this.fullBuild(key)), mode: 'full' }, started);
    } finally {
      current.close?.();
    }
  }

  /** Signs and stores a build's index blob, records it, and keeps its chunks for the next build. */
  private async publishBuild(key: IndexKey, build: CurrentChunks, started: number): Promise<void> {
    const { index, generation, newIds, mode, source } = build;
    const id = indexId(key);
    const signers = this.signers();
    const packageCount = index.count;
    const useScratch = !this.scratchInUse;
    this.scratchInUse ||= useScratch;
    let bytes: Buffer;
    let memberOffset: number;
    let sha256: string;
    let kept: Buffer | undefined;
    try {
      ({ bytes, memberOffset } = await writeIndexFromChunks(index, {
        description: describe(key),
        signers,
        alloc: useScratch ? (size) => this.scratchOf(size) : undefined,
        source,
      }));
      sha256 = createHash('sha256').update(bytes).digest('hex');
      await this.storeIndexBlob(sha256, bytes);
      // A copy: the bytes may lie in the scratch buffer, which the next build writes over.
      if (!this.blobs.openLocal && bytes.length <= KEEP_BYTES) kept = Buffer.from(bytes);
    } finally {
      if (useScratch) this.scratchInUse = false;
    }
    const recorded = await this.store.recordIndex(key, generation, {
      sha256,
      size: bytes.length,
      packageCount,
      newIds,
      signedBy: signers.map((s) => s.keyName).join(','),
      builtAt: Date.now(),
    });
    // Not recorded (a newer build of another process was): the blob stays listed, and is collected.
    if (!recorded) return;
    // From now on the chunks are read back from these bytes (or the blob): only their places stay in memory.
    index.written();
    this.cached.set(id, { index, generation, sha256, memberOffset, bytes: kept });
    this.observer?.observeIndexBuild(key, (performance.now() - started) / 1000, bytes.length, packageCount);
    this.log.info(
      {
        index: key,
        packages: packageCount,
        bytes: bytes.length,
        mode,
        ms: Math.round(performance.now() - started),
      },
      'index published',
    );
  }

  /**
   * Stores an index as the blob of its SHA-256, durably (the blob store's
   * commit: a rename into place, or the object store's acknowledgement), so
   * a reader never sees a torn index. Listed for collection first: should
   * the build die or lose to a newer one, the blob is collected after the
   * grace; once recorded, the collection finds it named and keeps it. The
   * same bytes may be under collection (an index back to what it was an old
   * while ago): then this waits until they are deleted and writes them anew.
   */
  private async storeIndexBlob(sha256: string, bytes: Buffer): Promise<void> {
    for (
      let waited = 0;
      !(await this.store.reserveIndexBlob(sha256, Date.now()));
      waited += RESERVE_POLL_MS
    ) {
      if (waited >= RESERVE_WAIT_MS) {
        throw new AppError(
          'STORAGE_UNAVAILABLE',
          'an earlier copy of this index is still being deleted from the blob store; try again later',
        );
      }
      await sleep(RESERVE_POLL_MS);
    }
    const temp = await this.blobs.createTemp();
    try {
      await temp.write(bytes);
      await temp.finish();
      await this.blobs.commit(temp, sha256);
    } catch (err) {
      await temp.discard().catch(() => {});
      throw err;
    }
  }

  /**
   * After a start or a crash: rebuild every index that is stale, whose blob
   * is missing (a data folder of reef before indexes were blobs, a restored
   * backup), or that is not signed by exactly the current keys. A stale one
   * another replica builds meanwhile is left to it.
   */
  async recover(): Promise<IndexKey[]> {
    const signedBy = this.signers()
      .map((s) => s.keyName)
      .join(',');
    const indexes = await this.store.listIndexes();
    const broken = new Set<string>();
    for (const index of indexes) {
      if (!index.sha256) continue;
      const size = await this.blobs.size(index.sha256);
      if (size !== index.size || index.signedBy !== signedBy) broken.add(indexId(index));
    }
    const keys = indexes
      .filter((i) => broken.has(indexId(i)) || i.generation > i.builtGeneration)
      .map(({ repo, libc, arch }) => ({ repo, libc, arch }));
    await this.inTurn(keys, (key) =>
      broken.has(indexId(key)) ? this.enqueue(key, { generation: 0, force: true }) : this.refreshOne(key),
    );
    return keys;
  }

  /**
   * Builds the indexes left stale for at least `minAgeMs` (as this process
   * has watched them: stale at one built generation all along). A replica
   * killed in the middle of a build leaves its index stale with nobody
   * waiting for it; every server calling this now and then repairs that.
   * An index another process is building is not yet due, and if it is,
   * refresh waits for that builder's lock and finds the work done.
   */
  async refreshStale(minAgeMs: number, now = Date.now()): Promise<IndexKey[]> {
    const due: IndexKey[] = [];
    const seen = new Set<string>();
    for (const index of await this.store.listIndexes()) {
      if (index.generation <= index.builtGeneration) continue;
      const id = indexId(index);
      seen.add(id);
      const known = this.staleSince.get(id);
      if (!known || known.builtGeneration !== index.builtGeneration) {
        this.staleSince.set(id, { builtGeneration: index.builtGeneration, since: now });
        if (minAgeMs > 0) continue;
      } else if (now - known.since < minAgeMs) continue;
      due.push({ repo: index.repo, libc: index.libc, arch: index.arch });
    }
    for (const id of this.staleSince.keys()) if (!seen.has(id)) this.staleSince.delete(id);
    await this.inTurn(due, (key) => this.refreshOne(key));
    return due;
  }

  /** Rebuilds every index (after a key rotation, or on request). */
  async rebuildAll(repo?: string): Promise<IndexKey[]> {
    const keys = (await this.store.listIndexes())
      .filter((i) => repo === undefined || i.repo === repo)
      .map(({ repo, libc, arch }) => ({ repo, libc, arch }));
    await this.rebuild(keys);
    return keys;
  }

  /**
   * One index after another: a full build holds every record of its index
   * in memory, and ten full builds of 100,000 entries at once peaked at
   * ~1 GB RSS where one at a time stays near the size of one.
   */
  private async inTurn(keys: IndexKey[], build: (key: IndexKey) => Promise<void>): Promise<void> {
    for (const key of uniqueKeys(keys)) await build(key);
  }

  /** Waits for builds in flight (graceful shutdown). */
  async idle(): Promise<void> {
    while (this.slots.size > 0) {
      await Promise.allSettled([...this.slots.values()].map((s) => s.running));
    }
  }
}

/** DESCRIPTION of an index: its repository base. */
function describe(key: IndexKey): string {
  return `${key.repo}/${key.libc}`;
}

/**
 * Changes a delta build applies at most (~0.5 MB of records read); past it,
 * as after a bulk import, a full build costs less than reading them back.
 */
const MAX_CHANGES = 1024;

/** Reads per index full build: ~200 KB of records held at a time. */
const RECORD_RUN = 512;

/**
 * On an object store, an index up to this size (~350,000 entries) stays in
 * memory after it is written, for the next build's untouched chunks: reading
 * it back would be a download of the whole index per publish. A larger one
 * is read back once per build. The data folder keeps nothing: the chunks
 * are read from the file itself.
 */
const KEEP_BYTES = 32 * 1024 * 1024;

/**
 * How long a build waits for a collection deleting the same bytes: a
 * collection deletes one blob in one call, but one that died meanwhile is
 * finished by the next collection, a minute or so later.
 */
const RESERVE_WAIT_MS = 150_000;
const RESERVE_POLL_MS = 250;

/** What a build is asked for: the generation the recorded index must reach, or (`force`) a build in any case. */
interface BuildRequest {
  generation: number;
  force: boolean;
}

interface CachedIndex {
  index: ChunkedIndex;
  generation: number;
  sha256: string;
  /** Where the index member starts in the bytes (after the signatures). */
  memberOffset: number;
  /** The index's bytes when kept (KEEP_BYTES) or just read back; otherwise read from the blob store. */
  bytes?: Buffer;
}

interface CurrentChunks {
  index: ChunkedIndex;
  generation: number;
  newIds: number[];
  mode: 'delta' | 'full';
  /** The previous index's bytes, for a delta build's untouched chunks. */
  source?: FragmentSource;
  /** Lets go of what `source` reads from; the caller calls it once the build is done. */
  close?: () => void;
}

/** The chunks of an index's member, read back from its bytes. */
function fragmentsOf(bytes: Buffer, memberOffset: number): FragmentSource {
  return (target, at, offset, length) => {
    const from = memberOffset + offset;
    if (from + length > bytes.length) throw new ChunkReadBackError('the index ends before its chunks');
    bytes.copy(target, at, from, from + length);
  };
}

function indexId(key: IndexKey): string {
  return `${key.repo}/${key.libc}/${key.arch}`;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers may never await a deferred whose build fails; don't crash the process for that.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
