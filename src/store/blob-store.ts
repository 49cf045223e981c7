import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.ts';

/**
 * Content-addressed blob storage (SHA-256), spoken in keys and streams: the
 * data folder (DiskBlobStore, the embedded default) and an S3-compatible
 * object store (S3BlobStore) fill it alike. Uploads are spooled to a local
 * temp file first in both (hashed, size-limited and parsed there), and
 * become a blob by `commit`.
 */
export interface BlobStore {
  /** A new temporary blob to stream an upload into. */
  createTemp(): Promise<TempBlob>;
  /** Makes a finished temp blob the content of `sha256`, durably; idempotent. */
  commit(temp: TempBlob, sha256: string): Promise<void>;
  has(sha256: string): Promise<boolean>;
  size(sha256: string): Promise<number | undefined>;
  /** The blob's bytes, or an inclusive byte range of them. */
  read(sha256: string, range?: { start: number; end: number }): Readable;
  readAll(sha256: string): Promise<Buffer>;
  delete(sha256: string): Promise<void>;
  /** A URL anyone may GET the blob from for `seconds` (object stores only: presigned). */
  url?(sha256: string, seconds: number): Promise<string>;
  /**
   * What changes when the stored bytes change, for remembering that a blob
   * was verified whole: a file's device, inode and times; an object's ETag,
   * time and size. Undefined when the blob is gone or its store cannot tell.
   */
  version(sha256: string): Promise<string | undefined>;
  /** Lets go of connections (an object store's); nothing for the data folder. */
  close(): void;
  /**
   * Synchronous reads at offsets of a stored blob, for engines that hold the
   * bytes at hand (the data folder's files, in the page cache after a
   * write); absent where every read would be a request (object stores).
   */
  openLocal?(sha256: string): LocalBlobReader;
}

/** A stored blob opened for reads at offsets; closed by whoever opened it. */
export interface LocalBlobReader {
  /** Fills target[at, at + length) with the blob's bytes from `offset`; throws if the blob ends first. */
  read(target: Buffer, at: number, offset: number, length: number): void;
  close(): void;
}

/**
 * What maintenance (fsck) needs beyond serving: every stored blob, where an
 * operator finds it, and a way to remove what is in the blob area without
 * being a blob. Kept apart from BlobStore so the publish and serve paths, and
 * the wrappers around them, need not know it.
 */
export interface BlobInventory {
  /** Everything under the blob area, in no particular order; each entry once. */
  list(): AsyncIterable<BlobListing>;
  /** Where the blob is, for people: a path of the data folder, or `s3://bucket/key`. */
  locationOf(sha256: string): string;
  /** Removes a stray that `list` reported; refuses a location outside the blob area. */
  deleteStray(location: string): Promise<void>;
}

/**
 * One entry of the blob area: a blob at its address, or a stray (a file or
 * key under it that is not `<aa>/<sha256>` with `aa` its first two digits).
 */
export type BlobListing =
  | { kind: 'blob'; sha256: string; location: string; size: number; modifiedAt: number }
  | { kind: 'stray'; location: string; size: number; modifiedAt: number };

/** Whether `rel`, a name under `blobs/sha256/`, is a blob's place: `<aa>/<sha256>`; its digest if so. */
export function blobKeyAt(rel: string): string | undefined {
  const [prefix, name, ...rest] = rel.split('/');
  return rest.length === 0 && name !== undefined && SHA256_RE.test(name) && name.startsWith(prefix!)
    ? name
    : undefined;
}

export interface TempBlob {
  /** The local spool file: parsers and hashers read it here, whatever the engine. */
  path: string;
  write(chunk: Uint8Array): Promise<void>;
  /** Flush to disk and close; the file stays until commit or discard. */
  finish(): Promise<void>;
  discard(): Promise<void>;
}

const SHA256_RE = /^[0-9a-f]{64}$/;

/** SECURITY: only well-formed digests become paths or object keys, so nothing escapes its place. */
export function checkBlobKey(sha256: string): string {
  if (!SHA256_RE.test(sha256)) throw new AppError('INTERNAL', 'blob key is not a SHA-256 hex digest');
  return sha256;
}

/** Temp files under `<dataDir>/tmp`, where every upload is spooled. */
export class LocalSpool {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'tmp');
  }

  /**
   * Creates the folder; with `sweep`, removes what is in it: temp files of
   * uploads that never finished. Only the server sweeps, at start: a command
   * running beside it (backup) would delete uploads in progress.
   */
  async init(sweep: boolean): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    if (!sweep) return;
    for (const name of await readdir(this.dir))
      await rm(join(this.dir, name), { force: true, recursive: true });
  }

  async create(): Promise<TempBlob> {
    const path = join(this.dir, `upload-${randomBytes(12).toString('hex')}`);
    const fh = await open(path, 'wx', 0o644).catch((err: unknown) => {
      throw translateFsError(err);
    });
    let closed = false;
    const close = async () => {
      if (!closed) {
        closed = true;
        await fh.close();
      }
    };
    return {
      path,
      write: async (chunk) => {
        try {
          // A write may take fewer bytes than given (a full disk part-way): the rest follows, or its error.
          for (let at = 0; at < chunk.length; )
            at += (await fh.write(chunk, at, chunk.length - at)).bytesWritten;
        } catch (err) {
          throw translateFsError(err);
        }
      },
      finish: async () => {
        try {
          await fh.sync();
        } catch (err) {
          throw translateFsError(err);
        }
        await close();
      },
      discard: async () => {
        await close().catch(() => {});
        await rm(path, { force: true });
      },
    };
  }
}

