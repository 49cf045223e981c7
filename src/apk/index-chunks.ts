import zlib from 'node:zlib';
import { compareVersions } from './version.ts';

/**
 * APKINDEX text kept as sorted chunks, each compressed once into a raw-deflate
 * fragment that ends with a full flush, so fragments concatenate into one
 * deflate stream (RFC 1951 §3.2.3: a full flush ends on a byte boundary with
 * no back-references into earlier data). A change recompresses only the
 * chunks it touches; the gzip member (RFC 1952) is then header + fragments +
 * a final empty block + CRC-32 (combined from per-chunk CRCs) + ISIZE, one
 * ordinary member that gzip, apk-tools and apko read (apk-format.md §3.2).
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
  /** DESCRIPTION text; at most 160 bytes are kept (apk 3 ignores longer ones, §3.2). */
  description: string;
  /** mtime of both tar entries, seconds. */
  mtime: number;
}

interface Chunk {
  /** Raw deflate, ended by Z_FULL_FLUSH; no final block. */
  fragment: Buffer;
  crc: number;
  /** Uncompressed bytes. */
  length: number;
  count: number;
  /** The last record, to find the chunk a record belongs to. */
  last: RecordKey;
  /** Ends at a content-defined cut (not at maxBytes, nor merely at the end of the index). */
  natural: boolean;
  /** The records, while this chunk is fresh from a build or an update (dropped after). */
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

  private constructor(private readonly rule: ChunkingRule) {}

  /** From scratch: sorts `records` (APKINDEX records, each ending with an empty line) and chunks them. */
  static build(records: string[], rule: ChunkingRule = DEFAULT_CHUNKING): ChunkedIndex {
    const index = new ChunkedIndex(rule);
    index.chunks = index.makeChunks(sortedKeys(records));
    index.forgetRecords();
    return index;
  }

  /**
   * As build, the same bytes, giving the event loop a turn every ~20 ms: a
   * full build of 100,000 entries compresses ~35 MB (about a second), which
   * would otherwise hold every request for that long. (zlib's asynchronous
   * calls, one per chunk, measured twice as slow in total.)
   */
  static async buildAsync(records: string[], rule: ChunkingRule = DEFAULT_CHUNKING): Promise<ChunkedIndex> {
    const index = new ChunkedIndex(rule);
    const groups = index.split(sortedKeys(records));
    const chunks: Chunk[] = [];
    let turn = performance.now();
    for (const g of groups) {
      chunks.push(index.makeChunk(g.records, g.natural, []));
      if (performance.now() - turn > 20) {
        await new Promise((resolve) => setImmediate(resolve));
        turn = performance.now();
      }
    }
    index.chunks = chunks;
    index.forgetRecords();
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

  /** Bytes of the cached fragments (what this index holds in memory). */
  get compressedBytes(): number {
    let n = 0;
    for (const c of this.chunks) n += c.fragment.length;
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
   * or goes. Throws, leaving the index as it was, when a removed record is
   * absent or an added one present.
   */
  update(changes: { add: string[]; remove: string[] }): void {
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
      this.chunks = this.rechunk(old, adds, removes);
    } finally {
      // Inflated records are only needed while rechunking; kept, they would double the memory.
      for (const c of old) c.records = undefined;
      this.forgetRecords();
    }
  }

  /** The new chunk list: untouched chunks as they are, each touched span rechunked. */
  private rechunk(old: Chunk[], adds: Map<number, RecordKey[]>, removes: Map<number, RecordKey[]>): Chunk[] {
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
      const records: RecordKey[] = span.flatMap((c) => this.recordsOf(c));
      const take = () => {
        const c = old[i]!;
        span.push(c);
        let rs = this.recordsOf(c);
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
   * comes from a cached fragment; only the tar headers and the padding are
   * compressed here.
   */
  assemble(options: ChunkedIndexOptions): Buffer {
    return Buffer.concat(this.assembleParts(options));
  }

  /** The member as the list of its pieces, in order (to copy once into a bigger buffer). */
  assembleParts(options: ChunkedIndexOptions): Buffer[] {
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
    return [
      GZIP_HEADER,
      deflateFragment(prefix),
      ...this.chunks.map((c) => c.fragment),
      deflateFragment(suffix),
      FINAL_BLOCK,
      trailer,
    ];
  }

  /** Every record in index order (tests and diagnostics; linear in the index). */
  records(): string[] {
    return this.chunks.flatMap((c) => this.recordsOf(c).map((r) => r.text));
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
    return cutHash(r.text) % this.rule.averageRecords === 0;
  }

  /**
   * Chunks of sorted records that start right after a cut (or at the start).
   * A chunk whose records are exactly those of one in `reuse` keeps its
   * fragment instead of being recompressed.
   */
  private makeChunks(records: RecordKey[], reuse: Chunk[] = []): Chunk[] {
    return this.split(records).map((g) => this.makeChunk(g.records, g.natural, reuse));
  }

  /** Where the chunks of `records` (sorted, starting right after a cut) end. */
  private split(records: RecordKey[]): Array<{ records: RecordKey[]; natural: boolean }> {
    const groups: Array<{ records: RecordKey[]; natural: boolean }> = [];
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      bytes += Buffer.byteLength(r.text);
      const natural = this.isCut(r);
      if (natural || bytes >= this.rule.maxBytes || i === records.length - 1) {
        groups.push({ records: records.slice(start, i + 1), natural });
        start = i + 1;
        bytes = 0;
      }
    }
    return groups;
  }

  private makeChunk(records: RecordKey[], natural: boolean, reuse: Chunk[]): Chunk {
    for (const c of reuse) {
      if (c.records && sameRecords(c.records, records)) return { ...c, natural };
    }
    const text = Buffer.from(records.map((r) => r.text).join(''));
    return {
      fragment: deflateFragment(text),
      crc: zlib.crc32(text),
      length: text.length,
      count: records.length,
      last: records[records.length - 1]!,
      natural,
      records,
    };
  }

  /** A chunk's records: kept while fresh, else inflated from its own fragment. */
  private recordsOf(c: Chunk): RecordKey[] {
    if (c.records) return c.records;
    // The fragment is reef's own output; its size is known, and bounded by it.
    const text = zlib
      .inflateRawSync(c.fragment, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: c.length })
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
 * apk 2.14's order (§3.3): name case-insensitively, ties bytewise, then
 * version ascending; then the version string and the record text, so that
 * equal versions ("1.0" and "1.00") and one name-version in two arches
 * (x86_64 and noarch) still have one order.
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
