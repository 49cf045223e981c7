import zlib from 'node:zlib';
import { AppError } from '../errors.ts';
import { ByteSource } from './byte-source.ts';

/**
 * Splits a stream of concatenated gzip members (RFC 1952) and inflates each one
 * separately. apk hashes and signs the *compressed* bytes of single members
 * (apk2 src/io_gunzip.c), and Node's gunzip silently joins members, so the
 * header and trailer are parsed here and only the raw deflate body goes to
 * zlib. The end of a deflate body is found through `bytesWritten`: zlib stops
 * consuming input at the end of the stream.
 */

export interface GzipMemberInfo {
  index: number;
  /** Offset of the member's first byte (0x1f) in the stream. */
  offset: number;
  /** Raw size of the member, header to trailer inclusive. */
  compressedLength: number;
  uncompressedLength: number;
}

export interface GzipMemberSink {
  /** A member starts at `offset`. Throw to reject it (e.g. too many members). */
  memberStart(index: number, offset: number): void;
  /** Raw bytes of the current member, in order, header to trailer. */
  raw(chunk: Buffer): void;
  /** Decompressed bytes of the current member, in order. */
  data(chunk: Buffer): void;
  memberEnd(info: GzipMemberInfo): void;
}

export interface GzipLimits {
  /** Total raw bytes accepted. */
  maxCompressedBytes: number;
  /** Total decompressed bytes over all members. */
  maxDecompressedBytes: number;
  /** Decompressed : compressed ratio allowed once `ratioFloorBytes` are out. */
  maxRatio: number;
  ratioFloorBytes: number;
}

export interface GzipStreamSummary {
  members: GzipMemberInfo[];
  compressedBytes: number;
  decompressedBytes: number;
}

const FTEXT_FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const RESERVED_FLAGS = 0xe0;
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);
/** FNAME / FCOMMENT are C strings; nothing legitimate is longer than this. */
const MAX_HEADER_STRING = 64 * 1024;

export async function readGzipMembers(
  source: AsyncIterable<Uint8Array>,
  sink: GzipMemberSink,
  limits: GzipLimits,
): Promise<GzipStreamSummary> {
  const input = new ByteSource(source);
  const members: GzipMemberInfo[] = [];
  let decompressedBytes = 0;

  const checkCompressedLimit = () => {
    if (input.position > limits.maxCompressedBytes) {
      throw new AppError(
        'APK_TOO_LARGE',
        `the file is larger than the limit of ${limits.maxCompressedBytes} bytes`,
      );
    }
  };

  try {
    for (;;) {
      const offset = input.position;
      const first = await input.next();
      if (!first) break;
      input.unshift(first);
      if (
        members.length === 0 &&
        first[0] === 0x41 /* 'A' */ &&
        first.subarray(0, 3).toString('latin1') === 'ADB'
      ) {
        throw new AppError(
          'APK_V3_UNSUPPORTED',
          'this is an apk v3 (ADB) file; reef hosts v2 packages (build with abuild or melange without v3 output)',
        );
      }
      const index = members.length;
      const header = await readHeader(input, index);
      sink.memberStart(index, offset);
      sink.raw(header);
      let uncompressed = 0;
      let crc = 0;
      const onData = (chunk: Buffer) => {
        uncompressed += chunk.length;
        decompressedBytes += chunk.length;
        crc = zlib.crc32(chunk, crc);
        if (decompressedBytes > limits.maxDecompressedBytes) {
          throw new AppError(
            'APK_GZIP_BOMB',
            `the file decompresses to more than the limit of ${limits.maxDecompressedBytes} bytes`,
          );
        }
        if (
          decompressedBytes > limits.ratioFloorBytes &&
          decompressedBytes > limits.maxRatio * input.position
        ) {
          throw new AppError(
            'APK_GZIP_BOMB',
            `the file decompresses more than ${limits.maxRatio}:1; refusing it as a decompression bomb`,
          );
        }
        sink.data(chunk);
      };
      await inflateBody(input, sink, onData, checkCompressedLimit, index);
      const trailer = await input.take(8);
      if (trailer.length < 8) {
        throw new AppError('APK_TRUNCATED', `gzip member ${index} ends before its 8-byte trailer`);
      }
      sink.raw(trailer);
      if (trailer.readUInt32LE(0) !== crc >>> 0 || trailer.readUInt32LE(4) !== uncompressed % 2 ** 32) {
        throw new AppError('APK_GZIP_CORRUPT', `gzip member ${index} fails its CRC-32 or length check`);
      }
      checkCompressedLimit();
      const info: GzipMemberInfo = {
        index,
        offset,
        compressedLength: input.position - offset,
        uncompressedLength: uncompressed,
      };
      members.push(info);
      sink.memberEnd(info);
    }
  } catch (err) {
    await input.close();
    throw err;
  }
  if (members.length === 0) throw new AppError('APK_EMPTY', 'the file is empty');
  return { members, compressedBytes: input.position, decompressedBytes };
}

