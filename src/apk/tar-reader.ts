import { AppError } from '../errors.ts';

/**
 * A push parser for the tar dialect apk-tools reads (apk2 src/io_archive.c).
 * Written by hand rather than with tar-stream because apk's rules differ from
 * a general tar reader's in ways that matter for what gets installed: a block
 * whose name starts with NUL counts as a zero block, the second one ends the
 * archive for good (anything but zeros after it is an error), the header
 * checksum is not what apk trusts, and member boundaries must be observable
 * between headers.
 *
 * SECURITY: every header field is attacker-controlled. Sizes are parsed
 * strictly, names are checked before use, and metadata bodies are bounded.
 */

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo';

export interface TarEntry {
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkName?: string;
  uname: string;
  gname: string;
  /** pax records that applied to this entry (path/linkpath already folded in). */
  pax: Record<string, string>;
}

export interface TarHandler {
  entry(entry: TarEntry): void;
  body(chunk: Buffer): void;
  entryEnd(entry: TarEntry): void;
}

export interface TarLimits {
  maxEntries: number;
  maxNameLength: number;
  /** Largest pax / GNU long-name body kept in memory. */
  maxMetaBytes: number;
}

const BLOCK = 512;
const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'directory',
  '6': 'fifo',
};

type State = 'header' | 'body' | 'meta' | 'padding' | 'end';

export class TarReader {
  private state: State = 'header';
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private remaining = 0;
  private padding = 0;
  private current: TarEntry | null = null;
  private metaType = '';
  private metaParts: Buffer[] = [];
  private pendingPax: Record<string, string> = {};
  private pendingLongName: string | undefined;
  /** A pax or GNU long-name record was read and waits for the entry it applies to. */
  private metaPending = false;
  /** Blocks whose first name byte is NUL; the second one ends the archive (apk's rule). */
  zeroBlocks = 0;
  entries = 0;

  constructor(
    private readonly handler: TarHandler,
    private readonly limits: TarLimits,
  ) {}

  /** True between entries: the next byte would start a header block. */
  get atHeaderBoundary(): boolean {
    return (this.state === 'header' || this.state === 'end') && this.headerFill === 0 && !this.metaPending;
  }

  get ended(): boolean {
    return this.state === 'end';
  }

