/**
 * apk version strings: validation, ordering and operator matching, following
 * apk-tools 3 (`src/version.c`, checked against `test/unit/version.data`).
 *
 * Pure and allocation-free on the hot path: index builds sort ~100,000
 * versions, so `compareVersions` walks both strings with two reusable
 * tokenizers and compares digit runs in place (no parseInt, no BigInt, no
 * substrings), which also means numbers of any length compare without the
 * 64-bit overflow apk itself has.
 */

import { AppError } from '../errors.ts';

/** Dependency/version operators of apk3 src/version.c (`><` checksum match is world/lock only). */
export type VersionOp = '<' | '>' | '=' | '<=' | '>=' | '~' | '<~' | '>~';

export const VERSION_OPS: readonly VersionOp[] = ['<', '>', '=', '<=', '>=', '~', '<~', '>~'];

// Token kinds, in the rank order of apk3 src/version.c's TOKEN_*; step 5 of
// compareFuzzy compares these ranks.
const T_INITIAL_DIGIT = 0;
const T_DIGIT = 1;
const T_LETTER = 2;
const T_SUFFIX = 3;
const T_SUFFIX_NO = 4;
const T_COMMIT_HASH = 5;
const T_REVISION_NO = 6;
const T_END = 7;
const T_INVALID = 8;

// Suffix ranks (apk3 src/version.c): pre-release words sort below "no suffix", the rest above.
const S_INVALID = 0;
const S_ALPHA = 1;
const S_BETA = 2;
const S_PRE = 3;
const S_RC = 4;
const S_NONE = 5;
const S_CVS = 6;
const S_SVN = 7;
const S_GIT = 8;
const S_HG = 9;
const S_P = 10;

const C_0 = 48;
const C_9 = 57;
const C_a = 97;
const C_f = 102;
const C_r = 114;
const C_z = 122;
const C_DOT = 46;
const C_UNDERSCORE = 95;
const C_TILDE = 126;
const C_DASH = 45;

function isDigit(c: number): boolean {
  return c >= C_0 && c <= C_9;
}

function isLower(c: number): boolean {
  return c >= C_a && c <= C_z;
}

function isHex(c: number): boolean {
  return (c >= C_0 && c <= C_9) || (c >= C_a && c <= C_f);
}

/** Whether s[start, end) spells `word` exactly. */
function spells(s: string, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (s.charCodeAt(start + i) !== word.charCodeAt(i)) return false;
  return true;
}

/** Rank of the suffix word s[start, end): exactly one of apk3 src/version.c's ten words, else S_INVALID. */
function suffixRank(s: string, start: number, end: number): number {
  if (end === start) return S_INVALID;
  switch (s.charCodeAt(start)) {
    case 97: // a
      return spells(s, start, end, 'alpha') ? S_ALPHA : S_INVALID;
    case 98: // b
      return spells(s, start, end, 'beta') ? S_BETA : S_INVALID;
    case 99: // c
      return spells(s, start, end, 'cvs') ? S_CVS : S_INVALID;
    case 103: // g
      return spells(s, start, end, 'git') ? S_GIT : S_INVALID;
    case 104: // h
      return spells(s, start, end, 'hg') ? S_HG : S_INVALID;
    case 112: // p: `p` alone is the patch suffix, anything longer must be `pre`
      if (end - start === 1) return S_P;
      return spells(s, start, end, 'pre') ? S_PRE : S_INVALID;
    case 114: // r
      return spells(s, start, end, 'rc') ? S_RC : S_INVALID;
    case 115: // s
      return spells(s, start, end, 'svn') ? S_SVN : S_INVALID;
    default:
      return S_INVALID;
  }
}

/**
 * The apk 3 tokenizer (apk3 src/version.c `token_first`, `token_next`).
 * `kind` is the current token; its text is s[start, end). Mutable and reused
 * so comparisons allocate nothing.
 */
class Tokenizer {
  s = '';
  pos = 0;
  kind = T_INVALID;
  start = 0;
  end = 0;
  suffix = S_INVALID;

  /** The first token is the leading digit run; an empty run makes the version invalid. */
  first(s: string): void {
    this.s = s;
    this.pos = 0;
    this.kind = T_INITIAL_DIGIT;
    this.digits();
  }

  private digits(): void {
    const s = this.s;
    let p = this.pos;
    while (p < s.length && isDigit(s.charCodeAt(p))) p++;
    this.start = this.pos;
    this.end = p;
    this.pos = p;
    if (p === this.start) this.kind = T_INVALID;
  }

