import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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
import type { Logger } from '../log.ts';
import { writeNamedAtomic } from '../store/atomic-file.ts';
import type { IndexKey, PackageStore } from '../store/package-store.ts';
import { uniqueKeys } from '../store/package-store.ts';

/**
 * Regenerates signed indexes, one writer per (repo, libc, arch). A refresh
 * asked for while a build runs joins the next build, so a burst of publishes
 * costs one build in flight plus one queued, whatever its size (group commit),
 * and each caller resumes once an index containing its change is live.
 *
 * Each index's text is kept as compressed chunks (index-chunks.ts). Once an
 * index file is written, the indexer keeps only where each chunk lies in it
 * (about 200 KB per 100,000 entries, so every index stays cached), and the
 * next build reads the untouched chunks back from that file, each checked
 * against its CRC-32. A build applies the changes recorded in the database
 * since the recorded index was built (index_changes, written with each
 * change's generation), recompressing only the chunks they touch: whichever
 * process made the changes, and after a restart too (the chunks are then
 * found again in the recorded file). The changes and the generation are
 * read in one snapshot, and trusted only when their generations run without
 * a gap from the recorded build's to the current one; otherwise (changes
 * made before index_changes existed, too many of them, a file that does not
 * read back) the build reads every record from the database, a run at a time.
 */
/** What the indexer reports; http/metrics.ts's Metrics fits. */
export interface IndexObserver {
  observeIndexBuild(key: IndexKey, seconds: number, bytes: number, packages: number): void;
}

/** data/indexes/<repo>/<libc>/<arch>/<sha256>.tar.gz: an index file is named by its own SHA-256. */
export function indexFilePath(
  dataDir: string,
  key: { repo: string; libc: string; arch: string },
  sha256: string,
): string {
  return join(dataDir, 'indexes', key.repo, key.libc, key.arch, `${sha256}.tar.gz`);
}

export class Indexer {
  /** Set by the app that serves metrics. */
  observer: IndexObserver | undefined;

  /** Per index: the build running in this process, and the one queued behind it with what it was asked for. */
  private readonly slots = new Map<
    string,
    { running: Promise<void>; next?: { waiting: Deferred; request: BuildRequest } }
  >();
  /** The chunks of each index as last written, with the generation and file they match. */
  private readonly cached = new Map<string, CachedIndex>();
  /** One buffer the index bytes are written into, reused by whichever build is not waiting on another. */
  private scratch: Buffer | undefined;
  private scratchInUse = false;
  private readonly chunking: ChunkingRule;

  constructor(
    private readonly store: PackageStore,
    private readonly dataDir: string,
    /** Read at every build, so a key rotation applies to the next index written. */
    private readonly signers: () => IndexSigner[],
    private readonly log: Logger,
    options: { chunking?: ChunkingRule } = {},
  ) {
    this.chunking = options.chunking ?? DEFAULT_CHUNKING;
  }

  /** data/indexes/<repo>/<libc>/<arch>/<sha256>.tar.gz; names were validated before they got here. */
  indexPath(key: IndexKey, sha256: string): string {
    return indexFilePath(this.dataDir, key, sha256);
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
   * its file) with the changes since its build applied, else a full build.
   * A delta build also returns the open file its untouched chunks are read
   * back from; the caller closes it.
   */
  private async currentChunks(id: string, key: IndexKey): Promise<CurrentChunks> {
    let cache = this.cached.get(id);
    this.forget(id);
    const { state, changes } = await this.store.indexChangesSinceBuild(key, MAX_CHANGES);
    // Chunks of another index than the recorded one (another process recorded a newer one) are of no use.
    if (cache && (cache.sha256 !== state?.sha256 || cache.generation !== state.builtGeneration)) {
      cache = undefined;
    }
    let file: IndexFile | undefined;
    if (state?.sha256 && changes) {
      try {
        cache ??= await this.reopen(key, state.sha256, state.builtGeneration);
        if (cache) {
          file = openIndexFile(this.indexPath(key, cache.sha256), cache.memberOffset);
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
          cache.index.update({ add, remove }, file.source);
          return { index: cache.index, generation: state.generation, newIds, mode: 'delta', file };
        }
      } catch (err) {
        this.log.warn({ index: key, err }, 'index changes did not apply to the cached chunks; full build');
      }
    }
    file?.close();
    return { ...(await this.fullBuild(key)), mode: 'full' };
  }

