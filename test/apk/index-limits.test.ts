import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkIndexRecord } from '../../src/apk/check-index-record.ts';
import {
  APK_HEADER_BUFFER,
  APK_LINE_BUFFER,
  APK2_SCRIPT_ENTRY_NAME,
  MAX_INDEX_LINE,
  MAX_NAME_VERSION,
  MAX_RECORD_HEADER,
  PKGINFO_FIELD_LIMITS,
} from '../../src/apk/index-limits.ts';
import { type IndexEntry, renderIndexRecord } from '../../src/apk/index-writer.ts';
import { readApk } from '../../src/apk/read-apk.ts';
import { isAppError } from '../../src/errors.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';

/**
 * The bounds of index-limits.ts: every .PKGINFO field, and the record as
 * rendered, stay within what apk 2 and 3 read back. The oracle for "readable"
 * is apk's own arithmetic: a line with its `\n` fits the 128 KiB stream buffer,
 * and the `C:` … `k:` lines together fit apk_pkg_write_index_header's 2048 bytes.
 */

async function refused(bytes: Buffer, code: string, field: string): Promise<void> {
  await assert.rejects(readApk(chunked(bytes)), (err) => {
    assert.ok(isAppError(err), `expected ${code}, got ${err}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.details?.field, field, err.message);
    assert.ok(err.message.includes(field), err.message);
    return true;
  });
}

/** A valid value of exactly `bytes` UTF-8 bytes for a .PKGINFO key. */
function valueOfSize(key: string, bytes: number): string {
  if (key === 'pkgname') return `n${'a'.repeat(bytes - 1)}`;
  if (key === 'pkgver') return `${'1'.repeat(bytes - 3)}-r0`;
  // Multi-byte text counts in bytes, as apk's buffers do: 'é' is two.
  if (key === 'pkgdesc') return `${'é'.repeat(Math.floor(bytes / 2))}${'x'.repeat(bytes % 2)}`;
  return 'v'.repeat(bytes);
}

/** .PKGINFO lines giving `key` a value of `bytes` bytes; list items spread over lines of 54,000 bytes. */
function linesOf(key: string, bytes: number): string[] {
  if (!['depend', 'provides', 'install_if', 'triggers', 'replaces'].includes(key)) {
    return [`${key} = ${valueOfSize(key, bytes)}`];
  }
  // n items of 8 bytes, each followed by a space, then one of 8 to 16 bytes to make the size exact.
  const n = Math.floor((bytes + 1) / 9) - 1;
  const items = Array.from({ length: n }, (_, i) => `x${String(i).padStart(7, '0')}`);
  items.push('z'.repeat(bytes - 9 * n));
  const out: string[] = [];
  for (let i = 0; i < items.length; i += 6000) out.push(`${key} = ${items.slice(i, i + 6000).join(' ')}`);
  return out;
}

function apkWith(key: string, bytes: number): Promise<Buffer> {
  const value = valueOfSize(key, bytes);
  const options = { depends: [] as string[] };
  // The other of name and version kept short: together they have a limit of their own.
  if (key === 'pkgname') return buildApk({ ...options, name: value, version: '1-r0' });
  if (key === 'pkgver') return buildApk({ ...options, version: value });
  if (key === 'pkgdesc') return buildApk({ ...options, description: value });
  if (key === 'license') return buildApk({ ...options, license: value });
  return buildApk({ ...options, extraPkginfo: linesOf(key, bytes) });
}

describe('.PKGINFO field limits', () => {
  for (const [key, limit] of Object.entries(PKGINFO_FIELD_LIMITS)) {
    test(`${key}: ${limit} bytes are accepted, ${limit + 1} refused naming the field`, async () => {
      const pkg = await readApk(chunked(await apkWith(key, limit)));
      const field = {
        pkgname: pkg.pkginfo.name,
        pkgver: pkg.pkginfo.version,
        pkgdesc: pkg.pkginfo.description,
        url: pkg.pkginfo.url,
        license: pkg.pkginfo.license,
        origin: pkg.pkginfo.origin,
        maintainer: pkg.pkginfo.maintainer,
        commit: pkg.pkginfo.commit,
        packager: pkg.pkginfo.packager,
        depend: pkg.pkginfo.depends.join(' '),
        provides: pkg.pkginfo.provides.join(' '),
        install_if: pkg.pkginfo.installIf.join(' '),
        triggers: pkg.pkginfo.triggers.join(' '),
        replaces: pkg.pkginfo.replaces.join(' '),
      }[key];
      assert.equal(Buffer.byteLength(field ?? ''), limit);
      await refused(await apkWith(key, limit + 1), 'APK_PKGINFO_FIELD_TOO_LONG', key);
    });
  }

  test('several license lines are bounded as the one L: line they become', async () => {
    const half = 'L'.repeat(PKGINFO_FIELD_LIMITS.license / 2);
    await refused(
      await buildApk({ license: half, extraPkginfo: [`license = ${half}`] }),
      'APK_PKGINFO_FIELD_TOO_LONG',
      'license',
    );
  });

  test('a .PKGINFO line apk cannot read at install is refused, whatever its key', async () => {
    const line = `x-vendor = ${'v'.repeat(MAX_INDEX_LINE)}`;
    await refused(await buildApk({ extraPkginfo: [line] }), 'APK_PKGINFO_FIELD_TOO_LONG', 'x-vendor');
    await assert.rejects(
      readApk(chunked(await buildApk({ extraPkginfo: [`# ${'c'.repeat(MAX_INDEX_LINE)}`] }))),
      (err) => {
        assert.ok(isAppError(err, 'APK_PKGINFO_FIELD_TOO_LONG'));
        assert.match(String(err.details?.field), /^line \d+$/);
        return true;
      },
    );
    // A scalar field over the line size is named with its own limit.
    await assert.rejects(readApk(chunked(await apkWith('url', APK_LINE_BUFFER + 10))), (err) => {
      assert.ok(isAppError(err, 'APK_PKGINFO_FIELD_TOO_LONG'));
      assert.equal(err.details?.limit, PKGINFO_FIELD_LIMITS.url);
      return true;
    });
  });

  test('name and version are bounded together, so that apk 2 can name the cached copy', async () => {
    const version = `${'1'.repeat(PKGINFO_FIELD_LIMITS.pkgver - 3)}-r0`;
    const name = (n: number) => `n${'a'.repeat(n - 1)}`;
    const pkg = await readApk(
      chunked(await buildApk({ name: name(MAX_NAME_VERSION - version.length), version })),
    );
    // apk 2: ".apknew." + name-version + ".<8 hex>.apk" and a NUL in a 128-byte buffer.
    assert.equal(8 + pkg.pkginfo.name.length + 1 + pkg.pkginfo.version.length + 13 + 1, 128);
    await assert.rejects(
      readApk(chunked(await buildApk({ name: name(MAX_NAME_VERSION + 1 - version.length), version }))),
      (err) => {
        assert.ok(isAppError(err, 'APK_PKGINFO_FIELD_TOO_LONG'));
        assert.deepEqual(err.details?.fields, ['pkgname', 'pkgver']);
        return true;
      },
    );
    // The longest file served beside a package fits a router path parameter and a file name on disk.
    const longest = MAX_NAME_VERSION + 1 + '.apk.provenance.json'.length;
    assert.ok(longest <= 255, `${longest}`);
  });
});

