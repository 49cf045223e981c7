import { AppError } from '../errors.ts';
import { parseDependencyList } from './dependency.ts';
import { MAX_INDEX_LINE, MAX_NAME_VERSION, PKGINFO_FIELD_LIMITS } from './index-limits.ts';
import { isValidVersion } from './version.ts';

/**
 * `.PKGINFO`: the package's metadata, `key = value` lines (apk2 src/package.c
 * `read_info_line`).
 * Scalars keep the last occurrence like apk does, except the identity keys,
 * whose repetition is refused: two `pkgver` lines can only be a mistake or a
 * trick. List keys accumulate, each value may hold several space-separated items.
 */
export interface PkgInfo {
  name: string;
  version: string;
  arch: string;
  /** Installed size in bytes (`I:`). */
  installedSize: number;
  /** Lowercase hex SHA-256 of the data member. */
  datahash: string;
  description: string;
  url: string;
  /** Licence expression; several `license` lines are joined with AND (melange writes one per licence). */
  license: string;
  origin: string;
  maintainer: string;
  builddate: number | undefined;
  commit: string;
  packager: string;
  providerPriority: number | undefined;
  replacesPriority: number | undefined;
  depends: string[];
  provides: string[];
  installIf: string[];
  replaces: string[];
  triggers: string[];
  /** Every `key = value` line in file order, for anything not modelled above. */
  fields: Array<[string, string]>;
}

export interface PkgInfoLimits {
  maxBytes: number;
  maxLines: number;
}

/** Architectures apk knows (apk3 doc/apk-package.5.scd). */
export const APK_ARCHES = new Set([
  'noarch',
  'aarch64',
  'arc700',
  'archs',
  'armeb',
  'armel',
  'armhf',
  'armv7',
  'mips',
  'mipsel',
  'mips64',
  'mips64el',
  'ppc',
  'ppc64',
  'ppc64le',
  'riscv32',
  'riscv64',
  's390x',
  'sh2eb',
  'sh3',
  'sh4',
  'loongarchx32',
  'loongarch64',
  'wasi32',
  'wasi64',
  'x86',
  'x86_64',
]);

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const HEX64_RE = /^[0-9a-fA-F]{64}$/;
const UINT_RE = /^[0-9]{1,15}$/;
const INT_RE = /^-?[0-9]{1,15}$/;
const SEPARATOR = ' = ';
const UNIQUE_KEYS = new Set(['pkgname', 'pkgver', 'arch', 'size', 'datahash']);
const LIST_KEYS = {
  depend: 'depends',
  provides: 'provides',
  install_if: 'installIf',
  replaces: 'replaces',
} as const;
/** The limits by any key: undefined for keys that have none. */
const FIELD_LIMITS: Readonly<Record<string, number | undefined>> = PKGINFO_FIELD_LIMITS;

export function validatePackageName(name: string): void {
  if (!NAME_RE.test(name) || name.length > PKGINFO_FIELD_LIMITS.pkgname) {
    throw new AppError(
      'APK_INVALID_NAME',
      `package name '${name.slice(0, 100)}' is invalid: use at most ${PKGINFO_FIELD_LIMITS.pkgname} letters, digits and . _ + -, starting with a letter or digit`,
    );
  }
}

/**
 * SECURITY: a value longer than apk can read back makes the index, or the
 * client's installed database, unreadable for every package (index-limits.ts).
 */
function checkFieldLength(field: string, value: string, limit = FIELD_LIMITS[field]): void {
  if (limit === undefined) return;
  const bytes = Buffer.byteLength(value);
  if (bytes > limit) {
    throw new AppError(
      'APK_PKGINFO_FIELD_TOO_LONG',
      `.PKGINFO ${field} is ${bytes} bytes; at most ${limit} are accepted, to stay within what apk 2 and 3 read back (see the README for every limit)`,
      { details: { field, bytes, limit } },
    );
  }
}

