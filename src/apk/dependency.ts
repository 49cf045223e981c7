/**
 * apk dependency tokens as found in `.PKGINFO` (`depend =`, `provides =`,
 * `install_if =`) and APKINDEX (`D:`, `p:`, `i:`): apk3 src/package.c and
 * doc/apk-package.5.scd.
 *
 * SECURITY: the input comes from uploaded packages. Parsing is a single
 * linear scan (no regex), and every token that apk 3 would refuse or mark
 * broken is rejected here, so it never reaches a served index.
 */

import { AppError } from '../errors.ts';
import { isValidVersion, isVersionOp, type VersionOp } from './version.ts';

export interface Dependency {
  name: string;
  /** `!name…`: the package conflicts with matching providers. */
  conflict: boolean;
  /** Present together with `version`; absent means "any version". */
  op?: VersionOp;
  version?: string;
  /** `@tag` repository pin (world files only; see `allowTag`). */
  tag?: string;
}

export interface ParseDependencyOptions {
  /**
   * Accept `name@tag`. Off by default because reef only parses index-bound
   * fields, and apk 3 does not accept a tag there (apk3 src/package.c `apk_pkgtmpl_add_info`).
   */
  allowTag?: boolean;
}

/**
 * Name (and tag) characters: apk3 `src/ctype.c` DEPENDENCY_NAME, i.e.
 * `[A-Za-z0-9._+-]` plus `:` `/` `,` `[` `]` for namespaces (`so:`, `cmd:`,
 * `pc:`, `py3.10:`) and paths (`/bin/sh`).
 */
function isNameChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || // a-z
    (c >= 65 && c <= 90) || // A-Z
    (c >= 48 && c <= 57) || // 0-9
    c === 46 || // .
    c === 95 || // _
    c === 43 || // +
    c === 45 || // -
    c === 58 || // :
    c === 47 || // /
    c === 44 || // ,
    c === 91 || // [
    c === 93 // ]
  );
}

/** The comparer characters that start the operator (apk3 DEPENDENCY_COMPARER). */
function isComparer(c: number): boolean {
  return c === 60 || c === 61 || c === 62 || c === 126; // < = > ~
}

function isName(s: string, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) if (!isNameChar(s.charCodeAt(i))) return false;
  return true;
}

function fail(token: string, reason: string): never {
  throw new AppError('APK_INVALID_DEPENDENCY', `invalid dependency ${JSON.stringify(token)}: ${reason}`, {
    details: { token },
  });
}

/** Parse one `[!]name[@tag][op version]` token (apk3 src/package.c `apk_dep_parse`). */
export function parseDependency(token: string, opts: ParseDependencyOptions = {}): Dependency {
  const len = token.length;
  const conflict = token.charCodeAt(0) === 33; // !
  const nameStart = conflict ? 1 : 0;

  // As in apk, the name ends at the first comparer character; the op is the
  // run of comparer characters, and everything after it is the version.
  let opStart = nameStart;
  while (opStart < len && !isComparer(token.charCodeAt(opStart))) opStart++;

  let nameEnd = token.indexOf('@', nameStart);
  if (nameEnd < 0 || nameEnd > opStart) nameEnd = opStart;
  if (!isName(token, nameStart, nameEnd)) {
    fail(token, nameEnd === nameStart ? 'empty name' : 'bad character in name');
  }
  const dep: Dependency = { name: token.slice(nameStart, nameEnd), conflict };

  if (nameEnd < opStart) {
    if (!opts.allowTag) fail(token, '@tag is only allowed in world files');
    if (!isName(token, nameEnd + 1, opStart)) fail(token, 'bad repository tag');
    dep.tag = token.slice(nameEnd + 1, opStart);
  }

  if (opStart < len) {
    let opEnd = opStart;
    while (opEnd < len && isComparer(token.charCodeAt(opEnd))) opEnd++;
    const op = token.slice(opStart, opEnd);
    // `><` (checksum match) is written only by apk into world/lock files,
    // never in package metadata; apk 3 would not treat it as a version
    // constraint, so it must not reach an index (apk3 src/version.c, src/package.c).
    if (!isVersionOp(op)) fail(token, `unknown operator ${JSON.stringify(op)}`);
    const version = token.slice(opEnd);
    // apk 3 marks a package whose D: holds an invalid version uninstallable (apk3 src/package.c).
    if (!isValidVersion(version)) fail(token, `invalid version ${JSON.stringify(version)}`);
    dep.op = op;
    dep.version = version;
  }
  return dep;
}

/**
 * Parse a dependency list. Tokens are separated by runs of spaces or
 * newlines, as apk splits them (apk3 DEPENDENCY_SEPARATOR); an empty or
 * blank string is an empty list.
 */
export function parseDependencyList(s: string, opts: ParseDependencyOptions = {}): Dependency[] {
  const deps: Dependency[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 10) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < s.length && s.charCodeAt(end) !== 32 && s.charCodeAt(end) !== 10) end++;
    deps.push(parseDependency(s.slice(i, end), opts));
    i = end;
  }
  return deps;
}

/** The canonical token for `d`, as apk writes it (apk3 `apk_blob_push_dep`). */
export function formatDependency(d: Dependency): string {
  let s = d.conflict ? `!${d.name}` : d.name;
  if (d.tag !== undefined) s += `@${d.tag}`;
  if (d.op !== undefined && d.version !== undefined) s += d.op + d.version;
  return s;
}
