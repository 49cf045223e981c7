import zlib from 'node:zlib';
import { compareVersions } from './version.ts';

/**
 * APKINDEX text kept as sorted chunks, each compressed once into a raw-deflate
 * fragment that ends with a full flush, so fragments concatenate into one
 * deflate stream (RFC 1951 §3.2.3: a full flush ends on a byte boundary with
 * no back-references into earlier data). A change recompresses only the
 * chunks it touches; the gzip member (RFC 1952) is then header + fragments +
 * a final empty block + CRC-32 (combined from per-chunk CRCs) + ISIZE, one
 * ordinary member that gzip, apk-tools and apko read (apk3 src/extract_v2.c,
 * apko pkg/apk/apk/index.go).
 *
 * Once a member is written, the indexer lets go of the fragments: a chunk
 * keeps only where its fragment sits in that member (and a CRC-32 of it),
 * and the bytes are read back from the file when the next member is put
 * together (a FragmentSource). An index of 100,000 entries then costs about
 * 200 KB of memory between builds instead of its 10 MB of fragments.
 *
 * Chunk boundaries are a pure function of the set of records, so applying
 * inserts and deletes gives byte for byte what a build from scratch gives:
 * a record ends a chunk when a hash of its first line (`C:`, itself a digest)
 * hits 1 in `averageRecords` (a content-defined cut, which an edit elsewhere
 * cannot move), or when the chunk since the previous cut reached `maxBytes`
 * (so a chunk stays small even if no cut comes; such cuts are counted from
 * the last content-defined one, so they too only move within that run).
 */

export interface ChunkingRule {
  /** A record ends a chunk with probability 1/averageRecords. */
  averageRecords: number;
  /** A chunk ends once its text reaches this many bytes. */
  maxBytes: number;
}

/**
 * ~256 records (~100 KB of Alpine-like text) per chunk: ~2-3 ms to recompress
 * one. On Alpine's real indexes the member is 2-4% larger than one-pass
 * `gzip -6` (each chunk starts without history); with 128 records, 4-7%.
 */
export const DEFAULT_CHUNKING: ChunkingRule = { averageRecords: 256, maxBytes: 384 * 1024 };

export interface ChunkedIndexOptions {
  /** DESCRIPTION text; at most 160 bytes are kept (apk 3 ignores longer ones, apk3 src/extract_v2.c). */
  description: string;
  /** mtime of both tar entries, seconds. */
  mtime: number;
}

/**
 * Copies `length` bytes of the member last written (see `written`), from
 * `offset` in it, into `target` at `at`; throws when it cannot.
 */
export type FragmentSource = (target: Buffer, at: number, offset: number, length: number) => void;

/** A gzip member as planned: its length, and how to write it. */
export interface MemberPlan {
  length: number;
  /**
   * Writes the member into `out` at `at`, reading the fragments of the last
   * written member through `source`, each checked against its CRC-32.
   */
  writeTo(out: Buffer, at: number, source?: FragmentSource): void;
}

interface Chunk {
  /** Raw deflate, ended by Z_FULL_FLUSH; no final block. Held until a member holding it is written. */
  fragment: Buffer | undefined;
  /** Where the fragment starts in the last written member; -1 until it is in one. */
  offset: number;
  fragmentLength: number;
  /** CRC-32 of the fragment: bytes read back from a file are checked against it before they are reused. */
  fragmentCrc: number;
  /** CRC-32 of the text. */
  crc: number;
  /** Uncompressed bytes. */
  length: number;
  count: number;
  /** The last record, to find the chunk a record belongs to. */
  last: RecordKey;
  /** Ends at a content-defined cut (not at maxBytes, nor merely at the end of the index). */
  natural: boolean;
  /** The records, while an update works on this chunk (dropped after). */
  records?: RecordKey[];
}

interface RecordKey {
  lower: string;
  name: string;
  version: string;
  /** The whole record as written, ending with its empty line. */
  text: string;
}

