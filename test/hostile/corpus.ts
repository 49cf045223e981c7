import { execFileSync } from 'node:child_process';
import { sign } from 'node:crypto';
import zlib from 'node:zlib';
import type { ErrorCode } from '../../src/errors.ts';
import { prng } from '../helpers/prng.ts';
import {
  BLOCK,
  defaultDataTar,
  END_OF_ARCHIVE,
  gz,
  makeApk,
  pkginfoLines,
  type Signer,
  sha256,
  tar,
  tarEntry,
  ustarHeader,
  withChecksum,
} from './tar.ts';

/**
 * The hostile corpus: malformed packages generated here (nothing binary is
 * committed), each with the one error code reef must answer with. Expected
 * codes follow from apk-tools' rules as implemented in src/apk;
 * where the corruption is random (bit flips inside deflate data) the case
 * names the set of codes that mean "rejected as malformed".
 */

export interface Case {
  name: string;
  /** The .apk bytes (raw upload, or multipart field `package` when `sbom` is set). */
  body: Buffer;
  /** An SBOM sent beside the package as multipart field `sbom`. */
  sbom?: Buffer;
  /** Provenance sent beside the package as multipart field `provenance`. */
  provenance?: Buffer;
  codes: ErrorCode[];
}

/** Entry boundaries of a tar, in blocks, from Python's tarfile (an oracle independent of reef). */
export function tarBoundaries(tarBytes: Buffer): Set<number> {
  const out = execFileSync(
    'python3',
    [
      '-c',
      [
        'import sys, tarfile, io',
        'data = sys.stdin.buffer.read()',
        't = tarfile.open(fileobj=io.BytesIO(data), mode="r:")',
        'ends = [0]',
        'for m in t.getmembers():',
        '    print(m.offset)',
        '    ends.append(m.offset_data + (m.size + 511) // 512 * 512 if m.isreg() else m.offset_data)',
        'print(max(ends))',
      ].join('\n'),
    ],
    { input: tarBytes, encoding: 'utf8' },
  );
  const offsets = out.split('\n').filter(Boolean).map(Number);
  const lastEnd = offsets.pop()!;
  const blocks = new Set(offsets.map((o) => o / BLOCK));
  // After the last entry only zero blocks follow: every block boundary there is between entries.
  for (let b = lastEnd / BLOCK; b <= tarBytes.length / BLOCK; b++) blocks.add(b);
  return blocks;
}

/** Header blocks (by block number) of a tar whose layout this file wrote: every non-zero block that starts an entry. */
function headerBlocks(tarBytes: Buffer): number[] {
  const out: number[] = [];
  let b = 0;
  while (b * BLOCK < tarBytes.length) {
    const h = tarBytes.subarray(b * BLOCK, (b + 1) * BLOCK);
    if (h[0] === 0) {
      b++;
      continue;
    }
    out.push(b);
    const size = Number.parseInt(h.toString('latin1', 124, 135), 8);
    const type = String.fromCharCode(h[156]!);
    const body = type === '0' || type === 'x' ? Math.ceil(size / BLOCK) : 0;
    b += 1 + body;
  }
  return out;
}

/** Gzip of `times` copies of `chunk`, streamed, so the test never holds the inflated bytes. */
async function gzipRepeated(chunk: Buffer, times: number, prefix?: Buffer): Promise<Buffer> {
  const gzip = zlib.createGzip({ level: 9 });
  const parts: Buffer[] = [];
  gzip.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise((resolve) => gzip.on('end', resolve));
  if (prefix) gzip.write(prefix);
  for (let i = 0; i < times; i++) {
    if (!gzip.write(chunk)) await new Promise((resolve) => gzip.once('drain', resolve));
  }
  gzip.end();
  await done;
  return Buffer.concat(parts);
}

function flip(buf: Buffer, at: number, mask: number): Buffer {
  const out = Buffer.from(buf);
  out[at]! ^= mask;
  return out;
}

/** Every code the package reader can throw for bytes that are not a well-formed package. */
const MALFORMED: ErrorCode[] = [
  'APK_NOT_GZIP',
  'APK_GZIP_CORRUPT',
  'APK_TRUNCATED',
  'APK_TRAILING_DATA',
  'APK_TOO_MANY_MEMBERS',
  'APK_TOO_FEW_MEMBERS',
  'APK_DATA_MULTIPLE_MEMBERS',
  'APK_GZIP_BOMB',
  'APK_MEMBER_TOO_LARGE',
  'APK_TAR_CORRUPT',
  'APK_TAR_BAD_NAME',
  'APK_TAR_TOO_MANY_ENTRIES',
  'APK_TAR_END_IN_CONTROL',
  'APK_TAR_UNALIGNED_MEMBER',
  'APK_DUPLICATE_PATH',
  'APK_SIGNATURE_MEMBER_INVALID',
  'APK_CONTROL_MEMBER_INVALID',
  'APK_MISSING_PKGINFO',
  'APK_PKGINFO_TOO_LARGE',
  'APK_PKGINFO_NOT_UTF8',
  'APK_PKGINFO_MISSING_KEY',
  'APK_PKGINFO_BAD_VALUE',
  'APK_PKGINFO_FIELD_TOO_LONG',
  'APK_INDEX_RECORD_TOO_LONG',
  'APK_INVALID_NAME',
  'APK_INVALID_VERSION',
  'APK_INVALID_ARCH',
  'APK_INVALID_DEPENDENCY',
];