  /** Advance; which tokens may follow which is apk3 `token_next`'s grammar. */
  next(): void {
    const s = this.s;
    if (this.pos >= s.length) {
      this.kind = T_END;
      return;
    }
    const c = s.charCodeAt(this.pos);
    const prev = this.kind;
    if (isLower(c)) {
      // A single letter, only directly after the numeric part (`1.0a`, not `1.0ab` or `1_pa`).
      if (prev > T_DIGIT) {
        this.invalid();
        return;
      }
      this.kind = T_LETTER;
      this.start = this.pos;
      this.end = ++this.pos;
    } else if (c === C_DOT || isDigit(c)) {
      if (c === C_DOT) {
        if (prev > T_DIGIT) {
          this.invalid();
          return;
        }
        this.pos++;
      }
      // A bare digit run can only follow a suffix word (`_pre2`); after a
      // letter it is invalid (`0.1a1`).
      if (prev === T_INITIAL_DIGIT || prev === T_DIGIT) this.kind = T_DIGIT;
      else if (prev === T_SUFFIX) this.kind = T_SUFFIX_NO;
      else {
        this.invalid();
        return;
      }
      this.digits();
    } else if (c === C_UNDERSCORE) {
      if (prev > T_SUFFIX_NO) {
        this.invalid();
        return;
      }
      let p = ++this.pos;
      while (p < s.length && isLower(s.charCodeAt(p))) p++;
      this.suffix = suffixRank(s, this.pos, p);
      if (this.suffix === S_INVALID) {
        this.invalid();
        return;
      }
      this.kind = T_SUFFIX;
      this.start = this.pos;
      this.end = p;
      this.pos = p;
    } else if (c === C_TILDE) {
      // `~hash` (apk 3 only): a non-empty run of lowercase hex, before any `-r`.
      if (prev >= T_COMMIT_HASH) {
        this.invalid();
        return;
      }
      let p = ++this.pos;
      while (p < s.length && isHex(s.charCodeAt(p))) p++;
      if (p === this.pos) {
        this.invalid();
        return;
      }
      this.kind = T_COMMIT_HASH;
      this.start = this.pos;
      this.end = p;
      this.pos = p;
    } else if (c === C_DASH) {
      // Only `-r<digits>`, once, and last.
      if (prev >= T_REVISION_NO || s.charCodeAt(this.pos + 1) !== C_r) {
        this.invalid();
        return;
      }
      this.pos += 2;
      this.kind = T_REVISION_NO;
      this.digits();
    } else {
      this.invalid();
    }
  }

  private invalid(): void {
    this.kind = T_INVALID;
  }
}

/** Byte-string order of s[as, ae) vs t[bs, be): first difference, then the shorter prefix first. */
function compareText(s: string, as: number, ae: number, t: string, bs: number, be: number): -1 | 0 | 1 {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(as + i) - t.charCodeAt(bs + i);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const d = ae - as - (be - bs);
  return d < 0 ? -1 : d > 0 ? 1 : 0;
}

/**
 * Numeric order of two digit runs of any length: drop leading zeros, then the
 * longer run is larger, and equal lengths compare as text.
 */
function compareNumber(s: string, as: number, ae: number, t: string, bs: number, be: number): -1 | 0 | 1 {
  while (as < ae && s.charCodeAt(as) === C_0) as++;
  while (bs < be && t.charCodeAt(bs) === C_0) bs++;
  const d = ae - as - (be - bs);
  if (d !== 0) return d < 0 ? -1 : 1;
  return compareText(s, as, ae, t, bs, be);
}

/** Step 1 of compareFuzzy: compare two tokens of the same kind (apk3 src/version.c `token_cmp`). */
function compareTokens(a: Tokenizer, b: Tokenizer): -1 | 0 | 1 {
  switch (a.kind) {
    case T_DIGIT:
      // apk 3 compares a component with a leading zero as text (Gentoo style):
      // `8.2.0 < 8.2.001 < 8.2.0015 < 8.2.002` (apk3 src/version.c; apk2
      // src/version.c scores such a component differently).
      if (a.s.charCodeAt(a.start) === C_0 || b.s.charCodeAt(b.start) === C_0) {
        return compareText(a.s, a.start, a.end, b.s, b.start, b.end);
      }
      return compareNumber(a.s, a.start, a.end, b.s, b.start, b.end);
    case T_INITIAL_DIGIT:
    case T_SUFFIX_NO:
    case T_REVISION_NO:
      return compareNumber(a.s, a.start, a.end, b.s, b.start, b.end);
    case T_LETTER: {
      const d = a.s.charCodeAt(a.start) - b.s.charCodeAt(b.start);
      return d < 0 ? -1 : d > 0 ? 1 : 0;
    }
    case T_SUFFIX:
      return a.suffix < b.suffix ? -1 : a.suffix > b.suffix ? 1 : 0;
    default: // T_COMMIT_HASH
      return compareText(a.s, a.start, a.end, b.s, b.start, b.end);
  }
}