const DEFLATE_LEVEL = 6;
const MAX_DESCRIPTION = 160;
/** The last block of the stream: an empty fixed-Huffman block with BFINAL set (what Z_FINISH of nothing writes). */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);
/** gzip header: deflate, no flags, mtime 0, XFL 0, OS 3 (Unix), the same as reef's one-pass writer. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

export class ChunkedIndex {
  private chunks: Chunk[] = [];
  /** Where each chunk's fragment went in the member last planned (applied by `written`). */
  private planned: number[] | undefined;

  private constructor(private readonly rule: ChunkingRule) {}

  /** From scratch: sorts `records` (APKINDEX records, each ending with an empty line) and chunks them. */
  static build(records: string[], rule: ChunkingRule = DEFAULT_CHUNKING): ChunkedIndex {
    const builder = ChunkedIndex.builder(rule);
    builder.add(records);
    return builder.finish();
  }

  /**
   * From scratch, a run of records at a time, each compressed as soon as its
   * chunk is complete: a full build holds one chunk of text, not the index.
   * Each `add` takes records that all sort after those of earlier calls (in
   * any order among themselves); the result is the bytes of `build`.
   */
  static builder(rule: ChunkingRule = DEFAULT_CHUNKING): {
    add(records: string[]): void;
    finish(): ChunkedIndex;
  } {
    const index = new ChunkedIndex(rule);
    const chunks: Chunk[] = [];
    const splitter = new Splitter(rule, (records, natural) => chunks.push(compressChunk(records, natural)));
    let previous: RecordKey | undefined;
    return {
      add(records) {
        for (const r of sortedKeys(records)) {
          if (previous && compareRecords(previous, r) >= 0)
            throw new Error('index records added out of order');
          splitter.push(r);
          previous = r;
        }
      },
      finish() {
        splitter.end();
        index.chunks = chunks;
        return index;
      },
    };
  }

  /**
   * The chunks of a member written with the same rule (the live index file,
   * after a restart), found without recompressing anything: each fragment
   * ends with the empty stored block of its full flush (00 00 FF FF), and a
   * candidate is accepted only if it inflates to records that are exactly a
   * chunk the rule cuts. The head, the tail and the trailer's CRC-32 and
   * length must then be what `member` writes. Anything else throws a
   * ChunkReadBackError, and the caller builds from the records instead.
   * Holds one chunk of text at a time.
   */
  static fromMember(
    member: Buffer,
    options: ChunkedIndexOptions,
    rule: ChunkingRule = DEFAULT_CHUNKING,
  ): ChunkedIndex {
    const fail = (why: string) =>
      new ChunkReadBackError(`the index member does not read back as chunks: ${why}`);
    if (!member.subarray(0, GZIP_HEADER.length).equals(GZIP_HEADER)) throw fail('not the header reef writes');
    const description = Buffer.from(options.description).subarray(0, MAX_DESCRIPTION);
    const prefixLength = 1024 + description.length + tarPadding(description.length);
    // The tar headers come first, in a fragment of their own.
    const head = nextFragment(member, GZIP_HEADER.length, prefixLength, (text) =>
      text.length === prefixLength ? text : undefined,
    );
    if (!head) throw fail('no DESCRIPTION and APKINDEX headers');
    const apkindex = head.value.subarray(prefixLength - 512);
    const textLength = Number.parseInt(apkindex.subarray(124, 136).toString('latin1').trim(), 8);
    if (!Number.isSafeInteger(textLength) || textLength < 0) throw fail('no APKINDEX size');
    const prefix = Buffer.concat([
      ustarHeader('DESCRIPTION', description.length, options.mtime),
      description,
      Buffer.alloc(tarPadding(description.length)),
      ustarHeader('APKINDEX', textLength, options.mtime),
    ]);
    if (!prefix.equals(head.value)) throw fail('other tar headers than reef writes');

    const index = new ChunkedIndex(rule);
    let at = head.end;
    let seen = 0;
    let previous: RecordKey | undefined;
    while (seen < textLength) {
      const found = nextFragment(member, at, textLength - seen, (text) => {
        const records = chunkRecords(text, rule, previous, seen + text.length === textLength);
        return records && { text, records };
      });
      if (!found) throw fail(`no chunk at byte ${at}`);
      const { text, records } = found.value;
      const last = records[records.length - 1]!;
      // Found in a written member: its place is known, its bytes are not held.
      index.chunks.push({
        ...chunkOf(member.subarray(at, found.end), text, records, isCut(last, rule)),
        fragment: undefined,
        offset: at,
      });
      previous = last;
      seen += text.length;
      at = found.end;
    }
    // What `member` would write around these chunks, trailer included, must be what is there.
    const plan = index.member(options);
    if (plan.length !== member.length) throw fail('its length is not that of its chunks');
    const out = Buffer.allocUnsafe(plan.length);
    plan.writeTo(out, 0, (target, to, offset, length) => member.copy(target, to, offset, offset + length));
    if (!out.equals(member)) throw fail('its head or tail differs from what its chunks give');
    index.written();
    return index;
  }

  get count(): number {
    let n = 0;
    for (const c of this.chunks) n += c.count;
    return n;
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  /** Bytes of the fragments held in memory (none once a member holding them is written). */
  get heldBytes(): number {
    let n = 0;
    for (const c of this.chunks) n += c.fragment?.length ?? 0;
    return n;
  }

  /** Bytes of APKINDEX text. */
  get textLength(): number {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  /**
   * Removes and adds records (exact texts). Touches only the chunks the
   * records fall in, plus their neighbours when a content-defined cut comes
   * or goes; `source` gives back the fragments of those already written.
   * Throws, leaving the index as it was, when a removed record is absent or
   * an added one present.
   */
  update(changes: { add: string[]; remove: string[] }, source?: FragmentSource): void {
    if (changes.add.length === 0 && changes.remove.length === 0) return;
    const old = this.chunks;
    if (old.length === 0) {
      if (changes.remove.length > 0) throw new Error('index record to remove is not listed');
      const rebuilt = ChunkedIndex.build(changes.add, this.rule);
      this.chunks = rebuilt.chunks;
      return;
    }
    const adds = new Map<number, RecordKey[]>();
    const removes = new Map<number, RecordKey[]>();
    const place = (map: Map<number, RecordKey[]>, key: RecordKey, forRemoval: boolean) => {
      let i = this.chunkFor(key);
      if (i === old.length) {
        if (forRemoval) throw new Error('index record to remove is not listed');
        i = old.length - 1;
      }
      const list = map.get(i);
      if (list) list.push(key);
      else map.set(i, [key]);
    };
    for (const t of changes.remove) place(removes, recordKey(t), true);
    for (const t of changes.add) place(adds, recordKey(t), false);
    try {
      this.chunks = this.rechunk(old, adds, removes, source);
    } finally {
      // Inflated records are only needed while rechunking; kept, they would double the memory.
      for (const c of old) c.records = undefined;
      this.forgetRecords();
    }
  }

  /** The new chunk list: untouched chunks as they are, each touched span rechunked. */
  private rechunk(
    old: Chunk[],
    adds: Map<number, RecordKey[]>,
    removes: Map<number, RecordKey[]>,
    source: FragmentSource | undefined,
  ): Chunk[] {
    const out: Chunk[] = [];
    let i = 0;
    while (i < old.length) {
      if (!adds.has(i) && !removes.has(i)) {
        out.push(old[i]!);
        i++;
        continue;
      }
      // A span runs from just after a content-defined cut to the next one.
      const span: Chunk[] = [];
      while (out.length > 0 && !out[out.length - 1]!.natural) span.unshift(out.pop()!);
      const records: RecordKey[] = span.flatMap((c) => this.recordsOf(c, source));
      const take = () => {
        const c = old[i]!;
        span.push(c);
        let rs = this.recordsOf(c, source);
        const gone = removes.get(i);
        const come = adds.get(i);
        if (gone || come) rs = applyChanges(rs, come ?? [], gone ?? []);
        records.push(...rs);
        i++;
        return c;
      };
      let c = take();
      while (!c.natural && i < old.length) c = take();
      // The cut that ended this span was removed: the span runs on into the next one.
      while (i < old.length && (records.length === 0 || !this.isCut(records[records.length - 1]!))) {
        c = take();
        while (!c.natural && i < old.length) c = take();
      }
      out.push(...this.makeChunks(records, span));
    }
    return out;
  }

  /**
   * The gzip member holding DESCRIPTION then APKINDEX (a tar ended by two
   * zero blocks, the layout of reef's one-pass writer): every byte of text
   * comes from a fragment; only the tar headers and the padding are
   * compressed here.
   */
  member(options: ChunkedIndexOptions): MemberPlan {
    const description = Buffer.from(options.description).subarray(0, MAX_DESCRIPTION);
    const textLength = this.textLength;
    const prefix = Buffer.concat([
      ustarHeader('DESCRIPTION', description.length, options.mtime),
      description,
      Buffer.alloc(tarPadding(description.length)),
      ustarHeader('APKINDEX', textLength, options.mtime),
    ]);
    const suffix = Buffer.alloc(tarPadding(textLength) + 1024);
    let crc = zlib.crc32(prefix);
    for (const c of this.chunks) crc = crc32Combine(crc, c.crc, c.length);
    crc = crc32Combine(crc, zlib.crc32(suffix), suffix.length);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE((prefix.length + textLength + suffix.length) % 2 ** 32, 4);
    const head = Buffer.concat([GZIP_HEADER, deflateFragment(prefix)]);
    const tail = Buffer.concat([deflateFragment(suffix), FINAL_BLOCK, trailer]);
    const chunks = this.chunks;
    let length = head.length + tail.length;
    for (const c of chunks) length += c.fragmentLength;
    return {
      length,
      writeTo: (out, at, source) => {
        const placed: number[] = [];
        let pos = head.copy(out, at);
        for (let i = 0; i < chunks.length; ) {
          const c = chunks[i]!;
          placed.push(pos);
          if (c.fragment) {
            pos += c.fragment.copy(out, at + pos);
            i++;
            continue;
          }
          // A run of fragments that lay back to back in the last member: one read.
          let j = i + 1;
          let runLength = c.fragmentLength;
          while (j < chunks.length && !chunks[j]!.fragment && chunks[j]!.offset === c.offset + runLength) {
            placed.push(pos + runLength);
            runLength += chunks[j]!.fragmentLength;
            j++;
          }
          readBack(source, out, at + pos, c.offset, runLength);
          for (let k = i; k < j; k++) checkFragment(chunks[k]!, out, at + placed[k]!);
          pos += runLength;
          i = j;
        }
        tail.copy(out, at + pos);
        this.planned = placed;
      },
    };
  }

  /** The member in a buffer of its own (tests, and indexes that were never written). */
  assemble(options: ChunkedIndexOptions, source?: FragmentSource): Buffer {
    const plan = this.member(options);
    const out = Buffer.allocUnsafe(plan.length);
    plan.writeTo(out, 0, source);
    return out;
  }

  /**
   * The member last written by `member(…).writeTo` is stored: from now on
   * the fragments are read back from it, and their buffers are let go.
   */
  written(): void {
    const placed = this.planned;
    if (!placed || placed.length !== this.chunks.length)
      throw new Error('no member of these chunks was written');
    for (const [i, c] of this.chunks.entries()) {
      c.offset = placed[i]!;
      c.fragment = undefined;
    }
    this.planned = undefined;
  }

  /** Every record in index order (tests and diagnostics; linear in the index). */
  records(source?: FragmentSource): string[] {
    return this.chunks.flatMap((c) => {
      const texts = this.recordsOf(c, source).map((r) => r.text);
      c.records = undefined;
      return texts;
    });
  }

  /** How the records are split: records per chunk (tests compare chunkings). */
  layout(): number[] {
    return this.chunks.map((c) => c.count);
  }

  /** Index of the first chunk whose last record is >= key; chunks.length when none is. */
  private chunkFor(key: RecordKey): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareRecords(this.chunks[mid]!.last, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private isCut(r: RecordKey): boolean {
    return isCut(r, this.rule);
  }

  /**
   * Chunks of sorted records that start right after a cut (or at the start).
   * A chunk whose records are exactly those of one in `reuse` keeps its
   * fragment instead of being recompressed.
   */
  private makeChunks(records: RecordKey[], reuse: Chunk[]): Chunk[] {
    const chunks: Chunk[] = [];
    const splitter = new Splitter(this.rule, (group, natural) => {
      const same = reuse.find((c) => c.records && sameRecords(c.records, group));
      chunks.push(same ? { ...same, natural } : compressChunk(group, natural));
    });
    for (const r of records) splitter.push(r);
    splitter.end();
    return chunks;
  }

  /** A chunk's records: kept while fresh, else inflated from its fragment (read back when not held). */
  private recordsOf(c: Chunk, source: FragmentSource | undefined): RecordKey[] {
    if (c.records) return c.records;
    let fragment = c.fragment;
    if (!fragment) {
      fragment = Buffer.allocUnsafe(c.fragmentLength);
      readBack(source, fragment, 0, c.offset, c.fragmentLength);
      checkFragment(c, fragment, 0);
    }
    // The fragment is reef's own output; its size is known, and bounded by it.
    const text = zlib
      .inflateRawSync(fragment, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: c.length })
      .toString('utf8');
    const records = splitRecords(text).map(recordKey);
    if (records.length !== c.count) throw new Error('index chunk does not hold its records');
    c.records = records;
    return records;
  }

  private forgetRecords(): void {
    for (const c of this.chunks) c.records = undefined;
  }
}

/**
 * Where chunks end, fed one sorted record at a time: after a record that is
 * a content-defined cut, or once the chunk's text reaches maxBytes.
 */
class Splitter {
  private records: RecordKey[] = [];
  private bytes = 0;

  constructor(
    private readonly rule: ChunkingRule,
    private readonly emit: (records: RecordKey[], natural: boolean) => void,
  ) {}

  push(r: RecordKey): void {
    this.records.push(r);
    this.bytes += Buffer.byteLength(r.text);
    const natural = isCut(r, this.rule);
    if (natural || this.bytes >= this.rule.maxBytes) this.flush(natural);
  }

  /** The last chunk, unless the last record was a cut. */
  end(): void {
    if (this.records.length > 0) this.flush(false);
  }

  private flush(natural: boolean): void {
    const records = this.records;
    this.records = [];
    this.bytes = 0;
    this.emit(records, natural);
  }
}

function isCut(r: RecordKey, rule: ChunkingRule): boolean {
  return cutHash(r.text) % rule.averageRecords === 0;
}

function compressChunk(records: RecordKey[], natural: boolean): Chunk {
  const text = Buffer.from(records.map((r) => r.text).join(''));
  return chunkOf(deflateFragment(text), text, records, natural);
}

/** The chunk of `records`, whose text is `text` and compressed bytes `fragment` (held, not yet written). */
function chunkOf(fragment: Buffer, text: Buffer, records: RecordKey[], natural: boolean): Chunk {
  return {
    fragment,
    offset: -1,
    fragmentLength: fragment.length,
    fragmentCrc: zlib.crc32(fragment),
    crc: zlib.crc32(text),
    length: text.length,
    count: records.length,
    last: detached(records[records.length - 1]!),
    natural,
  };
}

/**
 * A copy of a record's key holding no reference to the text it was sliced
 * from: V8 keeps a slice's parent string alive, and a chunk's last record
 * sliced from its inflated text would keep all of that text.
 */
function detached(r: RecordKey): RecordKey {
  return JSON.parse(JSON.stringify(r)) as RecordKey;
}

/** The empty stored block a full flush ends with. */
const FLUSH_END = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * The first fragment of `member` from `at` (ended by FLUSH_END, at most
 * `maxText` bytes inflated) whose text `accept` takes. A false end (the
 * four bytes inside compressed data) inflates to a strict prefix of the real
 * text, which `accept` must refuse.
 */
function nextFragment<T>(
  member: Buffer,
  at: number,
  maxText: number,
  accept: (text: Buffer) => T | undefined,
): { value: T; end: number } | undefined {
  for (let q = member.indexOf(FLUSH_END, at); q >= 0; q = member.indexOf(FLUSH_END, q + 1)) {
    let text: Buffer;
    try {
      text = zlib.inflateRawSync(member.subarray(at, q + FLUSH_END.length), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        maxOutputLength: Math.max(1, maxText),
      });
    } catch {
      continue; // cut inside a block, or more text than is left
    }
    const value = accept(text);
    if (value !== undefined) return { value, end: q + FLUSH_END.length };
  }
  return undefined;
}

