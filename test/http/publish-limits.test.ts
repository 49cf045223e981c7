import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  APK_HEADER_BUFFER,
  APK_LINE_BUFFER,
  MAX_INDEX_LINE,
  MAX_NAME_VERSION,
  PKGINFO_FIELD_LIMITS,
} from '../../src/apk/index-limits.ts';
import { type BuildFile, buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

/**
 * What a publisher may send is bounded by what apk 2 and 3 read back
 * (src/apk/index-limits.ts): over HTTP, each refusal is a 400 naming the
 * field, and a package at the limits is listed with a record whose lines fit
 * apk's buffers, read with GNU tar and plain text splitting rather than
 * reef's own index reader.
 */

const LIMIT = PKGINFO_FIELD_LIMITS;
const dirs: BuildFile[] = [
  { name: 'usr/', type: 'directory' },
  { name: 'usr/share/', type: 'directory' },
];

/** `provides` items filling exactly `bytes` bytes when joined, over lines of 6,000 items. */
function providesLines(bytes: number): string[] {
  const n = Math.floor((bytes + 1) / 9) - 1;
  const items = Array.from({ length: n }, (_, i) => `x${String(i).padStart(7, '0')}`);
  items.push('z'.repeat(bytes - 9 * n));
  const lines: string[] = [];
  for (let i = 0; i < items.length; i += 6000) lines.push(`provides = ${items.slice(i, i + 6000).join(' ')}`);
  return lines;
}

describe('publish limits: what apk reads back', () => {
  let server: TestServer;
  const work = mkdtempSync(join(tmpdir(), 'reef-limits-'));
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  /** The APKINDEX text of /limits/glibc/x86_64, extracted by GNU tar. */
  async function indexText(): Promise<string> {
    const res = await fetch(`${server.url}/limits/glibc/x86_64/APKINDEX.tar.gz`);
    assert.equal(res.status, 200);
    const file = join(work, 'APKINDEX.tar.gz');
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    return execFileSync('tar', ['-xzOf', file, 'APKINDEX'], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  }

  test('a field too long for apk is refused with a 400 that names it; nothing is listed', async () => {
    const cases: Array<[string, Promise<Buffer>, string, string]> = [
      [
        'url',
        buildApk({ extraPkginfo: [`url = https://e.org/${'u'.repeat(LIMIT.url)}`] }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'url',
      ],
      [
        'url over apk line',
        buildApk({ extraPkginfo: [`url = https://e.org/${'u'.repeat(130 * 1024)}`] }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'url',
      ],
      [
        'pkgdesc',
        buildApk({ description: 'd'.repeat(LIMIT.pkgdesc + 1) }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'pkgdesc',
      ],
      [
        'pkgname',
        buildApk({ name: `n${'a'.repeat(LIMIT.pkgname)}` }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'pkgname',
      ],
      [
        // Accepted before names were bounded, then unreachable: the file name passed the router's 500 bytes.
        'a file name over 500 bytes',
        buildApk({ name: `n${'a'.repeat(199)}`, version: `${'1'.repeat(297)}-r0` }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'pkgname',
      ],
      [
        'name and version together',
        buildApk({ name: `n${'a'.repeat(59)}`, version: `${'1'.repeat(43)}-r0` }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'pkgname',
      ],
      [
        'pkgver',
        buildApk({ version: `${'1'.repeat(LIMIT.pkgver - 2)}-r0` }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'pkgver',
      ],
      [
        'provides',
        buildApk({ extraPkginfo: providesLines(LIMIT.provides + 1) }),
        'APK_PKGINFO_FIELD_TOO_LONG',
        'provides',
      ],
      [
        'record',
        buildApk({
          description: 'd'.repeat(LIMIT.pkgdesc),
          license: 'l'.repeat(LIMIT.license),
          extraPkginfo: [
            `url = ${'u'.repeat(LIMIT.url)}`,
            `maintainer = ${'m'.repeat(LIMIT.maintainer)}`,
            `commit = ${'c'.repeat(LIMIT.commit)}`,
          ],
        }),
        'APK_INDEX_RECORD_TOO_LONG',
        'pkgdesc',
      ],
      [
        'duplicate path',
        buildApk({
          files: [...dirs, { name: 'usr/share/a', content: '1' }, { name: 'usr/share/a', content: '2' }],
        }),
        'APK_DUPLICATE_PATH',
        '',
      ],
    ];
    for (const [what, bytes, code, field] of cases) {
      const { status, json } = await publish(server, 'limits', 'glibc', await bytes);
      assert.equal(status, 400, `${what}: ${JSON.stringify(json).slice(0, 300)}`);
      assert.equal(json.code, code, what);
      const details = json.details as Record<string, unknown>;
      if (field) {
        assert.equal(details.field, field, what);
        assert.ok(String(json.message).includes(field), `${what}: ${json.message}`);
      } else {
        assert.equal(details.path, 'usr/share/a');
      }
    }
    // No index, nor even the repository (anonymous callers would get 401, as for a private one).
    const index = await fetch(`${server.url}/limits/glibc/x86_64/APKINDEX.tar.gz`, {
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    assert.equal(index.status, 404);
  });

  test('a package at the limits is listed with lines that fit apk 2 and 3, and installs from that record', async () => {
    const bytes = await buildApk({
      name: 'edge',
      depends: [],
      description: 'd'.repeat(LIMIT.pkgdesc),
      license: 'l'.repeat(LIMIT.license),
      files: [...dirs, { name: 'usr/share/edge', content: 'edge\n' }],
      extraPkginfo: [
        `url = ${'u'.repeat(LIMIT.url)}`,
        `maintainer = ${'m'.repeat(LIMIT.maintainer)}`,
        ...providesLines(LIMIT.provides),
      ],
    });
    const { status, json } = await publish(server, 'limits', 'glibc', bytes);
    assert.equal(status, 201, JSON.stringify(json).slice(0, 300));
    const record = (await indexText()).split('\n\n').find((r) => r.split('\n').includes('P:edge'));
    assert.ok(record, 'the index lists edge');
    const lines = record.split('\n').map((l) => Buffer.byteLength(l) + 1);
    // apk 3 may lose 7 bytes of its 128 KiB buffer to alignment; each line with its \n must fit the rest.
    for (const bytes of lines) assert.ok(bytes <= APK_LINE_BUFFER - 7, `${bytes}`);
    const provides = record.split('\n').find((l) => l.startsWith('p:'))!;
    assert.equal(Buffer.byteLength(provides) + 1, MAX_INDEX_LINE);
    // apk_pkg_write_index_header's buffer takes every line but D: p: i:, even with a 16-byte longer C:.
    const header = record
      .split('\n')
      .filter((l) => !'Dpi'.includes(l[0]!))
      .reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    assert.ok(header + 16 <= APK_HEADER_BUFFER, `${header}`);
    const apk = await fetch(`${server.url}/limits/glibc/x86_64/edge-1.0.0-r0.apk`);
    assert.deepEqual(Buffer.from(await apk.arrayBuffer()), bytes);
  });

  test('names and versions at their limits download, with every file served beside them', async () => {
    for (const [name, version] of <Array<[string, string]>>[
      [`n${'a'.repeat(LIMIT.pkgname - 1)}`, `${'1'.repeat(MAX_NAME_VERSION - LIMIT.pkgname - 3)}-r0`],
      [`m${'a'.repeat(MAX_NAME_VERSION - LIMIT.pkgver - 1)}`, `${'1'.repeat(LIMIT.pkgver - 3)}-r0`],
    ]) {
      assert.equal(name.length + version.length, MAX_NAME_VERSION);
      const bytes = await buildApk({ name, version, depends: [] });
      const { status, json } = await publish(server, 'limits', 'glibc', bytes);
      assert.equal(status, 201, JSON.stringify(json).slice(0, 300));
      const base = `${server.url}/limits/glibc/x86_64/${name}-${version}.apk`;
      const apk = await fetch(base);
      assert.equal(apk.status, 200);
      assert.deepEqual(Buffer.from(await apk.arrayBuffer()), bytes);
      for (const suffix of ['.spdx.json', '.cdx.json', '.provenance.json', '.publish.json']) {
        const res = await fetch(`${base}${suffix}`);
        const body = await res.text();
        assert.equal(res.status, 200, `${suffix}: ${body.slice(0, 200)}`);
      }
    }
  });
});