  write(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.state) {
        case 'header':
        case 'end': {
          const take = Math.min(BLOCK - this.headerFill, chunk.length - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          if (this.headerFill === BLOCK) {
            this.headerFill = 0;
            this.onHeaderBlock();
          }
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - pos);
          this.handler.body(chunk.subarray(pos, pos + take));
          this.remaining -= take;
          pos += take;
          if (this.remaining === 0) this.finishEntry();
          break;
        }
        case 'meta': {
          const take = Math.min(this.remaining, chunk.length - pos);
          this.metaParts.push(Buffer.from(chunk.subarray(pos, pos + take)));
          this.remaining -= take;
          pos += take;
          if (this.remaining === 0) this.finishMeta();
          break;
        }
        case 'padding': {
          const take = Math.min(this.padding, chunk.length - pos);
          this.padding -= take;
          pos += take;
          if (this.padding === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** The stream is over: it must not stop inside an entry. */
  end(): void {
    if (!this.atHeaderBoundary) {
      throw new AppError('APK_TRUNCATED', 'the tar stream ends inside an entry');
    }
  }

  private onHeaderBlock(): void {
    const h = this.header;
    if (this.state === 'end') {
      // After end-of-archive apk accepts only further zero blocks.
      for (let i = 0; i < BLOCK; i++) {
        if (h[i] !== 0) throw new AppError('APK_TAR_CORRUPT', 'data follows the tar end-of-archive marker');
      }
      return;
    }
    if (h[0] === 0) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.state = 'end';
      return;
    }
    if (h.toString('latin1', 257, 262) !== 'ustar') {
      throw new AppError('APK_TAR_CORRUPT', 'a tar header lacks the ustar magic apk requires');
    }
    if (++this.entries > this.limits.maxEntries) {
      throw new AppError('APK_TAR_TOO_MANY_ENTRIES', `more than ${this.limits.maxEntries} tar entries`);
    }
    const typeflag = String.fromCharCode(h[156]!);
    const size = parseOctal(h, 124, 12, 'size');
    // apk parses every numeric field of every header, metadata headers too, and fails on any it cannot read.
    const mode = parseOctal(h, 100, 8, 'mode');
    const uid = parseOctal(h, 108, 8, 'uid');
    const gid = parseOctal(h, 116, 8, 'gid');
    const mtime = parseOctal(h, 136, 12, 'mtime');
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > this.limits.maxMetaBytes) {
        throw new AppError(
          'APK_TAR_CORRUPT',
          `a tar metadata record of ${size} bytes exceeds ${this.limits.maxMetaBytes}`,
        );
      }
      this.metaType = typeflag;
      this.metaParts = [];
      this.startBody(size, 'meta');
      return;
    }
    const type = TYPES[typeflag];
    if (!type) throw new AppError('APK_TAR_CORRUPT', `unsupported tar entry type '${printable(typeflag)}'`);

    const pax = this.pendingPax;
    this.pendingPax = {};
    this.metaPending = false;
    let name = pax.path ?? this.pendingLongName;
    this.pendingLongName = undefined;
    if (name === undefined) {
      name = cString(h, 0, 100);
      const prefix = cString(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    checkName(name, this.limits.maxNameLength, 'entry name');
    const entry: TarEntry = {
      name,
      type,
      mode,
      uid,
      gid,
      // Only regular files carry a body; apk ignores the size field of others.
      size: type === 'file' ? size : 0,
      mtime,
      uname: cString(h, 265, 32),
      gname: cString(h, 297, 32),
      pax,
    };
    if (type === 'symlink' || type === 'hardlink') {
      const target = pax.linkpath ?? cString(h, 157, 100);
      if (!target || target.length > this.limits.maxNameLength || target.includes('\0')) {
        throw new AppError('APK_TAR_BAD_NAME', `link '${printable(name)}' has an empty or invalid target`);
      }
      // Hard links name another entry of the archive, so they obey the same rules as names.
      if (type === 'hardlink') checkName(target, this.limits.maxNameLength, 'hard link target');
      entry.linkName = target;
    }
    this.current = entry;
    this.handler.entry(entry);
    this.startBody(entry.size, 'body');
  }

  private startBody(size: number, state: 'body' | 'meta'): void {
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size > 0) this.state = state;
    else if (state === 'meta') this.finishMeta();
    else this.finishEntry();
  }

  private finishEntry(): void {
    const entry = this.current!;
    this.current = null;
    this.handler.entryEnd(entry);
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  private finishMeta(): void {
    const body = Buffer.concat(this.metaParts);
    this.metaParts = [];
    if (this.metaType === 'x') Object.assign(this.pendingPax, parsePax(body));
    else if (this.metaType === 'L') this.pendingLongName = cString(body, 0, body.length);
    if (this.metaType === 'x' || this.metaType === 'L') this.metaPending = true;
    // 'g' (global pax) and 'K' (GNU long link name) are skipped, as apk does.
    this.state = this.padding > 0 ? 'padding' : 'header';
  }
}

/** pax extended header records: "<len> <key>=<value>\n" (POSIX.1-2001). */
function parsePax(body: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break; // NUL padding after the last record
    const space = body.indexOf(0x20, pos);
    const len = space > pos ? Number(body.toString('latin1', pos, space)) : Number.NaN;
    if (
      !Number.isSafeInteger(len) ||
      len <= space - pos + 1 ||
      pos + len > body.length ||
      body[pos + len - 1] !== 0x0a
    ) {
      throw new AppError('APK_TAR_CORRUPT', 'malformed pax extended header record');
    }
    const record = body.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new AppError('APK_TAR_CORRUPT', 'malformed pax extended header record');
    records[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return records;
}

/** Octal numeric field, NUL/space terminated; base-256 is not accepted (apk does not read it). */
function parseOctal(buf: Buffer, off: number, len: number, what: string): number {
  if ((buf[off]! & 0x80) !== 0) {
    throw new AppError('APK_TAR_CORRUPT', `tar ${what} field uses base-256 encoding, which apk cannot read`);
  }
  let value = 0;
  let i = off;
  const end = off + len;
  while (i < end && buf[i] === 0x20) i++;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new AppError('APK_TAR_CORRUPT', `tar ${what} field is not octal`);
    value = value * 8 + (c - 0x30);
  }
  return value;
}

function cString(buf: Buffer, off: number, len: number): string {
  const end = off + len;
  const nul = buf.indexOf(0, off);
  return buf.toString('utf8', off, nul >= 0 && nul < end ? nul : end);
}

/**
 * SECURITY: names come from the archive. Reject what could escape the install
 * root or confuse path handling: absolute paths, `..` components, NUL bytes.
 */
export function checkName(name: string, maxLength: number, what: string): void {
  if (name.length === 0) throw new AppError('APK_TAR_BAD_NAME', `a tar ${what} is empty`);
  if (Buffer.byteLength(name) > maxLength) {
    throw new AppError('APK_TAR_BAD_NAME', `a tar ${what} is longer than ${maxLength} bytes`);
  }
  if (name.includes('\0'))
    throw new AppError('APK_TAR_BAD_NAME', `tar ${what} '${printable(name)}' contains NUL`);
  if (name.startsWith('/'))
    throw new AppError('APK_TAR_BAD_NAME', `tar ${what} '${printable(name)}' is absolute`);
  if (name.split('/').includes('..')) {
    throw new AppError('APK_TAR_BAD_NAME', `tar ${what} '${printable(name)}' contains '..'`);
  }
}

/** For messages: control characters escaped, long values cut. */
export function printable(s: string): string {
  const escaped = JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s).slice(1, -1);
  return escaped;
}