/**
 * The records of `text` if they are exactly one chunk under `rule`: sorted
 * after `previous`, no cut and no full chunk before the last record, and the
 * last one a cut, a full chunk, or the end of the index.
 */
function chunkRecords(
  text: Buffer,
  rule: ChunkingRule,
  previous: RecordKey | undefined,
  atEnd: boolean,
): RecordKey[] | undefined {
  let records: RecordKey[];
  try {
    const string = text.toString('utf8');
    if (Buffer.byteLength(string) !== text.length) return undefined;
    records = splitRecords(string).map(recordKey);
  } catch {
    return undefined;
  }
  let bytes = 0;
  for (const [i, r] of records.entries()) {
    if (previous && compareRecords(previous, r) >= 0) return undefined;
    previous = r;
    bytes += Buffer.byteLength(r.text);
    const ends = isCut(r, rule) || bytes >= rule.maxBytes;
    if (i < records.length - 1 ? ends : !(ends || atEnd)) return undefined;
  }
  return records.length > 0 ? records : undefined;
}

/**
 * Where the APKINDEX member of an index file starts: after the signature
 * member when the first member is one (its first entry is a `.SIGN.` file,
 * apk2 src/package.c), else at 0.
 */
export function indexMemberOffset(file: Buffer): number {
  if (!file.subarray(0, GZIP_HEADER.length).equals(GZIP_HEADER))
    throw new ChunkReadBackError('not a gzip file reef wrote');
  const body = file.subarray(GZIP_HEADER.length);
  const start = zlib.inflateRawSync(body.subarray(0, 2048), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  if (!start.subarray(0, 6).equals(Buffer.from('.SIGN.'))) return 0;
  // zlib stops at the end of the deflate stream; what it consumed is where the trailer starts.
  const { engine } = zlib.inflateRawSync(body, { info: true }) as unknown as {
    engine: { bytesWritten: number };
  };
  return GZIP_HEADER.length + engine.bytesWritten + 8;
}

/** Written fragments could not be read back as they were: the index must be built from its records. */
export class ChunkReadBackError extends Error {
  override name = 'ChunkReadBackError';
}

function readBack(
  source: FragmentSource | undefined,
  target: Buffer,
  at: number,
  offset: number,
  length: number,
): void {
  if (!source || offset < 0) throw new ChunkReadBackError('index chunk bytes are neither held nor written');
  try {
    source(target, at, offset, length);
  } catch (err) {
    throw new ChunkReadBackError('index chunk bytes could not be read back', { cause: err });
  }
}

function checkFragment(c: Chunk, bytes: Buffer, at: number): void {
  if (zlib.crc32(bytes.subarray(at, at + c.fragmentLength)) !== c.fragmentCrc) {
    throw new ChunkReadBackError('index chunk read back does not match its CRC-32');
  }
}

function sortedKeys(records: string[]): RecordKey[] {
  const keys = records.map(recordKey).sort(compareRecords);
  for (let i = 1; i < keys.length; i++) {
    if (compareRecords(keys[i - 1]!, keys[i]!) === 0) throw new Error('duplicate index record');
  }
  return keys;
}

/** Sorted `records` with `remove` taken out and `add` put in. */
function applyChanges(records: RecordKey[], add: RecordKey[], remove: RecordKey[]): RecordKey[] {
  const out = records.slice();
  for (const r of remove) {
    const at = search(out, r);
    if (at >= out.length || compareRecords(out[at]!, r) !== 0) {
      throw new Error('index record to remove is not listed');
    }
    out.splice(at, 1);
  }
  for (const r of add) {
    const at = search(out, r);
    if (at < out.length && compareRecords(out[at]!, r) === 0) throw new Error('index record is listed twice');
    out.splice(at, 0, r);
  }
  return out;
}

/** First position whose record is >= key. */
function search(records: RecordKey[], key: RecordKey): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareRecords(records[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sameRecords(a: RecordKey[], b: RecordKey[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.text !== b[i]!.text) return false;
  return true;
}

/**
 * Items (packages) in index order by name and version; one name-version in
 * two arches, which only the record text orders, comes out side by side.
 */
export function sortForIndex<T extends { name: string; version: string }>(items: T[]): T[] {
  const keyed = items.map((item) => ({
    item,
    key: { lower: item.name.toLowerCase(), name: item.name, version: item.version, text: '' },
  }));
  keyed.sort((a, b) => compareRecords(a.key, b.key));
  return keyed.map((k) => k.item);
}

/**
 * apk 2.14's order (apk2 src/database.c `__apk_db_foreach_sorted_package`):
 * name case-insensitively, ties bytewise, then version ascending; then the
 * version string and the record text, so that equal versions ("1.0" and
 * "1.00") and one name-version in two arches (x86_64 and noarch) still have
 * one order.
 */
export function compareRecords(a: RecordKey, b: RecordKey): number {
  if (a.lower !== b.lower) return a.lower < b.lower ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  const v = compareVersions(a.version, b.version);
  if (v !== 0) return v;
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  if (a.text !== b.text) return a.text < b.text ? -1 : 1;
  return 0;
}

/** A record as reef renders it starts `C:…\nP:…\nV:…\n` (index-writer.ts renderIndexRecord). */
function recordKey(text: string): RecordKey {
  const p = text.indexOf('\nP:');
  const pEnd = text.indexOf('\n', p + 3);
  const v = text.indexOf('\nV:', pEnd - 1);
  const vEnd = text.indexOf('\n', v + 3);
  if (!text.startsWith('C:') || p < 0 || pEnd < 0 || v !== pEnd || vEnd < 0 || !text.endsWith('\n\n')) {
    throw new Error(`not an index record: ${JSON.stringify(text.slice(0, 80))}`);
  }
  const name = text.slice(p + 3, pEnd);
  return { lower: name.toLowerCase(), name, version: text.slice(v + 3, vEnd), text };
}

/** Records of APKINDEX text, each with its ending empty line. */
function splitRecords(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n\n', start);
    if (end < 0) throw new Error('index chunk ends inside a record');
    out.push(text.slice(start, end + 2));
    start = end + 2;
  }
  return out;
}

/** FNV-1a over the record's first line, then murmur3's finalizer so every bit mixes. */
function cutHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) break;
    h = Math.imul(h ^ c, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function deflateFragment(data: Buffer): Buffer {
  return zlib.deflateRawSync(data, { level: DEFLATE_LEVEL, finishFlush: zlib.constants.Z_FULL_FLUSH });
}

const tarPadding = (n: number) => (512 - (n % 512)) % 512;

/** A ustar header as tar-stream writes it for reef's index entries (root, 0644, regular file). */
export function ustarHeader(name: string, size: number, mtime: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'ascii');
  b.write(octal(0o644, 6), 100);
  b.write(octal(0, 6), 108);
  b.write(octal(0, 6), 116);
  b.write(octal(size, 11), 124);
  b.write(octal(mtime, 11), 136);
  b[156] = 0x30; // '0': regular file
  b.write('ustar\x0000', 257, 'latin1');
  b.write('root', 265);
  b.write('root', 297);
  b.write(octal(0, 6), 329);
  b.write(octal(0, 6), 337);
  let sum = 8 * 32; // the checksum field counts as spaces
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += b[i]!;
  b.write(octal(sum, 6), 148);
  return b;
}

function octal(value: number, digits: number): string {
  const s = value.toString(8);
  if (s.length > digits) throw new Error(`${value} does not fit ${digits} octal digits`);
  return `${'0'.repeat(digits - s.length)}${s} `;
}

// CRC-32 combination (zlib 1.2.12 crc32_combine): crc(A+B) from crc(A), crc(B)
// and len(B), by multiplying crc(A) by x^(8·len(B)) modulo the CRC polynomial.

const POLY = 0xedb88320;

/** a·b modulo the CRC-32 polynomial, bit-reflected as zlib keeps it. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) mod p. */
const X2N: number[] = (() => {
  const table: number[] = [];
  let p = 0x40000000; // x^1
  table.push(p);
  for (let n = 1; n < 32; n++) {
    p = multModP(p, p);
    table.push(p);
  }
  return table;
})();

/** x^(n·2^k) mod p. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0 = 1
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** CRC-32 of A followed by B, from crc(A), crc(B) and the length of B in bytes. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multModP(x2nModP(lengthB, 3), crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
}
