import { createHash, type KeyObject, sign } from 'node:crypto';
import zlib from 'node:zlib';

/**
 * A byte-exact tar and .apk writer for hostile tests. tar-stream refuses or
 * repairs much of what these tests need (NUL in names, odd type flags,
 * uncut archives in odd places), so headers are written field by field here,
 * following POSIX ustar; the checksum is computed (apk does not trust it, but
 * GNU tar and Python's tarfile, used as oracles, do).
 */

export const BLOCK = 512;

export interface RawEntry {
  name: string;
  /** Type flag character: '0' file, '1' hard link, '2' symlink, '5' directory, 'x' pax, 'L' GNU long name… */
  type?: string;
  body?: Buffer | string;
  linkname?: string;
  /** pax records written as an 'x' header before this entry. */
  pax?: Record<string, string>;
  /** Size field override (the body written is still `body`). */
  size?: number;
  mode?: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar header block; `name` is written raw (bytes past 100 are cut, NULs kept). */
export function ustarHeader(e: {
  name: string | Buffer;
  type: string;
  size: number;
  linkname?: string;
  mode?: number;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name);
  name.copy(h, 0, 0, Math.min(100, name.length));
  h.write(octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(e.size, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.write(e.type, 156, 'latin1');
  if (e.linkname) Buffer.from(e.linkname).copy(h, 157, 0, Math.min(100, Buffer.byteLength(e.linkname)));
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  return withChecksum(h);
}

/** Recomputes the header checksum (after a test edited a field on purpose). */
export function withChecksum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function padded(body: Buffer): Buffer {
  const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
  return pad ? Buffer.concat([body, Buffer.alloc(pad)]) : body;
}

/** pax records, each `<len> <key>=<value>\n` with len counting itself. */
export function paxBody(records: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const rest = Buffer.byteLength(` ${k}=${v}\n`);
    let len = rest + 1;
    while (String(len).length + rest !== len) len = String(len).length + rest;
    parts.push(Buffer.from(`${len} ${k}=${v}\n`));
  }
  return Buffer.concat(parts);
}

export function tarEntry(e: RawEntry): Buffer {
  const parts: Buffer[] = [];
  if (e.pax) {
    const pax = paxBody(e.pax);
    parts.push(ustarHeader({ name: 'PaxHeader', type: 'x', size: pax.length }), padded(pax));
  }
  const body = Buffer.from(e.body ?? '');
  parts.push(
    ustarHeader({
      name: e.name,
      type: e.type ?? '0',
      size: e.size ?? body.length,
      linkname: e.linkname,
      mode: e.mode,
    }),
    padded(body),
  );
  return Buffer.concat(parts);
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

export function tar(entries: RawEntry[], endOfArchive: boolean): Buffer {
  return Buffer.concat([...entries.map(tarEntry), ...(endOfArchive ? [END_OF_ARCHIVE] : [])]);
}

export function gz(data: Buffer, level = 6): Buffer {
  return zlib.gzipSync(data, { level });
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The default data: a file over several blocks, a directory and a relative symlink. */
export function defaultDataTar(): Buffer {
  return tar(
    [
      { name: 'usr/bin/hostile', body: 'x'.repeat(3000), pax: { 'APK-TOOLS.checksum.SHA1': '0'.repeat(40) } },
      { name: 'usr/share/hostile/', type: '5' },
      { name: 'usr/bin/hostile-link', type: '2', linkname: 'hostile' },
    ],
    true,
  );
}

export function pkginfoLines(datahash: string, name = 'hostile', version = '1.0-r0'): string[] {
  return [
    `pkgname = ${name}`,
    `pkgver = ${version}`,
    'pkgdesc = a hostile test package',
    'url = https://example.org/',
    'builddate = 1700000000',
    'size = 3000',
    'arch = x86_64',
    'license = MIT',
    'depend = so:libc.musl-x86_64.so.1',
    `datahash = ${datahash}`,
  ];
}

export interface Signer {
  keyName: string;
  privateKey: KeyObject;
}

export interface ApkParts {
  /** The data tar (default: defaultDataTar()). */
  dataTar?: Buffer;
  /** The whole data member (overrides dataTar). */
  dataMember?: Buffer;
  /** .PKGINFO from the data member's SHA-256 (default: pkginfoLines). */
  pkginfo?: (datahash: string) => string | Buffer;
  /** The whole control tar (overrides pkginfo). */
  controlTar?: (pkginfo: Buffer) => Buffer;
  /** Sign with this key; the signature member's tar can be replaced too. */
  signer?: Signer;
  sigTar?: (controlMember: Buffer) => Buffer;
}

export interface BuiltApk {
  bytes: Buffer;
  sigMember?: Buffer;
  controlMember: Buffer;
  dataMember: Buffer;
  sigTar?: Buffer;
  controlTar: Buffer;
  dataTar?: Buffer;
}

export function makeApk(p: ApkParts = {}): BuiltApk {
  const dataTar = p.dataMember ? undefined : (p.dataTar ?? defaultDataTar());
  const dataMember = p.dataMember ?? gz(dataTar!);
  const datahash = sha256(dataMember);
  const pkginfo = Buffer.from(p.pkginfo ? p.pkginfo(datahash) : `${pkginfoLines(datahash).join('\n')}\n`);
  const controlTar = p.controlTar ? p.controlTar(pkginfo) : tar([{ name: '.PKGINFO', body: pkginfo }], false);
  const controlMember = gz(controlTar);
  let sigTar: Buffer | undefined;
  let sigMember: Buffer | undefined;
  if (p.sigTar) sigTar = p.sigTar(controlMember);
  else if (p.signer) {
    sigTar = tar(
      [
        {
          name: `.SIGN.RSA256.${p.signer.keyName}`,
          body: sign('sha256', controlMember, p.signer.privateKey),
        },
      ],
      false,
    );
  }
  if (sigTar) sigMember = gz(sigTar);
  return {
    bytes: Buffer.concat([...(sigMember ? [sigMember] : []), controlMember, dataMember]),
    sigMember,
    controlMember,
    dataMember,
    sigTar,
    controlTar,
    dataTar,
  };
}
