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
import type { IndexChange, IndexKey, PackageStore } from '../store/package-store.ts';
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
 * against its CRC-32. The first build after start reads every record from
 * the database, a run at a time; later builds apply only the changes the
 * store reported since (its change listener), recompressing the chunks they
 * touch. Those changes are trusted
 * only when their generations run without a gap from the generation the
 * chunks were built at to the database's current one; anything else (another
 * process wrote, a change not reported yet, a build failed) means a full build.
 * The store reports a change once its transaction has committed, so a change
 * reported at or below a build's generation is in that build already, and
 * one above it waits for the next.
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

  private readonly slots = new Map<string, { running: Promise<void>; next?: Deferred }>();
  /** The chunks of each index as last written, with the generation and file they match. */
  private readonly cached = new Map<string, CachedIndex>();
  /** One buffer the index bytes are written into, reused by whichever build is not waiting on another. */
  private scratch: Buffer | undefined;
  private scratchInUse = false;
  private readonly chunking: ChunkingRule;
  /** Changes reported by the store since each index's last build started ('overflow': too many to keep). */
  private readonly pending = new Map<string, IndexChange[] | 'overflow'>();
  /** Resolved at the store's next report, for a build that waits for a change it read before it was reported. */
  private nextReport: Deferred | undefined;

  constructor(
    private readonly store: PackageStore,
    private readonly dataDir: string,
    /** Read at every build, so a key rotation applies to the next index written. */
    private readonly signers: () => IndexSigner[],
    private readonly log: Logger,
    options: { chunking?: ChunkingRule } = {},
  ) {
    this.chunking = options.chunking ?? DEFAULT_CHUNKING;
    store.onIndexChange((changes) => {
      for (const c of changes) {
        const id = indexId(c.key);
        const list = this.pending.get(id);
        if (list === 'overflow') continue;
        // A bulk import does not pile changes up here: past the bound, the next build is a full one.
        if (list && list.length >= MAX_PENDING) this.pending.set(id, 'overflow');
        else if (list) list.push(c);
        else this.pending.set(id, [c]);
      }
      this.nextReport?.resolve();
      this.nextReport = undefined;
    });
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

  /** Resolves once every given index reflects the database as it was at the call. */
  async refresh(keys: IndexKey[]): Promise<void> {
    await Promise.all(uniqueKeys(keys).map((k) => this.refreshOne(k)));
  }

  private refreshOne(key: IndexKey): Promise<void> {
    const id = indexId(key);
    const slot = this.slots.get(id);
    if (!slot) {
      const running = this.runLoop(id, key);
      this.slots.set(id, { running });
      return running;
    }
    slot.next ??= deferred();
    return slot.next.promise;
  }

  private async runLoop(id: string, key: IndexKey): Promise<void> {
    try {
      await this.build(key);
    } finally {
      const slot = this.slots.get(id)!;
      const next = slot.next;
      if (next) {
        slot.next = undefined;
        slot.running = this.runLoop(id, key);
        slot.running.then(next.resolve, next.reject);
      } else {
        this.slots.delete(id);
      }
    }
  }

  private async build(key: IndexKey): Promise<void> {
    const id = indexId(key);
    try {
      await this.buildOnce(id, key);
    } catch (err) {
      // The chunks may be ahead of what is recorded: the next build starts over.
      this.forget(id);
      throw err;
    }
  }

  /**
   * The chunks for the database as it is now, with the generation they show
   * and the packages they list that were not yet published. The changes
   * applied are those pending between the chunks' generation and the one
   * read; one reported later than that read, with a generation above it,
   * stays pending for the next build. A delta build also returns the open
   * file its untouched chunks are read back from; the caller closes it.
   */
  private async currentChunks(id: string, key: IndexKey): Promise<CurrentChunks> {
    let cache = this.cached.get(id);
    this.forget(id);
    cache ??= await this.reopen(id, key);
    let file: IndexFile | undefined;
    try {
      // Opened first: whatever happens to the path later, this build reads the file it was planned on.
      if (cache) file = openIndexFile(this.indexPath(key, cache.sha256), cache.memberOffset);
      const state = await this.store.getIndex(key);
      const generation = state?.generation ?? 0;
      const changes = cache && (await this.reportedBetween(id, cache.generation, generation));
      this.settle(id, generation);
      if (
        cache &&
        file &&
        state &&
        changes &&
        cache.generation === state.builtGeneration &&
        cache.sha256 === state.sha256
      ) {
        const add: string[] = [];
        const remove: string[] = [];
        const newIds: number[] = [];
        for (const c of changes) {
          const text = rewriteRecordArch(c.row.record, c.row.arch, key.arch);
          if (c.op === 'add') {
            add.push(text);
            newIds.push(c.row.id);
          } else {
            // Added and removed between two builds: it never reaches the index.
            const at = add.indexOf(text);
            if (at >= 0) add.splice(at, 1);
            else remove.push(text);
          }
        }
        cache.index.update({ add, remove }, file.source);
        return { index: cache.index, generation, newIds, mode: 'delta', file };
      }
    } catch (err) {
      this.log.warn({ index: key, err }, 'index changes did not apply to the cached chunks; full build');
    }
    file?.close();
    return { ...(await this.fullBuild(id, key)), mode: 'full' };
  }

  /**
   * After a start (or a failed build): the chunks of the live index file,
   * found again in it without recompressing (ChunkedIndex.fromMember), so
   * the first publish after a restart is a delta too. Only when the changes
   * since that file was built are all pending here, and only for a file
   * whose bytes still hash to its name: nothing but what reef wrote and
   * recorded is ever signed again.
   */
  private async reopen(id: string, key: IndexKey): Promise<CachedIndex | undefined> {
    const state = await this.store.getIndex(key);
    if (!state?.sha256 || !(await this.reportedBetween(id, state.builtGeneration, state.generation))) {
      return undefined;
    }
    try {
      const bytes = await readFile(this.indexPath(key, state.sha256));
      if (createHash('sha256').update(bytes).digest('hex') !== state.sha256) {
        throw new ChunkReadBackError('the index file does not hash to its name');
      }
      const memberOffset = indexMemberOffset(bytes);
      const index = ChunkedIndex.fromMember(
        bytes.subarray(memberOffset),
        { description: describe(key), mtime: 0 },
        this.chunking,
      );
      return { index, generation: state.builtGeneration, sha256: state.sha256, memberOffset };
    } catch (err) {
      this.log.info({ index: key, err }, 'the live index file does not read back as chunks; full build');
      return undefined;
    }
  }

  /**
   * The changes pending for `id` that lead from generation `from` to `to`,
   * in generation order, or undefined when one of them is missing (written
   * by another process, not reported yet, or past the bound).
   */
  private changesBetween(id: string, from: number, to: number): IndexChange[] | undefined {
    const pending = this.pending.get(id) ?? [];
    if (pending === 'overflow') return undefined;
    // Reported in the order the commits' callbacks ran, which need not be generation order.
    const changes = pending
      .filter((c) => c.generation > from && c.generation <= to)
      .sort((a, b) => a.generation - b.generation);
    const complete = changes.length === to - from && changes.every((c, i) => c.generation === from + 1 + i);
    return complete ? changes : undefined;
  }

  /**
   * changesBetween, waiting a little for changes not reported yet: a commit
   * is visible to a read before its report arrives (the store reports after
   * its commit has returned: a few microtasks on SQLite, a round trip on
   * PostgreSQL). A change another process made is never reported here: after
   * REPORT_WAIT_MS the build goes on without it, in full.
   */
  private async reportedBetween(id: string, from: number, to: number): Promise<IndexChange[] | undefined> {
    const deadline = performance.now() + REPORT_WAIT_MS;
    for (;;) {
      const changes = this.changesBetween(id, from, to);
      const left = deadline - performance.now();
      if (changes || this.pending.get(id) === 'overflow' || left <= 0) return changes;
      this.nextReport ??= deferred();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.nextReport.promise,
        new Promise((resolve) => {
          timer = setTimeout(resolve, left);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  /** Drops the changes pending for `id` up to generation `upTo`: a build of that generation shows them. */
  private settle(id: string, upTo: number): void {
    const pending = this.pending.get(id);
    if (pending === undefined || pending === 'overflow') return;
    const later = pending.filter((c) => c.generation > upTo);
    if (later.length > 0) this.pending.set(id, later);
    else this.pending.delete(id);
  }

  /**
   * Every record of the index from the database, sorted by name and version
   * first and then read and compressed a run at a time, giving the event
   * loop a turn every ~20 ms: 100,000 entries are ~35 MB of text and a second
   * of compression, which would otherwise hold memory and every request.
   */
  private async fullBuild(
    id: string,
    key: IndexKey,
  ): Promise<{ index: ChunkedIndex; generation: number; newIds: number[] }> {
    for (let attempt = 1; ; attempt++) {
      // Before the snapshot: what is reported from here on is either in it or after its generation.
      this.pending.delete(id);
      // A third attempt reads in one snapshot, without a break: no delete can come between its reads.
      const breaks = attempt < 3;
      const read = () => this.readIndex(key, breaks);
      const built = breaks ? await read() : await this.store.snapshot(read);
      if (built) {
        this.settle(id, built.generation);
        return built;
      }
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
      await this.publishBuild(key, { ...(await this.fullBuild(id, key)), mode: 'full' }, started);
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
   * missing, or that is not signed by exactly the current keys.
   */
  async recover(): Promise<IndexKey[]> {
    await this.sweepTempFiles();
    const signedBy = this.signers()
      .map((s) => s.keyName)
      .join(',');
    const todo: IndexKey[] = [...(await this.store.staleIndexes())];
    for (const index of await this.store.listIndexes()) {
      if (!index.sha256) continue;
      const size = await stat(this.indexPath(index, index.sha256)).then(
        (s) => s.size,
        () => undefined,
      );
      if (size !== index.size || index.signedBy !== signedBy) todo.push(index);
    }
    const keys = uniqueKeys(todo.map(({ repo, libc, arch }) => ({ repo, libc, arch })));
    await this.refreshInTurn(keys);
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
    await this.refreshInTurn(keys);
    return keys;
  }

  /**
   * One index after another: a full build holds every record of its index
   * in memory, and ten full builds of 100,000 entries at once peaked at
   * ~1 GB RSS where one at a time stays near the size of one.
   */
  private async refreshInTurn(keys: IndexKey[]): Promise<void> {
    for (const key of keys) await this.refresh([key]);
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

/** How long a build waits for changes it read to be reported (see reportedBetween). */
const REPORT_WAIT_MS = 25;

/** Changes kept per index between builds (~0.5 MB); a bulk import past it gets a full build. */
const MAX_PENDING = 1024;

/** Reads per index full build: ~200 KB of records held at a time. */
const RECORD_RUN = 512;

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
