import { createHash, type Hash } from 'node:crypto';
import { AppError } from '../errors.ts';
import { MAX_SBOM_BYTES } from '../sbom/limits.ts';
import { checkIndexRecord } from './check-index-record.ts';
import { type GzipLimits, readGzipMembers } from './gzip-members.ts';
import { APK2_SCRIPT_ENTRY_NAME } from './index-limits.ts';
import { type PkgInfo, parsePkgInfo } from './pkginfo.ts';
import { parseSignatureName, type SignatureAlgorithm } from './signature.ts';
import { printable, type TarEntry, type TarEntryType, TarReader } from './tar-reader.ts';

/**
 * Reads a v2 .apk as a stream (apk3 doc/apk-v2.5.scd, apk2 src/package.c):
 * splits its gzip members, hashes their compressed bytes, walks the tar
 * entries and checks `datahash`. Nothing but the control member (small, bounded) is buffered.
 */

export interface ApkSignature {
  algorithm: SignatureAlgorithm | string;
  /** The key file name the client looks up in /etc/apk/keys. */
  keyName: string;
  signature: Buffer;
}

export interface ApkFile {
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkTarget?: string;
  /** Hex SHA-1 from the `APK-TOOLS.checksum.SHA1` pax record, when present. */
  sha1?: string;
}

export type MemberRole = 'signature' | 'control' | 'data';

export interface ApkMember {
  role: MemberRole;
  offset: number;
  compressedLength: number;
  uncompressedLength: number;
}

export interface ApkPackage {
  pkginfo: PkgInfo;
  /** Control scripts present (`.pre-install`, …), in archive order. */
  scripts: string[];
  /** Every entry of the control member, `.PKGINFO` and scripts included. */
  controlEntries: string[];
  signatures: ApkSignature[];
  /**
   * Index `C:`: "Q1" + base64 SHA-1 of the raw control member (apk2
   * src/io_gunzip.c, apk3 src/extract_v2.c).
   */
  checksum: string;
  /** Raw bytes of the control member: what package signatures sign. */
  controlMember: Buffer;
  /** Index `S:`: size of the whole file. */
  size: number;
  /** Hex SHA-256 of the whole file. */
  sha256: string;
  /** Hex SHA-256 of the raw data member. */
  dataSha256: string;
  datahashMatches: boolean;
  files: ApkFile[];
  /**
   * The melange SBOM at var/lib/db/sbom/<name>-<version>.spdx.json (melange
   * pkg/build/sbom/generator.go), if present.
   */
  sbom: Buffer | undefined;
  members: ApkMember[];
  /** Things apk accepts but users should hear about. */
  warnings: string[];
}

export interface ApkLimits extends GzipLimits {
  /** Decompressed size of the signature member. */
  maxSignatureMemberBytes: number;
  /** Decompressed size of the control member (and its raw size). */
  maxControlMemberBytes: number;
  maxPkginfoBytes: number;
  maxPkginfoLines: number;
  maxEntries: number;
  maxNameLength: number;
  maxSbomBytes: number;
}

export const DEFAULT_APK_LIMITS: ApkLimits = {
  // apk 2 parses S: into a 32-bit unsigned integer.
  maxCompressedBytes: 2 ** 32 - 1,
  maxDecompressedBytes: 16 * 2 ** 30,
  maxRatio: 200,
  ratioFloorBytes: 64 * 2 ** 20,
  maxSignatureMemberBytes: 1 * 2 ** 20,
  maxControlMemberBytes: 16 * 2 ** 20,
  maxPkginfoBytes: 1 * 2 ** 20,
  maxPkginfoLines: 100_000,
  maxEntries: 500_000,
  maxNameLength: 4096,
  // SECURITY: the embedded SBOM is kept in memory; keeping more than is accepted would be waste.
  maxSbomBytes: MAX_SBOM_BYTES,
};

