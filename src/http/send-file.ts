import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LRUCache } from 'lru-cache';
import { AppError } from '../errors.ts';
import { digestOf } from '../store/blob-store.ts';

/**
 * Serves immutable-by-content bytes the way apk, apko and CDNs expect
 * (apk-tools libfetch/http.c, apko pkg/apk/apk/cache.go): a strong ETag
 * identical on HEAD and GET, Last-Modified, 304 for If-None-Match /
 * If-Modified-Since, single byte ranges with 206, and never a
 * Content-Encoding.
 *
 * Content too large for the in-memory cache is streamed from disk and never
 * served unverified: a whole-file body is hashed on the way out and its last
 * chunk held back until the digest matches, so a corrupted file ends in a
 * cut-off transfer (the client sees fewer bytes than Content-Length), never a
 * clean 200 with wrong bytes. A range is only served from a file verified
 * whole first; the verdict is remembered per file identity (device, inode,
 * size, mtime, ctime) or object version (ETag, time, size), so rewriting
 * the file or the object makes it verify again.
 */
export interface FileToSend {
  /** Hex digest of the content: the strong ETag. */
  sha256: string;
  size: number;
  lastModified: number;
  cacheControl: string;
  contentType: string;
  /** The whole content when it is small enough to hold in memory (cached). */
  bytes: Buffer | undefined;
  open(range?: { start: number; end: number }): Readable;
  /** What changes when the stored bytes change (a file's inode and times, an object's ETag): see verifyWhole. */
  version?(): Promise<string | undefined>;
}

export async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  file: FileToSend,
): Promise<FastifyReply> {
  const etag = `"${file.sha256}"`;
  const lastModified = new Date(Math.floor(file.lastModified / 1000) * 1000);
  reply
    .header('ETag', etag)
    .header('Last-Modified', lastModified.toUTCString())
    .header('Cache-Control', file.cacheControl)
    .header('Accept-Ranges', 'bytes')
    .header('Content-Type', file.contentType);

  if (notModified(request, etag, lastModified)) return reply.code(304).send();

  const ifRange = request.headers['if-range'];
  const range = parseRange(
    request.headers.range,
    file.size,
    Array.isArray(ifRange) ? ifRange[0] : ifRange,
    etag,
  );
  if (range === 'unsatisfiable') {
    return reply.code(416).header('Content-Range', `bytes */${file.size}`).send();
  }
  if (range && request.method !== 'HEAD' && !file.bytes) {
    // Before any header is committed: a corrupted file answers 500, not a 206 of wrong bytes. The
    // range is opened only then: a stream opened early would sit unread (an object store's
    // connection held, its error with no listener) while the whole is read.
    await verifyWhole(file);
    return reply
      .code(206)
      .header('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`)
      .header('Content-Length', range.end - range.start + 1)
      .send(file.open(range));
  }
  if (range) {
    reply
      .code(206)
      .header('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`)
      .header('Content-Length', range.end - range.start + 1);
    if (request.method === 'HEAD') return reply.send();
    return reply.send(file.bytes ? file.bytes.subarray(range.start, range.end + 1) : file.open(range));
  }
  reply.header('Content-Length', file.size);
  if (request.method === 'HEAD') return reply.send();
  if (file.bytes) return reply.send(file.bytes);
  // pipeline: a client gone mid-transfer closes the file too. Fastify reports the error (if any) itself.
  return reply.send(pipeline(file.open(), new VerifyingStream(file.sha256, file.size), () => {}));
}

/** Content held in memory (rendered, never a file): `sendFile` with its length and a stream over it. */
export function sendBytes(
  request: FastifyRequest,
  reply: FastifyReply,
  file: Omit<FileToSend, 'size' | 'bytes' | 'open'> & { bytes: Buffer },
): Promise<FastifyReply> {
  const { bytes } = file;
  return sendFile(request, reply, { ...file, size: bytes.length, open: () => Readable.from([bytes]) });
}

/** Stored bytes verified whole, by identity; a few thousand short strings. */
const verified = new LRUCache<string, true>({ max: 10_000 });
/** Verifications under way, by identity: a burst of ranges reads the whole once, not once each. */
const verifying = new Map<string, Promise<void>>();

/**
 * Throws STORAGE_CORRUPT unless the whole content hashes to `file.sha256`.
 * The verdict is kept per version of the stored bytes (a file's inode and
 * times, an object's ETag), so a rewrite is verified again; without a
 * version every range reads the whole.
 */
async function verifyWhole(file: FileToSend): Promise<void> {
  const version = await file.version?.();
  const identity = version === undefined ? undefined : `${file.sha256} ${version}`;
  if (identity === undefined) return hashWhole(file);
  if (verified.has(identity)) return;
  let pending = verifying.get(identity);
  if (!pending) {
    pending = hashWhole(file)
      .then(() => {
        verified.set(identity, true);
      })
      .finally(() => verifying.delete(identity));
    verifying.set(identity, pending);
  }
  return pending;
}

async function hashWhole(file: FileToSend): Promise<void> {
  const { sha256, size } = await digestOf(file.open());
  if (size !== file.size || sha256 !== file.sha256) throw corrupt(file.sha256, size, sha256);
}

function corrupt(sha256: string, size: number, digest: string): AppError {
  return new AppError(
    'STORAGE_CORRUPT',
    `stored content ${sha256} does not match its digest (${size} bytes hashing to ${digest})`,
  );
}

/** Passes bytes through, holding the last chunk back until size and SHA-256 are known to match. */
class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private held: Buffer | undefined;
  private seen = 0;

  constructor(
    private readonly sha256: string,
    private readonly size: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size) {
      cb(corrupt(this.sha256, this.seen, 'more bytes than recorded'));
      return;
    }
    this.hash.update(chunk);
    if (this.held) this.push(this.held);
    this.held = chunk;
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const digest = this.hash.digest('hex');
    if (this.seen !== this.size || digest !== this.sha256) {
      cb(corrupt(this.sha256, this.seen, digest));
      return;
    }
    if (this.held) this.push(this.held);
    cb();
  }
}

function notModified(request: FastifyRequest, etag: string, lastModified: Date): boolean {
  const inm = request.headers['if-none-match'];
  if (inm !== undefined) {
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2); weak comparison is allowed here.
    return inm
      .split(',')
      .map((t) => t.trim().replace(/^W\//, ''))
      .some((t) => t === etag || t === '*');
  }
  const ims = request.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  if (Number.isNaN(since)) return false;
  // apk sends the local mtime of its cached copy, at one-second resolution. A
  // change within the same second as that download must not look unmodified,
  // so only strictly older content is "not modified".
  return lastModified.getTime() < since;
}

/** One `bytes=` range (multiple ranges are answered with the whole body, which RFC 9110 allows). */
function parseRange(
  header: string | undefined,
  size: number,
  ifRange: string | undefined,
  etag: string,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header || (ifRange !== undefined && ifRange !== etag)) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}
