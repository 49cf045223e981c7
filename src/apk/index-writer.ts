import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { AppError } from '../errors.ts';
import type { ChunkedIndex, FragmentSource } from './index-chunks.ts';
import { type IndexSigner, signatureEntryName, signBytes } from './signature.ts';
import { compareVersions } from './version.ts';

/**
 * Writes APKINDEX.tar.gz (abuild abuild-sign.in, apk3 src/extract_v2.c): a
 * signature gzip member followed by exactly one gzip member holding
 * DESCRIPTION and APKINDEX. Output is a pure function of the input: sorted
 * records, fixed tar metadata, fixed gzip header, so the same database state
 * always gives the same bytes.
 */

export interface IndexEntry {
  name: string;
  version: string;
  arch: string;
  /** `C:` (Q1…). */
  checksum: string;
  /** `S:` size of the .apk file. */
  size: number;
  /** `I:` installed size. */
  installedSize: number;
  description: string;
  url: string;
  license: string;
  origin: string;
  maintainer: string;
  builddate: number | undefined;
  commit: string;
  providerPriority: number | undefined;
  depends: string[];
  provides: string[];
  installIf: string[];
}

export interface IndexOptions {
  /**
   * Arch of the index; `noarch` entries are written with this `A:` (Alpine's
   * `apk index --rewrite-arch`, abuild abuild.in).
   */
  arch: string;
  /** DESCRIPTION text: at most 160 bytes, or apk 3 ignores it (apk3 src/extract_v2.c). */
  description?: string;
  /** mtime of the tar entries, seconds; fixed so output is reproducible. */
  mtime?: number;
}

const gzip = promisify(zlib.gzip);
const MAX_DESCRIPTION = 160;

/**
 * apk 2.14 order: name case-insensitively (ties bytewise), then version
 * ascending (apk2 src/database.c `__apk_db_foreach_sorted_package`).
 * Lowercased names are computed once, not per comparison.
 */
export function sortIndexEntries<T extends { name: string; version: string }>(entries: T[]): T[] {
  const keyed = entries.map((e) => ({ e, lower: e.name.toLowerCase() }));
  keyed.sort((a, b) => {
    if (a.lower !== b.lower) return a.lower < b.lower ? -1 : 1;
    if (a.e.name !== b.e.name) return a.e.name < b.e.name ? -1 : 1;
    return compareVersions(a.e.version, b.e.version);
  });
  return keyed.map((k) => k.e);
}

/** One record, fields in apk-tools' order `C P V A S I T U L o m t c k D p i`; ends with an empty line. */
export function renderIndexRecord(e: IndexEntry, indexArch: string): string {
  const arch = e.arch === 'noarch' ? indexArch : e.arch;
  let s = `C:${e.checksum}\nP:${e.name}\nV:${e.version}\nA:${arch}\nS:${e.size}\nI:${e.installedSize}\n`;
  s += `T:${e.description}\nU:${e.url}\nL:${e.license}\n`;
  if (e.origin) s += `o:${e.origin}\n`;
  if (e.maintainer) s += `m:${e.maintainer}\n`;
  if (e.builddate) s += `t:${e.builddate}\n`;
  if (e.commit) s += `c:${e.commit}\n`;
  if (e.providerPriority) s += `k:${e.providerPriority}\n`;
  if (e.depends.length) s += `D:${e.depends.join(' ')}\n`;
  if (e.provides.length) s += `p:${e.provides.join(' ')}\n`;
  if (e.installIf.length) s += `i:${e.installIf.join(' ')}\n`;
  return `${s}\n`;
}

export function renderIndexText(entries: IndexEntry[], indexArch: string): string {
  return sortIndexEntries(entries)
    .map((e) => renderIndexRecord(e, indexArch))
    .join('');
}

function tarHeader(name: string, size: number, mtime: number): Partial<tar.Header> & { name: string } {
  return {
    name,
    size,
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: 'root',
    gname: 'root',
    mtime: new Date(mtime * 1000),
    type: 'file',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  };
}

async function packTar(
  files: Array<[string, Buffer]>,
  mtime: number,
  endOfArchive: boolean,
): Promise<Buffer> {
  const pack = tar.pack();
  const out = buffer(pack);
  for (const [name, body] of files) pack.entry(tarHeader(name, body.length, mtime), body);
  pack.finalize();
  const bytes = await out;
  // tar-stream always ends with two zero blocks; apk must not see them in a
  // signature member, or it stops reading there (apk2 src/io_archive.c).
  return endOfArchive ? bytes : bytes.subarray(0, bytes.length - 1024);
}

