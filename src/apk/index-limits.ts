/**
 * How long a package's metadata may be so that apk 2.x and 3.x can still read
 * it back, from the index and from their own installed database (design
 * invariant 8: one publisher's package must not make the index, or a client's
 * database, unreadable for every other package).
 *
 * SECURITY: every value bounded here comes from a publisher's .PKGINFO.
 *
 * What the clients do (apk-tools 2.14 and 3.0, same file names in both):
 *
 * - Lines. APKINDEX, `lib/apk/db/installed`, `lib/apk/db/triggers` and, at
 *   install time, the package's own .PKGINFO are read line by line with
 *   `apk_istream_get_delim` (src/io.c) from one buffer of `apk_io_bufsize` =
 *   128 KiB. A line that does not fit fails the whole file: apk 2 returns
 *   ENOBUFS ("No buffer space available"), apk 3's `__apk_istream_fill`
 *   returns APKE_BUFFER_SIZE, which `apk_db_fdb_read` (src/database.c)
 *   reports as "v2 database format error". apk 3 also keeps the read position
 *   aligned to 8 bytes (APK_ISTREAM_ALIGN_SYNC), so up to 7 bytes of the
 *   buffer can be lost. Real Alpine `p:` and `D:` lines pass 64 KiB, so list
 *   fields get nearly the whole buffer.
 *
 * - The installed database. When apk installs a package it writes the index
 *   record into `lib/apk/db/installed` with `apk_pkg_write_index_header`
 *   (src/package.c): every line from `C:` to `k:` (all but the `D:` `p:` `i:`
 *   lists, which are streamed) goes through one `char buf[2048]`. When they
 *   do not fit, apk 2 prints "Metadata for package … is too long" and
 *   `apk_db_write_fdb` returns early, a result `apk_db_write_config` ignores:
 *   the database is cut at that package and forgets it and every installed
 *   package sorted after it, while `apk add` exits 0. apk 3's
 *   `apk_db_fdb_write` cancels the write ("failed to write database:
 *   internal buffer too small") and every later install fails the same way.
 *   So the scalar fields of one record must fit 2048 bytes *together*, which
 *   the per-field limits below alone would not ensure.
 *
 * - `replaces` is not in the index, but apk copies it from .PKGINFO into the
 *   installed database's `r:` line, which `apk_db_write_fdb` (apk 2) and
 *   `apk_db_fdb_write` (apk 3) build in a `char buf[1024+PATH_MAX]` together
 *   with the package's first `F:` directory line; the same failure follows.
 *
 * - Name and version. With a package cache (`/etc/apk/cache`, which diskless
 *   Alpine needs to keep packages across reboots), apk 2 names the cached copy
 *   `.apknew.<name>-<version>.<8 hex>.apk` in a `char tmpcacheitem[128]`
 *   (`apk_pkg_format_cache_pkg`, called by `apk_db_unpack_pkg` and
 *   `apk_cache_download`, src/database.c); a longer name does not fit and the
 *   package is cached as `.apknew.`, i.e. lost. apk 3 names it `${name}-${version}.${hash:8}.apk` in a
 *   `char cache_filename[NAME_MAX]` and otherwise warns "unable to cache
 *   package". So name and version together are at most 128 − 23 = 105 bytes.
 *
 * The limits are far above what Alpine and Wolfi packages use (Alpine v3.17
 * main: pkgdesc ≤ 159 bytes, url ≤ 87, license ≤ 191, maintainer ≤ 54,
 * name and version together ≤ 51, the whole `C:`…`k:` block ≤ 516), and
 * keep `<name>-<version>.apk.provenance.json`, the longest file served beside
 * a package, under the router's 500-byte path parameter limit (http/app.ts)
 * and the 255-byte file names of a mirror on disk.
 */

/** apk's stream buffer: the longest line (with its `\n`) either client reads. */
export const APK_LINE_BUFFER = 128 * 1024;

/** reef's bound on one rendered index line, `X:` and `\n` included: well below apk's buffer. */
export const MAX_INDEX_LINE = 120 * 1024;

/** apk_pkg_write_index_header's buffer for the `C:` … `k:` lines of one record. */
export const APK_HEADER_BUFFER = 2048;

/**
 * reef's bound on those lines as it renders them. 64 bytes of room: apk 3 writes a
 * SHA-256 identity (`Q2…`, 16 bytes longer than `Q1…`) for packages it knows by one.
 */
export const MAX_RECORD_HEADER = APK_HEADER_BUFFER - 64;

/**
 * reef's own bound on a whole rendered record (apk has none beyond its lines): one
 * package's share of every index it is listed in stays bounded.
 */
export const MAX_INDEX_RECORD = 256 * 1024;

/**
 * Longest accepted value, in UTF-8 bytes, per .PKGINFO key. List keys are
 * measured joined with single spaces, as the index line writes them; `license`
 * after several lines are joined (pkginfo.ts).
 */
export const PKGINFO_FIELD_LIMITS = {
  pkgname: 100,
  pkgver: 64,
  pkgdesc: 512,
  url: 512,
  license: 512,
  origin: 128,
  maintainer: 256,
  commit: 128,
  packager: 256,
  // Each becomes one index line (`D:` `p:` `i:`) or one triggers-file line: "X:" and "\n" fit beside.
  depend: MAX_INDEX_LINE - 3,
  provides: MAX_INDEX_LINE - 3,
  install_if: MAX_INDEX_LINE - 3,
  triggers: MAX_INDEX_LINE - 64,
  replaces: 1024,
} as const satisfies Record<string, number>;

/** pkgname and pkgver together, so that apk 2 can name a package's cached copy. */
export const MAX_NAME_VERSION = 105;

/**
 * apk 2 keeps an installed package's scripts in `lib/apk/db/scripts.tar` as
 * `<name>-<version>.Q1<28 base64>.<script>`, written into a tar header's
 * 100-byte name field without a long-name record (`apk_db_scriptdb_write`,
 * src/database.c; `apk_tar_write_entry`, src/io_archive.c): a longer name is
 * cut, and reading it back no longer finds the script, so its removal and
 * trigger scripts never run. apk 3 writes long names. Real packages stay
 * below (name and version ≤ 51 bytes in Alpine main), so this is a warning.
 */
export const APK2_SCRIPT_ENTRY_NAME = 99;

/** Which .PKGINFO key fills each line of an index record, for messages that name it. */
export const INDEX_LETTER_KEYS: Readonly<Record<string, string>> = {
  C: 'the control member checksum',
  P: 'pkgname',
  V: 'pkgver',
  A: 'arch',
  S: 'the package size',
  I: 'size',
  T: 'pkgdesc',
  U: 'url',
  L: 'license',
  o: 'origin',
  m: 'maintainer',
  t: 'builddate',
  c: 'commit',
  k: 'provider_priority',
  D: 'depend',
  p: 'provides',
  i: 'install_if',
};