describe('apk 2 script archive names', () => {
  test('a package whose scripts apk 2 cannot keep is accepted with a warning naming them', async () => {
    const scripts = { '.post-deinstall': '#!/bin/sh\n', '.trigger': '#!/bin/sh\n' };
    const warned = async (nameVersion: number) => {
      const name = `s${'x'.repeat(nameVersion - '-1.0-r0'.length - 1)}`;
      const pkg = await readApk(chunked(await buildApk({ name, version: '1.0-r0', scripts })));
      return pkg.warnings.filter((w) => w.startsWith('apk 2'));
    };
    // `<name>-<version>.Q1<28>.post-deinstall` is 99 bytes: it fits apk 2's tar name field.
    assert.deepEqual(await warned(APK2_SCRIPT_ENTRY_NAME - 46), []);
    const cut = await warned(APK2_SCRIPT_ENTRY_NAME - 45);
    assert.equal(cut.length, 1);
    assert.match(cut[0]!, /\.post-deinstall/);
    assert.doesNotMatch(cut[0]!, /\.trigger/);
  });
});

const entry = (over: Partial<IndexEntry> = {}): IndexEntry => ({
  name: 'p',
  version: '1.0-r0',
  arch: 'x86_64',
  checksum: `Q1${'A'.repeat(27)}=`,
  size: 4_294_967_295,
  installedSize: 999_999_999_999_999,
  description: '',
  url: '',
  license: '',
  origin: 'p',
  maintainer: '',
  builddate: 999_999_999_999_999,
  commit: '',
  providerPriority: 999_999_999_999_999,
  depends: [],
  provides: [],
  installIf: [],
  ...over,
});