export async function packageCases(signer: Signer): Promise<Case[]> {
  const cases: Case[] = [];
  const add = (name: string, body: Buffer, ...codes: ErrorCode[]) => cases.push({ name, body, codes });
  const base = makeApk({ signer });
  const sig = base.sigMember!;
  const control = base.controlMember;
  const data = base.dataMember;
  const withData = (dataTar: Buffer) => makeApk({ signer, dataTar }).bytes;
  const withPkginfo = (lines: (datahash: string) => string[] | string | Buffer) =>
    makeApk({
      signer,
      pkginfo: (h) => {
        const v = lines(h);
        return Array.isArray(v) ? `${v.join('\n')}\n` : v;
      },
    }).bytes;
  const replace = (lines: string[], key: string, value: string | undefined) =>
    value === undefined
      ? lines.filter((l) => !l.startsWith(`${key} = `))
      : lines.map((l) => (l.startsWith(`${key} = `) ? `${key} = ${value}` : l));

  // --- Truncation of the file at and around every gzip member boundary, and every 61 bytes.
  const starts = [0, sig.length, sig.length + control.length];
  const total = base.bytes.length;
  const truncation = (at: number): ErrorCode => {
    if (at === starts[1]) return 'APK_MISSING_PKGINFO'; // the signature member alone
    if (at === starts[2]) return 'APK_TOO_FEW_MEMBERS'; // no data member
    if (at < 10) return 'APK_NOT_GZIP'; // too short to be gzip at all
    return 'APK_TRUNCATED';
  };
  const cuts = new Set<number>();
  for (const [i, start] of starts.entries()) {
    const end = starts[i + 1] ?? total;
    for (const at of [
      start,
      start + 1,
      start + 3,
      start + 9,
      start + 10,
      (start + end) >> 1,
      end - 8,
      end - 5,
      end - 1,
    ])
      cuts.add(at);
  }
  for (let at = 0; at < total; at += 61) cuts.add(at);
  cuts.delete(0); // an empty body is its own case below
  for (const at of [...cuts].sort((a, b) => a - b))
    add(`cut file at byte ${at}/${total}`, base.bytes.subarray(0, at), truncation(at));

  // --- Truncation of each member's tar at every block boundary (the member re-gzipped, intact otherwise).
  const sigTar = base.sigTar!;
  for (let k = 0; k < sigTar.length / BLOCK; k++) {
    const cut = gz(sigTar.subarray(0, k * BLOCK));
    add(
      `signature tar cut at block ${k}`,
      Buffer.concat([cut, control, data]),
      k === 0 ? 'APK_CONTROL_MEMBER_INVALID' : 'APK_TAR_UNALIGNED_MEMBER',
    );
  }
  {
    // A script first, .PKGINFO last: a cut at the boundary between them leaves no .PKGINFO.
    const built = makeApk({
      signer,
      controlTar: (pkginfo) =>
        tar(
          [
            { name: '.post-install', body: `#!/bin/sh\n${'# padding\n'.repeat(150)}` },
            { name: '.PKGINFO', body: pkginfo },
          ],
          false,
        ),
    });
    const ctar = built.controlTar;
    const bounds = tarBoundaries(ctar);
    for (let k = 0; k < ctar.length / BLOCK; k++) {
      add(
        `control tar cut at block ${k}`,
        Buffer.concat([built.sigMember!, gz(ctar.subarray(0, k * BLOCK)), built.dataMember]),
        bounds.has(k) ? 'APK_MISSING_PKGINFO' : 'APK_TAR_UNALIGNED_MEMBER',
      );
    }
  }
  {
    const dtar = base.dataTar!;
    const bounds = tarBoundaries(dtar);
    for (let k = 0; k < dtar.length / BLOCK; k++) {
      // .PKGINFO keeps the datahash of the whole data member.
      add(
        `data tar cut at block ${k}`,
        Buffer.concat([sig, control, gz(dtar.subarray(0, k * BLOCK))]),
        bounds.has(k) ? 'APK_DATAHASH_MISMATCH' : 'APK_TRUNCATED',
      );
    }
  }

  // --- Bit flips in gzip headers and trailers.
  for (const [i, start] of starts.entries()) {
    const end = starts[i + 1] ?? total;
    for (const at of [0, 1, 2]) {
      add(
        `member ${i} gzip magic byte ${at} flipped`,
        flip(base.bytes, start + at, 0x01),
        i === 0 ? 'APK_NOT_GZIP' : 'APK_TRAILING_DATA',
      );
    }
    for (const mask of [0x20, 0x40, 0x80]) {
      add(
        `member ${i} reserved gzip flag 0x${mask.toString(16)} set`,
        flip(base.bytes, start + 3, mask),
        'APK_GZIP_CORRUPT',
      );
    }
    for (let t = 8; t >= 1; t--) {
      add(
        `member ${i} trailer byte -${t} flipped (${t > 4 ? 'CRC-32' : 'length'})`,
        flip(base.bytes, end - t, 0x10),
        'APK_GZIP_CORRUPT',
      );
    }
  }

  // --- Bit flips in tar header fields: each makes a field apk cannot read.
  const fields: Array<[string, number]> = [
    ['ustar magic', 257],
    ['size', 124],
    ['mode', 100],
    ['uid', 108],
    ['gid', 116],
    ['mtime', 136],
    ['type flag', 156],
  ];
  const members = [
    { role: 'signature', tarBytes: sigTar },
    { role: 'control', tarBytes: base.controlTar },
    { role: 'data', tarBytes: base.dataTar! },
  ];
  for (const [m, { role, tarBytes }] of members.entries()) {
    for (const b of headerBlocks(tarBytes)) {
      for (const [field, off] of fields) {
        const flipped = flip(tarBytes, b * BLOCK + off, 0x40); // '0'..'7' → 'p'..'w', 'u' → '5', 'x' → '8'
        const parts = [sig, control, data];
        parts[m] = gz(flipped);
        add(`${role} tar header at block ${b}: ${field} flipped`, Buffer.concat(parts), 'APK_TAR_CORRUPT');
      }
      if (tarBytes[b * BLOCK + 156] === 0x78) {
        // The pax body after an 'x' header: its first record length stops being a number.
        const parts = [sig, control, data];
        parts[m] = gz(flip(tarBytes, (b + 1) * BLOCK, 0x40));
        add(`${role} pax record at block ${b + 1}: length flipped`, Buffer.concat(parts), 'APK_TAR_CORRUPT');
      }
    }
  }

  // --- Bit flips in compressed data. Stored (level 0) deflate: the tar stays readable, the CRC-32 catches it.
  {
    const stored = makeApk({ signer, dataMember: gz(base.dataTar!, 0) });
    const off = stored.bytes.length - stored.dataMember.length;
    // gzip header (10) + stored block header (5) + tar offset
    for (const [what, at] of [
      ['file body', 10 + 5 + 3 * BLOCK],
      ['file body end', 10 + 5 + 3 * BLOCK + 2999],
      ['padding after the file body', 10 + 5 + 3 * BLOCK + 3001],
      ['end-of-archive block (not its first byte)', 10 + 5 + 13 * BLOCK + 7],
    ] as const) {
      add(`stored data member: ${what} flipped`, flip(stored.bytes, off + at, 0x04), 'APK_GZIP_CORRUPT');
    }
    add('stored data member: block length flipped', flip(stored.bytes, off + 11, 0x01), 'APK_GZIP_CORRUPT');
  }
  {
    const rand = prng(8);
    for (let i = 0; i < 16; i++) {
      const m = i % 3;
      const member = [sig, control, data][m]!;
      const start = starts[m]!;
      // Inside the deflate body: after the 10-byte header, before the 8-byte trailer.
      const at = start + 10 + Math.floor(rand() * (member.length - 18));
      add(
        `member ${m} deflate byte ${at - start} flipped`,
        flip(base.bytes, at, 1 << Math.floor(rand() * 8)),
        ...MALFORMED,
      );
    }
  }

  // --- Not gzip, or gzip of something else.
  add('plain text', Buffer.from('this is not a package\n'), 'APK_NOT_GZIP');
  add('zip archive', Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(60)]), 'APK_NOT_GZIP');
  add(
    'xz stream',
    Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(60)]),
    'APK_NOT_GZIP',
  );
  add('apk v3 (ADB)', Buffer.concat([Buffer.from('ADB.pckg'), Buffer.alloc(100)]), 'APK_V3_UNSUPPORTED');
  add('gzip of text, no tar entry', gz(Buffer.from('hello world\n')), 'APK_CONTROL_MEMBER_INVALID');
  add('gzip of a block that is not ustar', gz(Buffer.alloc(BLOCK, 0x41)), 'APK_TAR_CORRUPT');
  {
    const fname = Buffer.from(control);
    fname[3] = 0x08; // FNAME, then no NUL within 64 KiB
    const header = Buffer.concat([fname.subarray(0, 10), Buffer.alloc(70 * 1024, 0x41)]);
    add(
      'gzip FNAME never terminated',
      Buffer.concat([header, control.subarray(10), data]),
      'APK_GZIP_CORRUPT',
    );
    const fextra = Buffer.from(control.subarray(0, 10));
    fextra[3] = 0x04;
    add(
      'gzip FEXTRA longer than the file',
      Buffer.concat([fextra, Buffer.from([0xff, 0xff]), Buffer.alloc(100)]),
      'APK_TRUNCATED',
    );
  }

  // --- Extra, missing and misplaced gzip members.
  add('control member only', control, 'APK_TOO_FEW_MEMBERS');
  add('signature member only', sig, 'APK_MISSING_PKGINFO');
  add('two signature members', Buffer.concat([sig, sig, control, data]), 'APK_TOO_MANY_MEMBERS');
  add('data member twice', Buffer.concat([sig, control, data, data]), 'APK_DATA_MULTIPLE_MEMBERS');
  add(
    'empty gzip member after the data',
    Buffer.concat([base.bytes, gz(Buffer.alloc(0))]),
    'APK_DATA_MULTIPLE_MEMBERS',
  );
  add('control member after the data', Buffer.concat([base.bytes, control]), 'APK_DATA_MULTIPLE_MEMBERS');
  {
    const dtar = base.dataTar!;
    const split = Buffer.concat([gz(dtar.subarray(0, 9 * BLOCK)), gz(dtar.subarray(9 * BLOCK))]);
    add(
      'data split over two members',
      makeApk({ signer, dataMember: split }).bytes,
      'APK_DATA_MULTIPLE_MEMBERS',
    );
  }
  add('trailing text', Buffer.concat([base.bytes, Buffer.from('trailing garbage')]), 'APK_TRAILING_DATA');
  add('trailing zeros', Buffer.concat([base.bytes, Buffer.alloc(100)]), 'APK_TRAILING_DATA');
  add(
    'trailing start of a gzip header',
    Buffer.concat([base.bytes, Buffer.from([0x1f, 0x8b])]),
    'APK_TRUNCATED',
  );
  add(
    'trailing 1000 empty gzip members',
    Buffer.concat([base.bytes, ...Array(1000).fill(gz(Buffer.alloc(0)))]),
    'APK_DATA_MULTIPLE_MEMBERS',
  );

  // --- Signature and control members.
  const sigEntry = (name: string, type = '0') => ({
    name,
    type,
    body: sign('sha256', control, signer.privateKey),
  });
  add(
    'signature member with end-of-archive blocks',
    Buffer.concat([gz(tar([sigEntry(`.SIGN.RSA256.${signer.keyName}`)], true)), control, data]),
    'APK_TAR_END_IN_CONTROL',
  );
  add(
    'signature member with one zero block',
    Buffer.concat([gz(Buffer.concat([sigTar, Buffer.alloc(BLOCK)])), control, data]),
    'APK_TAR_END_IN_CONTROL',
  );
  add(
    'control member with end-of-archive blocks',
    makeApk({ signer, controlTar: (p) => tar([{ name: '.PKGINFO', body: p }], true) }).bytes,
    'APK_TAR_END_IN_CONTROL',
  );
  add(
    'signature member holds .PKGINFO too',
    Buffer.concat([gz(Buffer.concat([sigTar, tarEntry({ name: '.PKGINFO', body: 'x' })])), control, data]),
    'APK_SIGNATURE_MEMBER_INVALID',
  );
  add(
    'signature entry without key name',
    Buffer.concat([gz(tar([sigEntry('.SIGN.RSA256')], false)), control, data]),
    'APK_SIGNATURE_MEMBER_INVALID',
  );
  add(
    'signature entry with empty algorithm',
    Buffer.concat([gz(tar([sigEntry('.SIGN..key.rsa.pub')], false)), control, data]),
    'APK_SIGNATURE_MEMBER_INVALID',
  );
  add(
    'signature entry is a symlink',
    Buffer.concat([
      gz(tar([{ name: `.SIGN.RSA256.${signer.keyName}`, type: '2', linkname: '/etc/passwd' }], false)),
      control,
      data,
    ]),
    'APK_SIGNATURE_MEMBER_INVALID',
  );
  add(
    'signature inside the control member',
    makeApk({
      signer,
      controlTar: (p) => tar([{ name: '.PKGINFO', body: p }, sigEntry(`.SIGN.RSA.${signer.keyName}`)], false),
    }).bytes,
    'APK_SIGNATURE_MEMBER_INVALID',
  );
  add(
    'signature first in an unsigned control member',
    makeApk({
      controlTar: (p) => tar([sigEntry(`.SIGN.RSA.${signer.keyName}`), { name: '.PKGINFO', body: p }], false),
    }).bytes,
    'APK_SIGNATURE_MEMBER_INVALID',
  );
  add(
    'data file in the control member',
    makeApk({
      signer,
      controlTar: (p) =>
        tar(
          [
            { name: '.PKGINFO', body: p },
            { name: 'usr/bin/evil', body: 'x' },
          ],
          false,
        ),
    }).bytes,
    'APK_CONTROL_MEMBER_INVALID',
  );
  add(
    'two .PKGINFO',
    makeApk({
      signer,
      controlTar: (p) =>
        tar(
          [
            { name: '.PKGINFO', body: p },
            { name: '.PKGINFO', body: p },
          ],
          false,
        ),
    }).bytes,
    'APK_CONTROL_MEMBER_INVALID',
  );
  add(
    '.PKGINFO is a symlink',
    makeApk({
      signer,
      controlTar: () => tar([{ name: '.PKGINFO', type: '2', linkname: '/etc/passwd' }], false),
    }).bytes,
    'APK_CONTROL_MEMBER_INVALID',
  );
  add(
    '.PKGINFO is a hard link',
    makeApk({
      signer,
      controlTar: () => tar([{ name: '.PKGINFO', type: '1', linkname: '.post-install' }], false),
    }).bytes,
    'APK_CONTROL_MEMBER_INVALID',
  );
  add(
    '.PKGINFO is a directory',
    makeApk({ signer, controlTar: () => tar([{ name: '.PKGINFO', type: '5' }], false) }).bytes,
    'APK_CONTROL_MEMBER_INVALID',
  );
  add(
    'control member without .PKGINFO',
    makeApk({ signer, controlTar: () => tar([{ name: '.post-install', body: '#!/bin/sh\n' }], false) }).bytes,
    'APK_MISSING_PKGINFO',
  );
  add(
    'control entry ../.PKGINFO',
    makeApk({ signer, controlTar: (p) => tar([{ name: '../.PKGINFO', body: p }], false) }).bytes,
    'APK_TAR_BAD_NAME',
  );

  // --- Bombs: every one is refused by a bound, not by running out of memory.
  add(
    'gzip bomb: data member of 80 MiB zeros',
    Buffer.concat([sig, control, await gzipRepeated(Buffer.alloc(2 ** 20), 80)]),
    'APK_GZIP_BOMB',
  );
  {
    const dir = ustarHeader({ name: 'usr/share/d/', type: '5', size: 0 });
    const headers = Buffer.concat(Array(2048).fill(dir));
    add(
      'tar bomb: 160,000 directory entries',
      Buffer.concat([sig, control, await gzipRepeated(headers, 80)]),
      'APK_GZIP_BOMB',
    );
  }
  add(
    'control member bomb: 20 MiB after .PKGINFO',
    Buffer.concat([sig, await gzipRepeated(Buffer.alloc(2 ** 20), 20, base.controlTar), data]),
    'APK_MEMBER_TOO_LARGE',
  );
  add(
    'signature member bomb: a 2 MiB signature',
    Buffer.concat([
      gz(tar([{ name: `.SIGN.RSA256.${signer.keyName}`, body: Buffer.alloc(2 * 2 ** 20) }], false), 9),
      control,
      data,
    ]),
    'APK_MEMBER_TOO_LARGE',
  );
  add(
    'first member of 20 MiB zero blocks',
    Buffer.concat([await gzipRepeated(Buffer.alloc(2 ** 20), 20), control, data]),
    'APK_CONTROL_MEMBER_INVALID',
  );

  // --- Hostile tar entries in the data member (datahash matches, so the entry is the only fault).
  const bin = { name: 'usr/bin/hostile', body: 'x' };
  const names: Array<[string, Parameters<typeof tarEntry>[0][], ErrorCode]> = [
    ['absolute path', [{ name: '/etc/passwd', body: 'root::0:0::/:/bin/sh\n' }], 'APK_TAR_BAD_NAME'],
    [
      'absolute path through pax',
      [{ name: 'usr/bin/x', pax: { path: '/etc/shadow' }, body: 'x' }],
      'APK_TAR_BAD_NAME',
    ],
    ['leading ..', [{ name: '../../etc/passwd', body: 'x' }], 'APK_TAR_BAD_NAME'],
    ['.. in the middle', [{ name: 'usr/../../etc/passwd', body: 'x' }], 'APK_TAR_BAD_NAME'],
    ['trailing ..', [{ name: 'usr/bin/..', type: '5' }], 'APK_TAR_BAD_NAME'],
    ['.. between empty components', [{ name: 'a//..//b', body: 'x' }], 'APK_TAR_BAD_NAME'],
    [
      '.. through a GNU long name',
      [
        {
          name: '././@LongLink',
          type: 'L',
          body: `${'a/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../etc/passwd\0`,
        },
        { name: 'x', body: 'x' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    [
      'NUL inside a pax path',
      [{ name: 'usr/bin/x', pax: { path: 'usr/bin/a\0/../../../etc/passwd' }, body: 'x' }],
      'APK_TAR_BAD_NAME',
    ],
    ['empty pax path', [{ name: 'usr/bin/x', pax: { path: '' }, body: 'x' }], 'APK_TAR_BAD_NAME'],
    [
      'pax path of 5000 bytes',
      [{ name: 'usr/bin/x', pax: { path: `usr/${'a'.repeat(4996)}` }, body: 'x' }],
      'APK_TAR_BAD_NAME',
    ],
    [
      'GNU long name of 5000 bytes',
      [
        { name: '././@LongLink', type: 'L', body: `usr/${'b'.repeat(4996)}\0` },
        { name: 'x', body: 'x' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    [
      'GNU long name of 2 MiB',
      [
        { name: '././@LongLink', type: 'L', body: Buffer.alloc(2 * 2 ** 20, 0x61) },
        { name: 'x', body: 'x' },
      ],
      'APK_TAR_CORRUPT',
    ],
    [
      'pax record of 2 MiB',
      [{ name: 'usr/bin/x', pax: { comment: 'c'.repeat(2 * 2 ** 20) }, body: 'x' }],
      'APK_TAR_CORRUPT',
    ],
    [
      'hard link to ../../etc/shadow',
      [bin, { name: 'usr/bin/h', type: '1', linkname: '../../etc/shadow' }],
      'APK_TAR_BAD_NAME',
    ],
    [
      'hard link to /etc/shadow',
      [bin, { name: 'usr/bin/h', type: '1', linkname: '/etc/shadow' }],
      'APK_TAR_BAD_NAME',
    ],
    [
      'hard link to /etc/shadow through pax linkpath',
      [bin, { name: 'usr/bin/h', type: '1', linkname: 'usr/bin/hostile', pax: { linkpath: '/etc/shadow' } }],
      'APK_TAR_BAD_NAME',
    ],
    [
      'file written through a symlink to /etc',
      [
        { name: 'usr/lib/x', type: '2', linkname: '/etc' },
        { name: 'usr/lib/x/cron.d/evil', body: '* * * * * root sh\n' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    [
      'directory made through a symlink to ../../..',
      [
        { name: 'a', type: '2', linkname: '../../../../' },
        { name: 'a/b/', type: '5' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    [
      'symlink written through a symlink',
      [
        { name: 'usr/x', type: '2', linkname: '/' },
        { name: 'usr/x/etc/profile.d/evil.sh', type: '2', linkname: '/tmp/evil' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    [
      'hard link target through a symlink',
      [
        { name: 'usr/x', type: '2', linkname: '/' },
        { name: 'usr/y', type: '1', linkname: 'usr/x/etc/shadow' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    [
      './-prefixed name through a symlink',
      [
        { name: './lnk', type: '2', linkname: '/etc' },
        { name: 'lnk//passwd', body: 'x' },
      ],
      'APK_TAR_BAD_NAME',
    ],
    ['symlink with an empty target', [{ name: 'usr/bin/l', type: '2', linkname: '' }], 'APK_TAR_BAD_NAME'],
    [
      'symlink target with NUL (pax)',
      [{ name: 'usr/bin/l', type: '2', linkname: 'x', pax: { linkpath: 'a\0b' } }],
      'APK_TAR_BAD_NAME',
    ],
    [
      'symlink target of 5000 bytes (pax)',
      [{ name: 'usr/bin/l', type: '2', linkname: 'x', pax: { linkpath: 'a'.repeat(5000) } }],
      'APK_TAR_BAD_NAME',
    ],
    ['sparse file type S', [{ name: 'usr/bin/s', type: 'S', body: 'x' }], 'APK_TAR_CORRUPT'],
    ['volume header type V', [{ name: 'usr/bin/v', type: 'V' }], 'APK_TAR_CORRUPT'],
    [
      'malformed pax record length',
      [{ name: 'PaxHeader', type: 'x', body: '99 path=x\n' }, bin],
      'APK_TAR_CORRUPT',
    ],
    ['pax record without =', [{ name: 'PaxHeader', type: 'x', body: '9 pathx\n\n' }, bin], 'APK_TAR_CORRUPT'],
    ['file size past the end', [{ name: 'usr/bin/big', body: 'x', size: 2 ** 30 }], 'APK_TRUNCATED'],
    [
      'the same file twice',
      [
        { name: 'usr/bin/x', body: '1' },
        { name: 'usr/bin/x', body: '2' },
      ],
      'APK_DUPLICATE_PATH',
    ],
    [
      'a file and a directory at one path',
      [
        { name: 'usr/bin/x', body: '1' },
        { name: 'usr/bin/x/', type: '5' },
      ],
      'APK_DUPLICATE_PATH',
    ],
    [
      './a beside a',
      [
        { name: 'usr/bin/x', body: '1' },
        { name: './usr/bin/x', body: '2' },
      ],
      'APK_DUPLICATE_PATH',
    ],
  ];
  for (const [what, entries, code] of names) add(`data tar: ${what}`, withData(tar(entries, true)), code);
  {
    const v7 = ustarHeader({ name: 'usr/bin/old', type: '0', size: 0 });
    v7.fill(0, 257, 265); // a pre-POSIX header without the ustar magic
    add(
      'data tar: v7 header without ustar magic',
      withData(Buffer.concat([withChecksum(v7), END_OF_ARCHIVE])),
      'APK_TAR_CORRUPT',
    );
    const b256 = ustarHeader({ name: 'usr/bin/b', type: '0', size: 0 });
    b256[124] = 0x80; // base-256 size
    add(
      'data tar: base-256 size field',
      withData(Buffer.concat([withChecksum(b256), END_OF_ARCHIVE])),
      'APK_TAR_CORRUPT',
    );
    add(
      'data tar: an entry after end-of-archive',
      withData(Buffer.concat([defaultDataTar(), tarEntry(bin), END_OF_ARCHIVE])),
      'APK_TAR_CORRUPT',
    );
  }

  // --- .PKGINFO
  for (const key of ['pkgname', 'pkgver', 'arch', 'size', 'datahash']) {
    add(
      `.PKGINFO: ${key} twice`,
      withPkginfo((h) => {
        const lines = pkginfoLines(h);
        return [...lines, lines.find((l) => l.startsWith(`${key} = `))!];
      }),
      'APK_PKGINFO_BAD_VALUE',
    );
    add(
      `.PKGINFO: no ${key}`,
      withPkginfo((h) => replace(pkginfoLines(h), key, undefined)),
      'APK_PKGINFO_MISSING_KEY',
    );
  }
  add(
    '.PKGINFO: empty pkgname',
    withPkginfo((h) => replace(pkginfoLines(h), 'pkgname', '')),
    'APK_PKGINFO_MISSING_KEY',
  );
  for (const [what, bytes] of [
    ['lone 0xff', [0xff]],
    ['overlong NUL', [0xc0, 0x80]],
    ['UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['cut multibyte sequence', [0xe2, 0x82]],
    ['Latin-1 é', [0xe9]],
  ] as const) {
    add(
      `.PKGINFO not UTF-8: ${what}`,
      withPkginfo((h) =>
        Buffer.concat([
          Buffer.from(`${pkginfoLines(h).join('\n')}\npkgdesc = caf`),
          Buffer.from(bytes),
          Buffer.from('\n'),
        ]),
      ),
      'APK_PKGINFO_NOT_UTF8',
    );
  }
  add(
    '.PKGINFO of 3 MiB',
    withPkginfo((h) => [...pkginfoLines(h), `pkgdesc = ${'d'.repeat(3 * 2 ** 20)}`]),
    'APK_PKGINFO_TOO_LARGE',
  );
  add(
    '.PKGINFO of 200,000 lines',
    withPkginfo((h) => `${pkginfoLines(h).join('\n')}${'\n'.repeat(200_000)}`),
    'APK_PKGINFO_TOO_LARGE',
  );
  for (const v of [
    'abc',
    'v1.0',
    '1.0-r',
    '1.0-r1-r2',
    '1.0_foo',
    '1..0',
    '1.0.',
    '.1',
    '1.0ab',
    '1.0a1',
    '1.0_p1a',
    '1.0~XYZ',
    '1.0~',
    '1.0-1',
    '1.0 ',
    '1.0/../../../x',
    '1.0-r1_p1',
    '1_rc_rc1x',
  ]) {
    add(
      `.PKGINFO: invalid version '${v}'`,
      withPkginfo((h) => replace(pkginfoLines(h), 'pkgver', v)),
      'APK_INVALID_VERSION',
    );
  }
  for (const n of ['../evil', 'a/b', '-x', '.hidden', 'a b', 'ü', 'x\ty']) {
    add(
      `.PKGINFO: invalid name '${n.slice(0, 20)}'`,
      withPkginfo((h) => replace(pkginfoLines(h), 'pkgname', n)),
      'APK_INVALID_NAME',
    );
  }
  for (const a of ['x86_65', '../x86_64', 'X86_64', 'x86_64 ']) {
    add(
      `.PKGINFO: invalid arch '${a}'`,
      withPkginfo((h) => replace(pkginfoLines(h), 'arch', a)),
      'APK_INVALID_ARCH',
    );
  }
  for (const [key, value] of [
    ['size', 'abc'],
    ['size', '-1'],
    ['size', '1e9'],
    ['builddate', 'yesterday'],
    ['provider_priority', '-5'],
    ['replaces_priority', '1.5'],
    ['datahash', 'not-hex'],
    ['pkgdesc', 'carriage\rreturn'],
    ['pkgdesc', 'nul\0byte'],
  ] as const) {
    add(
      `.PKGINFO: ${key} = ${JSON.stringify(value)}`,
      withPkginfo((h) => [...replace(pkginfoLines(h), key, undefined), `${key} = ${value}`]),
      'APK_PKGINFO_BAD_VALUE',
    );
  }
  add(
    '.PKGINFO: depend line over 120 KiB',
    withPkginfo((h) => [
      ...pkginfoLines(h),
      `depend = ${Array.from({ length: 20000 }, (_, i) => `dep${i}`).join(' ')}`,
    ]),
    'APK_PKGINFO_FIELD_TOO_LONG',
  );
  // Longer than apk 2 and 3 read back from an index or their installed database (index-limits.ts).
  for (const [key, value] of [
    ['pkgname', 'n'.repeat(256)],
    ['pkgver', `${'1'.repeat(200)}-r0`],
    ['url', `https://example.org/${'u'.repeat(130 * 1024)}`],
    ['pkgdesc', 'd'.repeat(513)],
    ['replaces', 'r'.repeat(1025)],
  ] as const) {
    add(
      `.PKGINFO: ${key} of ${value.length} bytes`,
      withPkginfo((h) => [...replace(pkginfoLines(h), key, undefined), `${key} = ${value}`]),
      'APK_PKGINFO_FIELD_TOO_LONG',
    );
  }
  add(
    ".PKGINFO: fields each within bounds, together over apk's 2048-byte record buffer",
    withPkginfo((h) => [
      ...replace(pkginfoLines(h), 'license', undefined),
      `pkgdesc = ${'d'.repeat(512)}`,
      `url = ${'u'.repeat(512)}`,
      `license = ${'l'.repeat(512)}`,
      `maintainer = ${'m'.repeat(256)}`,
      `commit = ${'c'.repeat(128)}`,
    ]),
    'APK_INDEX_RECORD_TOO_LONG',
  );
  for (const d of ['foo>>1', 'foo=', '=1.0', 'foo<=1.0x!']) {
    add(
      `.PKGINFO: invalid dependency '${d}'`,
      withPkginfo((h) => [...pkginfoLines(h), `depend = ${d}`]),
      'APK_INVALID_DEPENDENCY',
    );
  }
  add(
    '.PKGINFO: wrong datahash',
    withPkginfo((h) => replace(pkginfoLines(h), 'datahash', sha256(Buffer.from(h)))),
    'APK_DATAHASH_MISMATCH',
  );
  add(
    '.PKGINFO: datahash of the control member',
    makeApk({ signer, pkginfo: () => `${pkginfoLines(sha256(control)).join('\n')}\n` }).bytes,
    'APK_DATAHASH_MISMATCH',
  );
  return cases;
}

export interface SbomCase {
  name: string;
  sbom: Buffer;
  codes: ErrorCode[];
}

/**
 * Malformed SBOM documents. `good` is a valid SPDX document about the package
 * they are sent with, `other` a valid one about another package.
 */
export function sbomCases(good: Buffer, other: Buffer): SbomCase[] {
  const doc = () => JSON.parse(good.toString('utf8')) as Record<string, unknown>;
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const cases: SbomCase[] = [];
  const add = (name: string, sbom: Buffer | string, code: ErrorCode) =>
    cases.push({ name, sbom: Buffer.from(sbom), codes: [code] });

  add('arrays nested 100 deep', `${'['.repeat(100)}${']'.repeat(100)}`, 'SBOM_SCHEMA_INVALID');
  add('a million [', '['.repeat(2 ** 20), 'SBOM_SCHEMA_INVALID');
  {
    let nested: unknown = 'x';
    for (let i = 0; i < 100; i++) nested = { a: nested };
    add(
      'valid document with a comment nested 100 objects deep',
      json({ ...doc(), comment: nested }),
      'SBOM_SCHEMA_INVALID',
    );
  }
  add('empty', '', 'SBOM_INVALID_JSON');
  add('unterminated object', '{', 'SBOM_INVALID_JSON');
  add('missing value', '{"spdxVersion": }', 'SBOM_INVALID_JSON');
  add('trailing comma', `${good.toString('utf8').trimEnd().slice(0, -1)},}`, 'SBOM_INVALID_JSON');
  add('NaN', '{"spdxVersion": NaN}', 'SBOM_INVALID_JSON');
  add('single quotes', "{'spdxVersion': 'SPDX-2.3'}", 'SBOM_INVALID_JSON');
  add('the document cut in half', good.subarray(0, good.length >> 1), 'SBOM_INVALID_JSON');
  add(
    'not UTF-8 inside a string',
    Buffer.concat([
      Buffer.from('{"spdxVersion": "SPDX-2.3", "name": "'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]),
    'SBOM_INVALID_JSON',
  );
  add(
    'UTF-16 with a byte order mark',
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(good.toString('utf8'), 'utf16le')]),
    'SBOM_INVALID_JSON',
  );
  for (const v of ['[]', '"spdx"', 'null', '42', 'true'])
    add(`not an object: ${v}`, v, 'SBOM_UNKNOWN_FORMAT');
  add('empty object', '{}', 'SBOM_UNKNOWN_FORMAT');
  add('SPDX 3', json({ ...doc(), spdxVersion: 'SPDX-3.0' }), 'SBOM_UNKNOWN_FORMAT');
  add(
    'SPDX 3 JSON-LD',
    json({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': [] }),
    'SBOM_UNKNOWN_FORMAT',
  );
  add(
    'CycloneDX 1.2',
    json({ bomFormat: 'CycloneDX', specVersion: '1.2', version: 1 }),
    'SBOM_UNKNOWN_FORMAT',
  );
  add('__proto__ carrying spdxVersion', '{"__proto__": {"spdxVersion": "SPDX-2.3"}}', 'SBOM_UNKNOWN_FORMAT');
  add(
    'spdxVersion given twice, the last one wrong',
    `{"spdxVersion": "SPDX-2.3", ${good.toString('utf8').trim().slice(1, -1)}, "spdxVersion": "SPDX-9.9"}`,
    'SBOM_UNKNOWN_FORMAT',
  );
  add('spdxVersion alone', json({ spdxVersion: 'SPDX-2.3' }), 'SBOM_SCHEMA_INVALID');
  {
    const d = doc();
    delete d.SPDXID;
    add('no SPDXID', json(d), 'SBOM_SCHEMA_INVALID');
  }
  add('packages is a string', json({ ...doc(), packages: 'all of them' }), 'SBOM_SCHEMA_INVALID');
  add(
    'a million packages that are numbers',
    json({ ...doc(), packages: Array(100_000).fill(1) }),
    'SBOM_SCHEMA_INVALID',
  );
  add(
    'CycloneDX without metadata',
    json({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 'one' }),
    'SBOM_SCHEMA_INVALID',
  );
  add('describes another package', other, 'SBOM_WRONG_PACKAGE');
  {
    const d = doc();
    for (const p of d.packages as Array<Record<string, unknown>>) if (p.versionInfo) p.versionInfo = '9.9-r0';
    add('describes another version', json(d), 'SBOM_WRONG_PACKAGE');
  }
  add(
    'CycloneDX about another package',
    json({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      version: 1,
      metadata: { component: { type: 'application', name: 'someone-else', version: '1.0-r0' } },
    }),
    'SBOM_WRONG_PACKAGE',
  );
  return cases;
}