async function readHeader(input: ByteSource, index: number): Promise<Buffer> {
  const fixed = await input.take(10);
  if (fixed.length < 10) {
    // The start of a later member's header cut short is a truncated file, not stray bytes.
    if (index > 0 && GZIP_MAGIC.subarray(0, fixed.length).equals(fixed.subarray(0, 3))) {
      throw new AppError('APK_TRUNCATED', `the file ends inside the header of gzip member ${index}`);
    }
    if (index > 0)
      throw new AppError('APK_TRAILING_DATA', `${fixed.length} stray bytes after gzip member ${index - 1}`);
    throw new AppError('APK_NOT_GZIP', 'the file is too short to be gzip data');
  }
  if (fixed[0] !== 0x1f || fixed[1] !== 0x8b || fixed[2] !== 8) {
    if (index > 0)
      throw new AppError('APK_TRAILING_DATA', `bytes after gzip member ${index - 1} are not gzip data`);
    throw new AppError('APK_NOT_GZIP', 'the file is not gzip data (an .apk v2 starts with 1f 8b 08)');
  }
  const flags = fixed[3]!;
  if (flags & RESERVED_FLAGS)
    throw new AppError('APK_GZIP_CORRUPT', `gzip member ${index} sets reserved header flags`);
  const parts = [fixed];
  const truncated = () => new AppError('APK_TRUNCATED', `gzip member ${index} ends inside its header`);
  if (flags & FEXTRA) {
    const len = await input.take(2);
    if (len.length < 2) throw truncated();
    const extra = await input.take(len.readUInt16LE(0));
    if (extra.length < len.readUInt16LE(0)) throw truncated();
    parts.push(len, extra);
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flags & flag) {
      const s = await input.takeUntilNul(MAX_HEADER_STRING);
      if (!s)
        throw new AppError(
          'APK_GZIP_CORRUPT',
          `gzip member ${index} has an unterminated or huge header string`,
        );
      parts.push(s);
    }
  }
  if (flags & FTEXT_FHCRC) {
    const hcrc = await input.take(2);
    if (hcrc.length < 2) throw truncated();
    parts.push(hcrc);
  }
  return parts.length === 1 ? fixed : Buffer.concat(parts);
}

/**
 * Feeds raw deflate bytes to zlib one chunk at a time until it reports the end
 * of the stream; the unconsumed tail goes back to `input`.
 */
async function inflateBody(
  input: ByteSource,
  sink: GzipMemberSink,
  onData: (chunk: Buffer) => void,
  checkCompressedLimit: () => void,
  index: number,
): Promise<void> {
  const inflater = zlib.createInflateRaw({ chunkSize: 128 * 1024 });
  let failure: unknown;
  inflater.on('data', (chunk: Buffer) => {
    if (failure) return;
    try {
      onData(chunk);
    } catch (err) {
      failure = err;
    }
  });
  inflater.on('error', (err) => {
    failure ??= new AppError(
      'APK_GZIP_CORRUPT',
      `gzip member ${index} has corrupt deflate data: ${err.message}`,
      {
        cause: err,
      },
    );
  });
  let fed = 0;
  // zlib may destroy the stream on corrupt input without calling the write
  // callback, so each write also settles on 'error' / 'close'.
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve) => {
      const done = () => {
        inflater.off('close', done);
        resolve();
      };
      inflater.once('close', done);
      inflater.write(chunk, done);
    });
  try {
    for (;;) {
      const chunk = await input.next();
      if (!chunk) throw new AppError('APK_TRUNCATED', `the file ends inside gzip member ${index}`);
      await write(chunk);
      if (failure) throw failure;
      if (inflater.destroyed)
        throw new AppError('APK_GZIP_CORRUPT', `gzip member ${index} could not be inflated`);
      fed += chunk.length;
      const leftover = fed - inflater.bytesWritten;
      sink.raw(leftover > 0 ? chunk.subarray(0, chunk.length - leftover) : chunk);
      checkCompressedLimit();
      if (leftover > 0) {
        input.unshift(chunk.subarray(chunk.length - leftover));
        return;
      }
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError('APK_GZIP_CORRUPT', `gzip member ${index} could not be inflated`, { cause: err });
  } finally {
    inflater.removeAllListeners('data');
    inflater.on('error', () => {});
    inflater.destroy();
  }
}