  /**
   * After a start (or when another process recorded the index): the chunks
   * of the recorded index file, found again in it without recompressing
   * (ChunkedIndex.fromMember), so that build is a delta too. Only for a file
   * whose bytes still hash to its name: nothing but what reef wrote and
   * recorded is ever signed again.
   */
  private async reopen(key: IndexKey, sha256: string, generation: number): Promise<CachedIndex | undefined> {
    try {
      const bytes = await readFile(this.indexPath(key, sha256));
      if (createHash('sha256').update(bytes).digest('hex') !== sha256) {
        throw new ChunkReadBackError('the index file does not hash to its name');
      }
      const memberOffset = indexMemberOffset(bytes);
      const index = ChunkedIndex.fromMember(
        bytes.subarray(memberOffset),
        { description: describe(key), mtime: 0 },
        this.chunking,
      );
      return { index, generation, sha256, memberOffset };
    } catch (err) {
      this.log.info({ index: key, err }, 'the live index file does not read back as chunks; full build');
      return undefined;
    }
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
      // A chunk of the live file no longer reads back as written (changed on disk): never sign that.
      if (!(err instanceof ChunkReadBackError)) throw err;
      this.log.warn({ index: key, err }, 'index changes did not apply to the cached chunks; full build');
      await this.publishBuild(key, { ...(await this.fullBuild(key)), mode: 'full' }, started);
    } finally {
      current.file?.close();
    }
  }

  /** Signs and writes a build's index file, records it, and keeps its chunks for the next build. */
  private async publishBuild(key: IndexKey, build: CurrentChunks, started: number): Promise<void> {
    const { index, generation, newIds, mode, file } = build;
    const id = indexId(key);
    const signers = this.signers();
    const previous = await this.store.getIndex(key);
    const packageCount = index.count;
    const useScratch = !this.scratchInUse;
    this.scratchInUse ||= useScratch;
    let bytes: Buffer;
    let memberOffset: number;
    let sha256: string;
    try {
      ({ bytes, memberOffset } = await writeIndexFromChunks(index, {
        description: describe(key),
        signers,
        alloc: useScratch ? (size) => this.scratchOf(size) : undefined,
        source: file?.source,
      }));
      sha256 = await this.writeIndexFile(key, bytes);
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
    if (!recorded) {
      // Superseded by a newer build (another process): drop this file unless it is the live one.
      if ((await this.store.getIndex(key))?.sha256 !== sha256)
        await rm(this.indexPath(key, sha256), { force: true });
      return;
    }
    // From now on the chunks are read back from this file: only their places stay in memory.
    index.written();
    this.cached.set(id, { index, generation, sha256, memberOffset });
    this.observer?.observeIndexBuild(key, (performance.now() - started) / 1000, bytes.length, packageCount);
    if (previous?.sha256 && previous.sha256 !== sha256) {
      await rm(this.indexPath(key, previous.sha256), { force: true });
    }
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
   * Writes an index atomically under its own SHA-256, hashed while the
   * kernel writes the bytes: at 100,000 entries that hash is ~10 ms of the publish.
   */
  private async writeIndexFile(key: IndexKey, bytes: Buffer): Promise<string> {
    const name = await writeNamedAtomic(
      dirname(this.indexPath(key, 'x')),
      // The writer's pid in the name: recover() sweeps what dead writers left, never a live one's.
      `.index.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
      bytes,
      () => `${createHash('sha256').update(bytes).digest('hex')}.tar.gz`,
    );
    return name.slice(0, -'.tar.gz'.length);
  }

  /**
   * After a start or a crash: rebuild every index that is stale, whose file is
   * missing, or that is not signed by exactly the current keys. A stale one
   * another replica builds meanwhile is left to it.
   */
  async recover(): Promise<IndexKey[]> {
    await this.sweepTempFiles();
    const signedBy = this.signers()
      .map((s) => s.keyName)
      .join(',');
    const indexes = await this.store.listIndexes();
    const broken = new Set<string>();
    for (const index of indexes) {
      if (!index.sha256) continue;
      const size = await stat(this.indexPath(index, index.sha256)).then(
        (s) => s.size,
        () => undefined,
      );
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
   * Removes index temp files whose writer is gone (killed mid-write). A
   * file of a live process (a server beside a CLI command) stays.
   */
  private async sweepTempFiles(): Promise<void> {
    const root = join(this.dataDir, 'indexes');
    const dirs = async (path: string) =>
      (await readdir(path, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory());
    for (const repo of await dirs(root)) {
      for (const libc of await dirs(join(root, repo.name))) {
        for (const arch of await dirs(join(root, repo.name, libc.name))) {
          const dir = join(root, repo.name, libc.name, arch.name);
          for (const name of await readdir(dir).catch(() => [] as string[])) {
            const pid = /^\.index\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name)?.[1];
            if (pid !== undefined && !isAlive(Number(pid))) await rm(join(dir, name), { force: true });
          }
        }
      }
    }
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

/** Whether a process other than this one runs with that pid. */
function isAlive(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
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

/** What a build is asked for: the generation the recorded index must reach, or (`force`) a build in any case. */
interface BuildRequest {
  generation: number;
  force: boolean;
}

interface CachedIndex {
  index: ChunkedIndex;
  generation: number;
  sha256: string;
  /** Where the index member starts in the file (after the signatures). */
  memberOffset: number;
}

interface CurrentChunks {
  index: ChunkedIndex;
  generation: number;
  newIds: number[];
  mode: 'delta' | 'full';
  /** The previous index file, for a delta build's untouched chunks. */
  file?: IndexFile;
}

interface IndexFile {
  source: FragmentSource;
  close(): void;
}

/**
 * An index file opened to read its member's chunks back. Synchronous reads:
 * the file was written by the previous build, so it is in the page cache,
 * and a few MB copy in about a millisecond.
 */
function openIndexFile(path: string, memberOffset: number): IndexFile {
  const fd = openSync(path, 'r');
  return {
    source(target, at, offset, length) {
      for (let done = 0; done < length; ) {
        const n = readSync(fd, target, at + done, length - done, memberOffset + offset + done);
        if (n === 0) throw new Error(`index file ${path} ends before its chunks`);
        done += n;
      }
    },
    close: () => closeSync(fd),
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