/** The bytes apk_pkg_write_index_header puts in its buffer: every line but D: p: i:, each with its `\n`. */
function headerBytes(record: string): number {
  return record
    .split('\n')
    .filter((l) => l.length >= 2 && !'Dpi'.includes(l[0]!))
    .reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
}

describe('checkIndexRecord', () => {
  test('fields each within their limit, together over the installed-database buffer, are refused', () => {
    const big = entry({
      description: 'd'.repeat(PKGINFO_FIELD_LIMITS.pkgdesc),
      url: 'u'.repeat(PKGINFO_FIELD_LIMITS.url),
      license: 'l'.repeat(PKGINFO_FIELD_LIMITS.license),
      maintainer: 'm'.repeat(PKGINFO_FIELD_LIMITS.maintainer),
      commit: 'c'.repeat(PKGINFO_FIELD_LIMITS.commit),
    });
    assert.ok(headerBytes(renderIndexRecord(big, 'x86_64')) > APK_HEADER_BUFFER);
    assert.throws(
      () => checkIndexRecord(big),
      (err) => {
        assert.ok(isAppError(err, 'APK_INDEX_RECORD_TOO_LONG'));
        assert.equal(err.details?.field, 'pkgdesc');
        assert.deepEqual(err.details?.fields, ['pkgdesc', 'url', 'license']);
        return true;
      },
    );
  });

  test('the header is bounded to the byte: at the limit it fits apk, one byte more is refused', () => {
    const base = headerBytes(renderIndexRecord(entry(), 'x86_64'));
    const pad = MAX_RECORD_HEADER - base;
    const url = 'u'.repeat(PKGINFO_FIELD_LIMITS.url);
    const description = 'd'.repeat(pad - url.length);
    const atLimit = entry({ url, description });
    checkIndexRecord(atLimit);
    const record = renderIndexRecord(atLimit, 'x86_64');
    assert.equal(headerBytes(record), MAX_RECORD_HEADER);
    // apk 3 may write a SHA-256 identity, 16 bytes longer: it still fits.
    assert.ok(headerBytes(record) + 16 <= APK_HEADER_BUFFER);
    assert.throws(
      () => checkIndexRecord({ ...atLimit, description: `${description}d` }),
      (err) => isAppError(err, 'APK_INDEX_RECORD_TOO_LONG') && err.details?.field === 'pkgdesc',
    );
  });

  test('a noarch record is measured with the longest arch it may be listed under', () => {
    const base = headerBytes(renderIndexRecord(entry(), 'x86_64'));
    const atLimit = entry({ description: 'd'.repeat(MAX_RECORD_HEADER - base) });
    checkIndexRecord(atLimit);
    // 'noarch' is 6 bytes like x86_64, but a noarch record is also listed as loongarchx32.
    assert.throws(
      () => checkIndexRecord({ ...atLimit, arch: 'noarch' }),
      (err) => isAppError(err, 'APK_INDEX_RECORD_TOO_LONG'),
    );
  });

  test('a list line is bounded with its letter and newline, below apk 128 KiB buffer', () => {
    const item = (n: number) => 'p'.repeat(n);
    checkIndexRecord(entry({ provides: [item(MAX_INDEX_LINE - 3)] }));
    const record = renderIndexRecord(entry({ provides: [item(MAX_INDEX_LINE - 3)] }), 'x86_64');
    const line = record.split('\n').find((l) => l.startsWith('p:'))!;
    assert.equal(Buffer.byteLength(line) + 1, MAX_INDEX_LINE);
    assert.ok(Buffer.byteLength(line) + 1 + 7 <= APK_LINE_BUFFER);
    assert.throws(
      () => checkIndexRecord(entry({ provides: [item(MAX_INDEX_LINE - 2)] })),
      (err) => isAppError(err, 'APK_INDEX_RECORD_TOO_LONG') && err.details?.field === 'provides',
    );
  });

  test('the whole record is bounded too', () => {
    const third = 'x'.repeat(MAX_INDEX_LINE - 3);
    assert.throws(
      () => checkIndexRecord(entry({ depends: [third], provides: [third], installIf: [third] })),
      (err) => isAppError(err, 'APK_INDEX_RECORD_TOO_LONG'),
    );
  });
});