export interface ReadApkOptions {
  limits?: Partial<ApkLimits>;
  /** Throw APK_DATAHASH_MISMATCH (the default) or only report it. */
  requireDatahash?: boolean;
  /**
   * Told the embedded SBOM's size before its body is kept in memory; throws
   * to refuse it. The caller bounds what all uploads together keep.
   */
  reserveSbom?: (bytes: number) => void;
}

const SCRIPTS = new Set([
  '.pre-install',
  '.post-install',
  '.pre-deinstall',
  '.post-deinstall',
  '.pre-upgrade',
  '.post-upgrade',
  '.trigger',
]);

export async function readApk(
  source: AsyncIterable<Uint8Array>,
  options: ReadApkOptions = {},
): Promise<ApkPackage> {
  const limits = { ...DEFAULT_APK_LIMITS, ...options.limits };
  const whole = createHash('sha256');
  const members: ApkMember[] = [];
  const signatures: ApkSignature[] = [];
  const scripts: string[] = [];
  const controlEntries: string[] = [];
  const files: ApkFile[] = [];
  const warnings: string[] = [];

  let role: MemberRole | undefined;
  let memberIndex = -1;
  /** Raw bytes that arrived before the member's role was known (member 0 only). */
  let pendingRaw: Buffer[] = [];
  let pendingBytes = 0;
  const controlRaw: Buffer[] = [];
  let controlRawBytes = 0;
  let dataHash: Hash | undefined;
  let dataSha256 = '';
  let memberDecompressed = 0;

  let pkginfo: PkgInfo | undefined;
  let sbomPath: string | undefined;
  let sbom: Buffer | undefined;
  let hasControl = false;
  /** The entry whose body is being kept: a signature, .PKGINFO or the SBOM. */
  let collecting: { kind: 'signature' | 'pkginfo' | 'sbom'; parts: Buffer[]; bytes: number } | undefined;

  /** Data entries that are symlinks: nothing may be installed through them. */
  const symlinks = new Set<string>();
  /** Every data path as installed, with the type of its first entry. */
  const paths = new Map<string, TarEntryType>();

  const roleOf = (index: number): MemberRole | undefined => {
    if (index === 0) return undefined; // decided by its first entry
    const first = members[0]?.role;
    if (index === 1) return first === 'signature' ? 'control' : 'data';
    return 'data';
  };

  const acceptRaw = (chunk: Buffer) => {
    if (role === 'control') {
      controlRawBytes += chunk.length;
      if (controlRawBytes > limits.maxControlMemberBytes) {
        throw new AppError(
          'APK_MEMBER_TOO_LARGE',
          `the control member is larger than ${limits.maxControlMemberBytes} bytes`,
        );
      }
      controlRaw.push(chunk);
    } else if (role === 'data') {
      dataHash!.update(chunk);
    }
  };

  const setRole = (r: MemberRole) => {
    role = r;
    if (r === 'data') dataHash = createHash('sha256');
    if (r === 'control') hasControl = true;
    const pending = pendingRaw;
    pendingRaw = [];
    for (const chunk of pending) acceptRaw(chunk);
  };

  const tar = new TarReader(
    {
      entry(entry: TarEntry) {
        if (role === undefined) {
          // Member 0 is the signature member if it starts with a signature
          // (apk2 src/package.c `apk_sign_ctx_*`).
          setRole(entry.name.startsWith('.SIGN.') ? 'signature' : 'control');
        }
        if (role === 'signature') {
          if (!entry.name.startsWith('.SIGN.') || entry.type !== 'file') {
            throw new AppError(
              'APK_SIGNATURE_MEMBER_INVALID',
              `the signature member holds '${printable(entry.name)}'; it may only hold .SIGN.* files`,
            );
          }
          collecting = { kind: 'signature', parts: [], bytes: 0 };
        } else if (role === 'control') {
          if (
            entry.name.startsWith('.SIGN.') &&
            controlEntries.length === 0 &&
            members[0]?.role === 'signature'
          ) {
            throw new AppError(
              'APK_TOO_MANY_MEMBERS',
              'the signatures are split over several gzip members; put them all in one (apko and melange accept at most 3 members)',
            );
          }
          if (entry.name.startsWith('.SIGN.')) {
            throw new AppError(
              'APK_SIGNATURE_MEMBER_INVALID',
              'a signature sits inside the control member; signatures belong in a gzip member of their own before it',
            );
          }
          if (!entry.name.startsWith('.') || entry.name.includes('/')) {
            throw new AppError(
              'APK_CONTROL_MEMBER_INVALID',
              `the control member holds '${printable(entry.name)}'; data files must be in a separate gzip member`,
            );
          }
          if (entry.type !== 'file') {
            // apk reads control entries as files; a link named .PKGINFO is a trick.
            throw new AppError(
              'APK_CONTROL_MEMBER_INVALID',
              `control entry '${printable(entry.name)}' is a ${entry.type}; the control member holds regular files only`,
            );
          }
          controlEntries.push(entry.name);
          if (entry.name === '.PKGINFO') {
            if (pkginfo)
              throw new AppError('APK_CONTROL_MEMBER_INVALID', 'the control member has two .PKGINFO files');
            if (entry.size > limits.maxPkginfoBytes) {
              throw new AppError(
                'APK_PKGINFO_TOO_LARGE',
                `.PKGINFO is larger than ${limits.maxPkginfoBytes} bytes`,
              );
            }
            collecting = { kind: 'pkginfo', parts: [], bytes: 0 };
          } else if (SCRIPTS.has(entry.name)) {
            scripts.push(entry.name);
          } else if (entry.name === '.INSTALL') {
            warnings.push('.INSTALL is obsolete: apk 2 warns about it and apk 3 rejects the package');
          }
        } else {
          checkNewPath(entry, paths);
          checkNotUnderSymlink(entry.name, symlinks, 'entry');
          if (entry.type === 'hardlink') checkNotUnderSymlink(entry.linkName!, symlinks, 'hard link target');
          if (entry.type === 'symlink') symlinks.add(normalizedPath(entry.name));
          const file: ApkFile = {
            name: entry.name,
            type: entry.type,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            size: entry.size,
            mtime: entry.mtime,
          };
          if (entry.linkName !== undefined) file.linkTarget = entry.linkName;
          const sha1 = entry.pax['APK-TOOLS.checksum.SHA1'];
          if (sha1 !== undefined) file.sha1 = sha1.toLowerCase();
          files.push(file);
          if (entry.name.startsWith('.')) {
            warnings.push(`data entry '${printable(entry.name)}' starts with '.': apk will not install it`);
          }
          if (entry.name === sbomPath && entry.type === 'file') {
            if (entry.size > limits.maxSbomBytes) {
              throw new AppError(
                'APK_SBOM_TOO_LARGE',
                `the embedded SBOM is larger than ${limits.maxSbomBytes} bytes`,
              );
            }
            options.reserveSbom?.(entry.size);
            collecting = { kind: 'sbom', parts: [], bytes: 0 };
          }
        }
      },
      body(chunk: Buffer) {
        if (collecting) {
          collecting.bytes += chunk.length;
          collecting.parts.push(Buffer.from(chunk));
        }
      },
      entryEnd(entry: TarEntry) {
        if (!collecting) return;
        const body = Buffer.concat(collecting.parts, collecting.bytes);
        const kind = collecting.kind;
        collecting = undefined;
        if (kind === 'signature') {
          const parsed = parseSignatureName(entry.name);
          signatures.push({ algorithm: parsed.algorithm, keyName: parsed.keyName, signature: body });
        } else if (kind === 'pkginfo') {
          pkginfo = parsePkgInfo(body, {
            maxBytes: limits.maxPkginfoBytes,
            maxLines: limits.maxPkginfoLines,
          });
          sbomPath = `var/lib/db/sbom/${pkginfo.name}-${pkginfo.version}.spdx.json`;
        } else {
          sbom = body;
        }
      },
    },
    { maxEntries: limits.maxEntries, maxNameLength: limits.maxNameLength, maxMetaBytes: 1024 * 1024 },
  );

  const summary = await readGzipMembers(
    source,
    {
      memberStart(index) {
        if (members.some((m) => m.role === 'data')) {
          throw new AppError(
            'APK_DATA_MULTIPLE_MEMBERS',
            'the data section is split over several gzip members; apk 3 rejects that (compress it as one member)',
          );
        }
        if (index === 1 && role === undefined) {
          throw new AppError('APK_CONTROL_MEMBER_INVALID', 'the first gzip member holds no tar entries');
        }
        memberIndex = index;
        memberDecompressed = 0;
        role = roleOf(index);
        if (role) setRole(role);
      },
      raw(chunk) {
        whole.update(chunk);
        if (role !== undefined) return acceptRaw(chunk);
        // SECURITY: bounded, or a first member of nothing but zero blocks would be held in memory.
        pendingBytes += chunk.length;
        if (pendingBytes > limits.maxControlMemberBytes) {
          throw new AppError('APK_CONTROL_MEMBER_INVALID', 'the first gzip member holds no tar entry');
        }
        pendingRaw.push(chunk);
      },
      data(chunk) {
        memberDecompressed += chunk.length;
        if (role === undefined && memberDecompressed > limits.maxControlMemberBytes) {
          // Member 0 is a signature or control member, both bounded, however well its zero blocks compress.
          throw new AppError('APK_CONTROL_MEMBER_INVALID', 'the first gzip member holds no tar entry');
        }
        if (role === 'signature' && memberDecompressed > limits.maxSignatureMemberBytes) {
          throw new AppError(
            'APK_MEMBER_TOO_LARGE',
            `the signature member exceeds ${limits.maxSignatureMemberBytes} bytes`,
          );
        }
        if (role === 'control' && memberDecompressed > limits.maxControlMemberBytes) {
          throw new AppError(
            'APK_MEMBER_TOO_LARGE',
            `the control member exceeds ${limits.maxControlMemberBytes} bytes`,
          );
        }
        tar.write(chunk);
      },
      memberEnd(info) {
        const r = role;
        if (r === undefined) {
          throw new AppError('APK_CONTROL_MEMBER_INVALID', `gzip member ${memberIndex} holds no tar entries`);
        }
        if (r !== 'data') {
          // apk reads all members as one tar stream; an end-of-archive marker here
          // would make it stop before the data (apk2 src/io_archive.c).
          if (tar.zeroBlocks > 0) {
            throw new AppError(
              'APK_TAR_END_IN_CONTROL',
              `the ${r} member contains tar end-of-archive blocks; it must be cut (abuild-tar --cut)`,
            );
          }
          if (!tar.atHeaderBoundary) {
            throw new AppError('APK_TAR_UNALIGNED_MEMBER', `the ${r} member ends inside a tar entry`);
          }
        }
        if (r === 'control') {
          if (!pkginfo) throw new AppError('APK_MISSING_PKGINFO', 'the control member has no .PKGINFO');
        }
        if (r === 'data') dataSha256 = dataHash!.digest('hex');
        members.push({
          role: r,
          offset: info.offset,
          compressedLength: info.compressedLength,
          uncompressedLength: info.uncompressedLength,
        });
      },
    },
    limits,
  );

  tar.end();
  if (!hasControl || !pkginfo)
    throw new AppError('APK_MISSING_PKGINFO', 'the package has no control member with .PKGINFO');
  if (!members.some((m) => m.role === 'data')) {
    throw new AppError('APK_TOO_FEW_MEMBERS', 'the package has no data member after its control member');
  }
  const datahashMatches = dataSha256 === pkginfo.datahash;
  if (!datahashMatches && options.requireDatahash !== false) {
    throw new AppError(
      'APK_DATAHASH_MISMATCH',
      `the data member's SHA-256 is ${dataSha256}, but .PKGINFO says datahash = ${pkginfo.datahash}`,
    );
  }
  // apk 2 cuts the names of its script archive (index-limits.ts); `Q1` and 28 base64 characters name the package.
  const scriptPrefix = `${pkginfo.name}-${pkginfo.version}.Q1${'='.repeat(28)}`;
  const cut = scripts.filter((script) => scriptPrefix.length + script.length > APK2_SCRIPT_ENTRY_NAME);
  if (cut.length > 0) {
    warnings.push(
      `apk 2 does not keep ${cut.join(', ')} in its database, name and version being too long for its script archive: they will not run when apk 2 removes the package or runs its trigger`,
    );
  }
  const controlMember = Buffer.concat(controlRaw, controlRawBytes);
  const checksum = `Q1${createHash('sha1').update(controlMember).digest('base64')}`;
  checkIndexRecord({ ...pkginfo, checksum, size: summary.compressedBytes });
  return {
    pkginfo,
    scripts,
    controlEntries,
    signatures,
    checksum,
    controlMember,
    size: summary.compressedBytes,
    sha256: whole.digest('hex'),
    dataSha256,
    datahashMatches,
    files,
    sbom,
    members,
    warnings,
  };
}