// Reused by every comparison; safe because comparisons never re-enter.
const ta = new Tokenizer();
const tb = new Tokenizer();

/** apk3 src/version.c `apk_version_compare_fuzzy`, in the steps below; `fuzzy` acts in step 3. */
function compareFuzzy(a: string, b: string, fuzzy: boolean): -1 | 0 | 1 {
  ta.first(a);
  tb.first(b);
  while (ta.kind === tb.kind && ta.kind < T_END) {
    const r = compareTokens(ta, tb);
    if (r !== 0) return r;
    ta.next();
    tb.next();
  }
  // Step 2: both ended (or both went invalid at the same point).
  if (ta.kind === tb.kind) return 0;
  // Step 3: `~` is a prefix match, so b running out first means equal.
  if (fuzzy && tb.kind === T_END) return 0;
  // Step 4: a pre-release suffix makes its side older (`1.0_rc1 < 1.0`).
  if (ta.kind === T_SUFFIX && ta.suffix < S_NONE) return -1;
  if (tb.kind === T_SUFFIX && tb.suffix < S_NONE) return 1;
  // Step 5: the side whose next token ranks higher is the smaller version
  // (`1.0 < 1.0.1`, `1.0-r1 < 1.0_p1`).
  return ta.kind > tb.kind ? -1 : 1;
}

/** Whether `v` is a valid apk 3 version (apk3 src/version.c `apk_version_validate`), including `~hash`. */
export function isValidVersion(v: string): boolean {
  ta.first(v);
  while (ta.kind < T_END) ta.next();
  return ta.kind === T_END;
}

/**
 * Order two versions by apk 3 rules (apk3 src/version.c `apk_version_compare`):
 * -1 if a < b, 1 if a > b. Total on valid versions; invalid ones still get
 * apk's answer (e.g. `1.0 < 1.0bc`), so callers should validate first.
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  return compareFuzzy(a, b, false);
}

/** Evaluate `a op b` as apk3 src/version.c `apk_version_match` does; `~` ops are prefix matches. */
export function matchVersion(a: string, op: VersionOp, b: string): boolean {
  switch (op) {
    case '<':
      return compareFuzzy(a, b, false) < 0;
    case '>':
      return compareFuzzy(a, b, false) > 0;
    case '=':
      return compareFuzzy(a, b, false) === 0;
    case '<=':
      return compareFuzzy(a, b, false) <= 0;
    case '>=':
      return compareFuzzy(a, b, false) >= 0;
    case '~':
      return compareFuzzy(a, b, true) === 0;
    case '<~':
      return compareFuzzy(a, b, true) <= 0;
    case '>~':
      return compareFuzzy(a, b, true) >= 0;
  }
}

/** Narrow a string to a `VersionOp`. */
export function isVersionOp(s: string): s is VersionOp {
  return (VERSION_OPS as readonly string[]).includes(s);
}

/**
 * Split `<name>-<version>` at the last `-` followed by a digit (apk2
 * src/package.c `apk_pkg_parse_name`): `py3-foo-1.2-r0` → `py3-foo` +
 * `1.2-r0`. Returns null if there is no such `-`, or the name would be empty.
 * The version is not validated.
 */
export function splitNameVersion(s: string): { name: string; version: string } | null {
  for (let i = s.length - 2; i > 0; i--) {
    if (s.charCodeAt(i) === C_DASH && isDigit(s.charCodeAt(i + 1))) {
      return { name: s.slice(0, i), version: s.slice(i + 1) };
    }
  }
  return null;
}

/** Throw APK_INVALID_VERSION unless `v` is valid; `what` names the field (e.g. `pkgver`). */
export function assertValidVersion(v: string, what: string): void {
  if (!isValidVersion(v)) {
    throw new AppError('APK_INVALID_VERSION', `${what}: invalid version ${JSON.stringify(v)}`, {
      details: { field: what, value: v },
    });
  }
}