/** gzip with a fixed header (mtime 0, OS 3), so bytes depend on content only. */
async function gzipMember(data: Buffer): Promise<Buffer> {
  const out = await gzip(data, { level: 6 });
  out.writeUInt32LE(0, 4);
  out[9] = 3;
  return out;
}

/** The unsigned index: one gzip member with DESCRIPTION then APKINDEX (apk3 src/extract_v2.c). */
export async function writeUnsignedIndex(entries: IndexEntry[], options: IndexOptions): Promise<Buffer> {
  return writeUnsignedIndexText(renderIndexText(entries, options.arch), options);
}

/** As writeUnsignedIndex, from APKINDEX text already rendered and sorted. */
export async function writeUnsignedIndexText(text: string, options: IndexOptions): Promise<Buffer> {
  const description = Buffer.from(options.description ?? '').subarray(0, MAX_DESCRIPTION);
  const tarBytes = await packTar(
    [
      ['DESCRIPTION', description],
      ['APKINDEX', Buffer.from(text)],
    ],
    options.mtime ?? 0,
    true,
  );
  return gzipMember(tarBytes);
}

/**
 * The signature member over `unsigned`, one `.SIGN.*` entry per key and
 * algorithm. With no signature at all it throws: apk refuses an unsigned
 * index (UNTRUSTED signature), so serving one would break every client.
 */
export async function writeIndexSignature(
  unsigned: Buffer,
  signers: IndexSigner[],
  mtime = 0,
): Promise<Buffer> {
  const sigs = signBytes(unsigned, signers);
  if (sigs.length === 0) {
    throw new AppError(
      'INDEX_NO_SIGNER',
      'no signing key to sign the index with; an index is never written unsigned',
    );
  }
  const files = sigs.map((s): [string, Buffer] => [
    signatureEntryName(s.algorithm as 'RSA256', s.keyName),
    s.signature,
  ]);
  return gzipMember(await packTar(files, mtime, false));
}

export async function writeIndex(
  entries: IndexEntry[],
  options: IndexOptions & { signers: IndexSigner[] },
): Promise<Buffer> {
  return writeIndexText(renderIndexText(entries, options.arch), options);
}

/** A signed index from APKINDEX text already rendered and sorted. */
export async function writeIndexText(
  text: string,
  options: IndexOptions & { signers: IndexSigner[] },
): Promise<Buffer> {
  const unsigned = await writeUnsignedIndexText(text, options);
  const signature = await writeIndexSignature(unsigned, options.signers, options.mtime ?? 0);
  return Buffer.concat([signature, unsigned]);
}

/** Room left in front of the index member for the signature member (RSA-4096 ×3 needs < 4 KiB). */
const SIGNATURE_ROOM = 64 * 1024;

/**
 * A signed index whose APKINDEX member is assembled from cached chunk
 * fragments (index-chunks.ts): the same tar as writeIndexText, in one gzip
 * member, signed over that member's raw bytes (abuild abuild-sign.in). The
 * member is copied once, into a buffer with room in front for the signature
 * member, so the file needs no second copy.
 */
export async function writeIndexFromChunks(
  index: ChunkedIndex,
  options: {
    description?: string;
    mtime?: number;
    signers: IndexSigner[];
    /** Memory to write into, at least `size` bytes (a reused buffer saves ~5 ms of page faults at 10 MB). */
    alloc?: (size: number) => Buffer;
    /** Where the fragments of the member last written are read back from (index-chunks.ts). */
    source?: FragmentSource;
  },
): Promise<{ bytes: Buffer; memberOffset: number }> {
  const member = index.member({ description: options.description ?? '', mtime: options.mtime ?? 0 });
  const room = SIGNATURE_ROOM;
  const out = options.alloc?.(room + member.length) ?? Buffer.allocUnsafe(room + member.length);
  member.writeTo(out, room, options.source);
  const unsigned = out.subarray(room, room + member.length);
  const signature = await writeIndexSignature(unsigned, options.signers, options.mtime ?? 0);
  if (signature.length > room)
    return { bytes: Buffer.concat([signature, unsigned]), memberOffset: signature.length };
  signature.copy(out, room - signature.length);
  return {
    bytes: out.subarray(room - signature.length, room + member.length),
    memberOffset: signature.length,
  };
}

/**
 * A record rendered for its own arch, moved into the index of `indexArch`:
 * only noarch records change, their `A:` becoming the index arch (abuild abuild.in
 * `update_abuildrepo_index`).
 */
export function rewriteRecordArch(record: string, arch: string, indexArch: string): string {
  return arch === 'noarch' ? record.replace('\nA:noarch\n', `\nA:${indexArch}\n`) : record;
}