/** `./a//b/` → `a/b`: the path a name installs to, for comparing names. */
function normalizedPath(name: string): string {
  return name
    .split('/')
    .filter((c) => c !== '' && c !== '.')
    .join('/');
}

/** Whether a name is already as installed: no empty or `.` component (`./a`, `a/`, `a//b`). */
const UNNORMAL_PATH = /(?:^|\/)\.?(?:\/|$)/;

/**
 * A path may come once in the data tar, directories excepted: apk 2 and 3 fail
 * to install a package that holds a file, link or device twice, or a file and a
 * directory at one path (apk 2 "failed to rename", apk 3 "failed to commit"),
 * while a repeated directory only sets its mode again. Paths compare as
 * installed, so `./a`, `a/` and `a//b` are `a`, `a` and `a/b`.
 */
function checkNewPath(entry: TarEntry, paths: Map<string, TarEntryType>): void {
  // Most names are already normal; keeping them as they are shares the string with `files`.
  const path = UNNORMAL_PATH.test(entry.name) ? normalizedPath(entry.name) : entry.name;
  if (path === '') return; // `./`: the install root itself
  const first = paths.get(path);
  if (first === undefined) {
    paths.set(path, entry.type);
    return;
  }
  if (first === 'directory' && entry.type === 'directory') return;
  const how = first === entry.type ? `twice (as a ${first})` : `as a ${first} and as a ${entry.type}`;
  throw new AppError(
    'APK_DUPLICATE_PATH',
    `the data tar holds '${printable(path)}' ${how}; apk 2 and 3 cannot install a package that does`,
    { details: { path: path.length > 200 ? `${path.slice(0, 200)}…` : path } },
  );
}

/**
 * SECURITY: an entry under an earlier symlink entry of the same archive
 * (`usr/lib/x -> /etc`, then `usr/lib/x/cron.d/evil`) would be written through
 * the link, outside the place its name says. Real packages never do that.
 */
function checkNotUnderSymlink(name: string, symlinks: Set<string>, what: string): void {
  if (symlinks.size === 0) return;
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  let prefix = '';
  for (let i = 0; i < parts.length - 1; i++) {
    prefix = i === 0 ? parts[0]! : `${prefix}/${parts[i]}`;
    if (symlinks.has(prefix)) {
      throw new AppError(
        'APK_TAR_BAD_NAME',
        `tar ${what} '${printable(name)}' lies under the symlink '${printable(prefix)}' of the same package`,
      );
    }
  }
}