export function parsePkgInfo(bytes: Buffer, limits: PkgInfoLimits): PkgInfo {
  if (bytes.length > limits.maxBytes) {
    throw new AppError('APK_PKGINFO_TOO_LARGE', `.PKGINFO is larger than ${limits.maxBytes} bytes`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new AppError('APK_PKGINFO_NOT_UTF8', '.PKGINFO is not valid UTF-8', { cause: err });
  }
  const lines = text.split('\n');
  if (lines.length > limits.maxLines) {
    throw new AppError('APK_PKGINFO_TOO_LARGE', `.PKGINFO has more than ${limits.maxLines} lines`);
  }

  const fields: Array<[string, string]> = [];
  const scalars = new Map<string, string>();
  const licenses: string[] = [];
  const lists = {
    depends: [] as string[],
    provides: [] as string[],
    installIf: [] as string[],
    replaces: [] as string[],
  };
  const triggers: string[] = [];
  for (const [i, line] of lines.entries()) {
    // apk reads .PKGINFO at install with the same 128 KiB line buffer as the index (index-limits.ts).
    if (Buffer.byteLength(line) >= MAX_INDEX_LINE) {
      const sep = line.indexOf(SEPARATOR);
      const key = sep > 0 && sep <= 64 ? line.slice(0, sep) : `line ${i + 1}`;
      // A field's own, lower limit names the problem better than the line's.
      checkFieldLength(key, line.slice(sep + SEPARATOR.length));
      checkFieldLength(key, line, MAX_INDEX_LINE - 1);
    }
    if (line.startsWith('#')) continue;
    // apk splits at the first " = "; lines without it are ignored (apk2
    // src/package.c `read_info_line`).
    const sep = line.indexOf(SEPARATOR);
    if (sep < 0) continue;
    const key = line.slice(0, sep);
    const value = line.slice(sep + SEPARATOR.length);
    if (value.includes('\r') || value.includes('\0')) {
      throw new AppError('APK_PKGINFO_BAD_VALUE', `.PKGINFO key '${key}' holds a control character`);
    }
    fields.push([key, value]);
    if (UNIQUE_KEYS.has(key) && scalars.has(key)) {
      throw new AppError('APK_PKGINFO_BAD_VALUE', `.PKGINFO has '${key}' more than once`);
    }
    if (key in LIST_KEYS) {
      lists[LIST_KEYS[key as keyof typeof LIST_KEYS]].push(...splitItems(value));
    } else if (key === 'triggers') {
      triggers.push(...splitItems(value));
    } else if (key === 'license') {
      if (value.trim()) licenses.push(value.trim());
    } else {
      scalars.set(key, value);
    }
  }

  for (const [key, value] of scalars) checkFieldLength(key, value);
  const license = joinLicenses(licenses);
  checkFieldLength('license', license);
  for (const [key, field] of Object.entries(LIST_KEYS)) checkFieldLength(key, lists[field].join(' '));
  checkFieldLength('triggers', triggers.join(' '));

  const required = (key: string): string => {
    const value = scalars.get(key);
    if (value === undefined || value === '') {
      throw new AppError(
        'APK_PKGINFO_MISSING_KEY',
        `.PKGINFO has no '${key}'; rebuild the package with abuild or melange`,
      );
    }
    return value;
  };
  const name = required('pkgname');
  validatePackageName(name);
  const version = required('pkgver');
  if (!isValidVersion(version)) {
    throw new AppError('APK_INVALID_VERSION', `pkgver '${version.slice(0, 100)}' is not a valid apk version`);
  }
  const nameVersion = name.length + version.length;
  if (nameVersion > MAX_NAME_VERSION) {
    throw new AppError(
      'APK_PKGINFO_FIELD_TOO_LONG',
      `.PKGINFO pkgname and pkgver are ${nameVersion} bytes together; at most ${MAX_NAME_VERSION} are accepted, so that apk 2 can keep the package in its cache`,
      {
        details: {
          field: 'pkgname',
          fields: ['pkgname', 'pkgver'],
          bytes: nameVersion,
          limit: MAX_NAME_VERSION,
        },
      },
    );
  }
  const arch = required('arch');
  if (!APK_ARCHES.has(arch)) {
    throw new AppError('APK_INVALID_ARCH', `arch '${arch.slice(0, 100)}' is not an architecture apk knows`);
  }
  const size = required('size');
  if (!UINT_RE.test(size))
    throw new AppError('APK_PKGINFO_BAD_VALUE', `size '${size.slice(0, 100)}' is not a number`);
  const datahash = scalars.get('datahash');
  if (datahash === undefined) {
    throw new AppError(
      'APK_PKGINFO_MISSING_KEY',
      '.PKGINFO has no datahash: legacy packages are not accepted, rebuild with abuild >= 3 or melange',
    );
  }
  if (!HEX64_RE.test(datahash)) {
    throw new AppError('APK_PKGINFO_BAD_VALUE', 'datahash is not 64 hexadecimal characters');
  }

  for (const [key, list] of Object.entries(lists)) {
    try {
      parseDependencyList(list.join(' '));
    } catch (err) {
      if (err instanceof AppError) {
        throw new AppError('APK_INVALID_DEPENDENCY', `.PKGINFO ${key}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  return {
    name,
    version,
    arch,
    installedSize: Number(size),
    datahash: datahash.toLowerCase(),
    description: scalars.get('pkgdesc') ?? '',
    url: scalars.get('url') ?? '',
    license,
    origin: scalars.get('origin') ?? '',
    maintainer: scalars.get('maintainer') ?? '',
    builddate: optionalInt(scalars, 'builddate', UINT_RE),
    commit: scalars.get('commit') ?? '',
    packager: scalars.get('packager') ?? '',
    providerPriority: optionalInt(scalars, 'provider_priority', UINT_RE),
    replacesPriority: optionalInt(scalars, 'replaces_priority', INT_RE),
    ...lists,
    triggers,
    fields,
  };
}

function splitItems(value: string): string[] {
  return value.split(' ').filter((s) => s.length > 0);
}

function optionalInt(scalars: Map<string, string>, key: string, re: RegExp): number | undefined {
  const value = scalars.get(key);
  if (value === undefined || value === '') return undefined;
  if (!re.test(value))
    throw new AppError('APK_PKGINFO_BAD_VALUE', `${key} '${value.slice(0, 100)}' is not a number`);
  return Number(value);
}

function joinLicenses(licenses: string[]): string {
  if (licenses.length <= 1) return licenses[0] ?? '';
  return licenses.map((l) => (/\sOR\s/i.test(l) ? `(${l})` : l)).join(' AND ');
}