export class DiskBlobStore implements BlobStore, BlobInventory {
  private readonly blobsDir: string;
  private readonly spool: LocalSpool;

  constructor(dataDir: string) {
    this.blobsDir = join(dataDir, 'blobs', 'sha256');
    this.spool = new LocalSpool(dataDir);
  }

  /** The folders; `sweepSpool` as LocalSpool.init (the server's start only). */
  async init(sweepSpool = true): Promise<void> {
    await mkdir(this.blobsDir, { recursive: true });
    await this.spool.init(sweepSpool);
  }

  pathOf(sha256: string): string {
    checkBlobKey(sha256);
    return join(this.blobsDir, sha256.slice(0, 2), sha256);
  }

  createTemp(): Promise<TempBlob> {
    return this.spool.create();
  }

  async commit(temp: TempBlob, sha256: string): Promise<void> {
    const target = this.pathOf(sha256);
    if (await this.has(sha256)) {
      await temp.discard();
      return;
    }
    try {
      await mkdir(dirname(target), { recursive: true });
      await rename(temp.path, target);
      await fsyncDir(dirname(target));
    } catch (err) {
      throw translateFsError(err);
    }
  }

  openLocal(sha256: string): LocalBlobReader {
    const path = this.pathOf(sha256);
    const fd = openSync(path, 'r');
    return {
      read(target, at, offset, length) {
        for (let done = 0; done < length; ) {
          const n = readSync(fd, target, at + done, length - done, offset + done);
          if (n === 0) throw new Error(`blob ${sha256} ends before offset ${offset + length}`);
          done += n;
        }
      },
      close: () => closeSync(fd),
    };
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== undefined;
  }

  async size(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.pathOf(sha256), range ? { start: range.start, end: range.end } : {});
  }

  async readAll(sha256: string): Promise<Buffer> {
    return readFile(this.pathOf(sha256));
  }

  version(sha256: string): Promise<string | undefined> {
    return fileVersion(this.pathOf(sha256));
  }

  close(): void {}

  async delete(sha256: string): Promise<void> {
    await unlink(this.pathOf(sha256)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw translateFsError(err);
    });
  }

  async *list(): AsyncIterable<BlobListing> {
    for await (const f of walkFiles(this.blobsDir)) {
      const sha256 = blobKeyAt(f.path.slice(this.blobsDir.length + 1));
      const entry = { location: f.path, size: f.size, modifiedAt: f.mtimeMs };
      yield sha256 ? { kind: 'blob', sha256, ...entry } : { kind: 'stray', ...entry };
    }
  }

  locationOf(sha256: string): string {
    return this.pathOf(sha256);
  }

  async deleteStray(location: string): Promise<void> {
    // SECURITY: only what lies under blobs/sha256/ is ours to remove (resolved, so `..` cannot leave it).
    const path = resolve(location);
    if (!path.startsWith(resolve(this.blobsDir) + sep)) {
      throw new AppError('INTERNAL', 'a stray to remove lies outside the blob folder');
    }
    await rm(path, { force: true });
  }
}

/** Files under `dir`, depth first; none when it does not exist. Files gone meanwhile are skipped. */
async function* walkFiles(dir: string): AsyncIterable<{ path: string; size: number; mtimeMs: number }> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* walkFiles(path);
    else {
      const s = await stat(path).catch(() => undefined);
      if (s) yield { path, size: s.size, mtimeMs: s.mtimeMs };
    }
  }
}

/**
 * What changes when a file's bytes do: device, inode, size and times (a
 * rewrite in place changes mtime and ctime, a replacement the inode).
 * Undefined when it is gone.
 */
export async function fileVersion(path: string): Promise<string | undefined> {
  const s = await stat(path).catch(() => undefined);
  return s && `${s.dev} ${s.ino} ${s.size} ${s.mtimeMs} ${s.ctimeMs}`;
}

/** The SHA-256 (hex) and length of the bytes a stream yields, read to its end. */
export async function digestOf(stream: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** The names in a folder; none when the folder does not exist. */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A write the data folder refused, as reef's storage codes: no room
 * (STORAGE_FULL), or no writing at all (STORAGE_READ_ONLY: a file system
 * mounted or fallen read-only, or permissions that changed under the
 * server). Messages name the condition, never a path. Other errors pass unchanged.
 */
export function translateFsError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  // EFBIG: a file-size limit (RLIMIT_FSIZE, a filesystem's maximum) refuses the bytes: no room either.
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new AppError('STORAGE_FULL', 'the server has no storage space left; try again later', {
      cause: err,
    });
  }
  if (code === 'EROFS') {
    return new AppError(
      'STORAGE_READ_ONLY',
      "the server's data folder is on a read-only file system; writes fail until it is writable again",
      { cause: err },
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new AppError(
      'STORAGE_READ_ONLY',
      'the server may not write to its data folder (permission denied); writes fail until it may',
      { cause: err },
    );
  }
  return err;
}
