import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { detectLibc } from '../../src/repo/publish.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import {
  opensslVerifyIndex,
  publish,
  removeDir,
  snapshotData,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { needsSharedFixtures, realFixturesDir, sharedFixturesPresent } from '../helpers/shared-fixtures.ts';

interface ManifestApk {
  file: string;
  kind: string;
  index_C: string;
  index_S: number;
  sha256: string;
  datahash_matches_data_member: boolean;
  pkginfo: Record<string, string | string[]>;
}

const FIXTURES = realFixturesDir();
const manifest: ManifestApk[] = sharedFixturesPresent
  ? JSON.parse(readFileSync(join(FIXTURES, 'fixtures-manifest.json'), 'utf8'))
  : [];
const valid = manifest.filter((m) => m.kind === 'apk' && m.datahash_matches_data_member);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

async function getBytes(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

describe('publishing the real fixtures', needsSharedFixtures, () => {
  let server: TestServer;
  const work = mkdtempSync(join(tmpdir(), 'reef-work-'));
  const placed: Array<{ m: ManifestApk; libc: string; arch: string }> = [];

  before(async () => {
    server = await startServer();
    for (const m of valid) {
      const libc = detectLibc(list(m.pkginfo.depend).flatMap((d) => d.split(' ')))?.libc ?? 'glibc';
      const { status, json } = await publish(server, 'main', libc, readFileSync(join(FIXTURES, m.file)));
      assert.equal(status, 201, `${m.file}: ${JSON.stringify(json)}`);
      placed.push({ m, libc, arch: String(m.pkginfo.arch) });
    }
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  test('every index verifies with openssl and lists exactly the published packages', async () => {
    const keyName = server.services.signingKeys[0]!.keyName;
    const pem = await (await fetch(`${server.url}/keys/${keyName}`)).text();
    assert.equal(await (await fetch(`${server.url}/main/glibc/${keyName}`)).text(), pem);
    const repos = (await (await fetch(`${server.url}/api/v1/repos`)).json()) as {
      repos: Array<{ name: string; indexes: Array<{ libc: string; arch: string; packages: number }> }>;
    };
    const indexes = repos.repos.find((r) => r.name === 'main')!.indexes;
    assert.ok(indexes.length >= 2);
    for (const { libc, arch } of indexes) {
      const { res, body } = await getBytes(`${server.url}/main/${libc}/${arch}/APKINDEX.tar.gz`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-encoding'), null);
      const file = join(work, `${libc}-${arch}.tar.gz`);
      writeFileSync(file, body);
      execFileSync('gzip', ['-t', file]);
      assert.deepEqual(opensslVerifyIndex(file, { [keyName]: pem }, work), [
        `.SIGN.RSA256.${keyName}`,
        `.SIGN.RSA.${keyName}`,
      ]);
      const index = await readIndex(chunked(body), {
        keys: [loadPublicKey(keyName, pem)],
        requireValidSignature: true,
      });
      const expected = placed.filter((p) => p.libc === libc && (p.arch === arch || p.arch === 'noarch'));
      assert.deepEqual(
        index.records.map((r) => `${r.name}-${r.version}`).sort(),
        expected.map((p) => `${p.m.pkginfo.pkgname}-${p.m.pkginfo.pkgver}`).sort(),
      );
      for (const p of expected) {
        const r = index.records.find(
          (x) => x.name === p.m.pkginfo.pkgname && x.version === p.m.pkginfo.pkgver,
        )!;
        assert.equal(r.checksum, p.m.index_C);
        assert.equal(r.size, p.m.index_S);
        assert.equal(r.arch, arch, 'noarch packages carry the index arch');
      }
    }
  });

  test('every package downloads byte for byte, noarch ones under every arch and noarch/', async () => {
    for (const p of placed) {
      const filename = `${p.m.pkginfo.pkgname}-${p.m.pkginfo.pkgver}.apk`;
      const arches = p.arch === 'noarch' ? ['noarch', 'x86_64', 'aarch64'] : [p.arch];
      for (const arch of arches) {
        const { res, body } = await getBytes(`${server.url}/main/${p.libc}/${arch}/${filename}`);
        assert.equal(res.status, 200, `${arch}/${filename}`);
        assert.equal(sha256(body), p.m.sha256);
        assert.equal(res.headers.get('etag'), `"${p.m.sha256}"`);
        assert.match(res.headers.get('cache-control') ?? '', /immutable/);
      }
    }
    const missing = await fetch(`${server.url}/main/glibc/x86_64/nothing-1.0-r0.apk`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, 'PACKAGE_NOT_FOUND');
  });

  test('HEAD, ETag, 304 and Range behave as apk and apko expect', async () => {
    for (const path of [
      '/main/glibc/x86_64/APKINDEX.tar.gz',
      `/main/glibc/x86_64/${placed[0]!.m.pkginfo.pkgname}-${placed[0]!.m.pkginfo.pkgver}.apk`,
    ]) {
      const url = server.url + path;
      const get = await getBytes(url);
      const head = await fetch(url, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('etag'), get.res.headers.get('etag'));
      assert.equal(head.headers.get('content-length'), String(get.body.length));
      assert.equal(
        sha256(get.body),
        get.res.headers.get('etag')!.slice(1, -1),
        'the ETag is the SHA-256 of the body',
      );
      const etag = get.res.headers.get('etag')!;
      assert.equal((await fetch(url, { headers: { 'if-none-match': etag } })).status, 304);
      assert.equal((await fetch(url, { headers: { 'if-none-match': '"other"' } })).status, 200);
      const later = new Date(Date.now() + 60_000).toUTCString();
      assert.equal((await fetch(url, { headers: { 'if-modified-since': later } })).status, 304);
      const earlier = new Date(Date.now() - 3600_000).toUTCString();
      assert.equal((await fetch(url, { headers: { 'if-modified-since': earlier } })).status, 200);
      const part = await getBytes(url, { range: 'bytes=10-' });
      assert.equal(part.res.status, 206);
      assert.ok(part.body.equals(get.body.subarray(10)));
      assert.equal(
        part.res.headers.get('content-range'),
        `bytes 10-${get.body.length - 1}/${get.body.length}`,
      );
      const bad = await fetch(url, { headers: { range: `bytes=${get.body.length + 5}-` } });
      assert.equal(bad.status, 416);
    }
  });

  test('republishing identical bytes is idempotent; the metadata API describes the package', async () => {
    const m = placed[0]!;
    const again = await publish(server, 'main', m.libc, readFileSync(join(FIXTURES, m.m.file)));
    assert.equal(again.status, 200);
    assert.equal(again.json.outcome, 'exists');
    const meta = (await (
      await fetch(
        `${server.url}/api/v1/packages/main/${m.libc}/${m.arch}/${m.m.pkginfo.pkgname}/${m.m.pkginfo.pkgver}`,
      )
    ).json()) as Record<string, unknown>;
    assert.equal(meta.checksum, m.m.index_C);
    assert.equal(meta.sha256, m.m.sha256);
    assert.equal(meta.size, m.m.index_S);
    const listed = (await (
      await fetch(`${server.url}/api/v1/repos/main/${m.libc}/${m.arch}/packages?limit=1`)
    ).json()) as {
      packages: unknown[];
      next: number | null;
    };
    assert.equal(listed.packages.length, 1);
  });
});

describe('rejections leave nothing behind', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
    assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'keep' }))).status, 201);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('each bad upload has its status and code, and the data folder is unchanged', async () => {
    const before = await snapshotData(server);
    const glibc = ['so:libc.so.6'];
    const neon = await buildApk({
      name: 'neon',
      version: '4604-r0',
      depends: glibc,
      datahash: '0'.repeat(64),
    });
    const glibcPkg = await buildApk({ name: 'hello-wolfi', version: '2.12.1-r0', depends: glibc });
    const cases: Array<[string, Promise<{ status: number; json: Record<string, unknown> }>, number, string]> =
      [
        ['datahash', publish(server, 'r', 'glibc', neon), 422, 'APK_DATAHASH_MISMATCH'],
        ['garbage', publish(server, 'r', 'musl', Buffer.from('not a package')), 400, 'APK_NOT_GZIP'],
        ['empty', publish(server, 'r', 'musl', Buffer.alloc(0)), 400, 'PUBLISH_NO_BODY'],
        ['libc', publish(server, 'r', 'musl', glibcPkg), 422, 'PUBLISH_LIBC_MISMATCH'],
        ['token', publish(server, 'r', 'musl', await buildApk(), 'wrong-token'), 401, 'AUTH_INVALID'],
        ['repo', publish(server, 'Bad Repo', 'musl', await buildApk()), 400, 'PUBLISH_BAD_REPO'],
        ['libc name', publish(server, 'r', 'uclibc', await buildApk()), 400, 'PUBLISH_BAD_REPO'],
        [
          'conflict',
          publish(server, 'r', 'musl', await buildApk({ name: 'keep', description: 'other bytes' })),
          409,
          'PUBLISH_VERSION_EXISTS',
        ],
        [
          'bomb-ish',
          publish(server, 'r', 'musl', await buildApk({ splitData: true })),
          400,
          'APK_DATA_MULTIPLE_MEMBERS',
        ],
      ];
    for (const [what, pending, status, code] of cases) {
      const { status: got, json } = await pending;
      assert.equal(got, status, `${what}: ${JSON.stringify(json)}`);
      assert.equal(json.code, code, what);
      assert.equal(typeof json.message, 'string');
    }
    const noAuth = await fetch(`${server.url}/api/v1/repos/r/musl/packages`, {
      method: 'POST',
      body: new Uint8Array(await buildApk()),
    });
    assert.equal(noAuth.status, 401);
    assert.equal(noAuth.headers.get('www-authenticate'), 'Basic realm="reef"');
    assert.equal(((await noAuth.json()) as { code: string }).code, 'AUTH_REQUIRED');
    assert.equal(await snapshotData(server), before);
  });

  test('multipart and PUT uploads work; Basic auth carries the token', async () => {
    const form = new FormData();
    form.set('package', new Blob([new Uint8Array(await buildApk({ name: 'viaform' }))]), 'viaform.apk');
    const res = await fetch(`${server.url}/api/v1/repos/r/musl/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
      body: form,
    });
    assert.equal(res.status, 201, await res.clone().text());
    const put = await fetch(`${server.url}/api/v1/repos/r/musl/packages`, {
      method: 'PUT',
      headers: { authorization: `Basic ${Buffer.from(`ci:${TEST_TOKEN}`).toString('base64')}` },
      body: new Uint8Array(await buildApk({ name: 'viaput' })),
    });
    assert.equal(put.status, 201);
  });

  test('delete republishes the index; the last delete leaves it signed and empty', async () => {
    assert.equal((await publish(server, 'gone', 'musl', await buildApk({ name: 'a' }))).status, 201);
    assert.equal((await publish(server, 'gone', 'musl', await buildApk({ name: 'b' }))).status, 201);
    const del = (name: string) =>
      fetch(`${server.url}/api/v1/repos/gone/musl/x86_64/${name}/1.0.0-r0`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${TEST_TOKEN}` },
      });
    assert.equal((await del('a')).status, 204);
    const index = await readIndex(
      chunked(
        Buffer.from(await (await fetch(`${server.url}/gone/musl/x86_64/APKINDEX.tar.gz`)).arrayBuffer()),
      ),
    );
    assert.deepEqual(
      index.records.map((r) => r.name),
      ['b'],
    );
    assert.equal((await fetch(`${server.url}/gone/musl/x86_64/a-1.0.0-r0.apk`)).status, 404);
    assert.equal((await del('a')).status, 404);
    assert.equal((await del('b')).status, 204);
    // The emptied index stays, signed: clients configured for it keep updating (apk would fail on a 404).
    const keyName = server.services.signingKeys[0]!.keyName;
    const pem = await (await fetch(`${server.url}/keys/${keyName}`)).text();
    const empty = await fetch(`${server.url}/gone/musl/x86_64/APKINDEX.tar.gz`);
    assert.equal(empty.status, 200);
    const work = mkdtempSync(join(tmpdir(), 'reef-emptied-'));
    const file = join(work, 'emptied.tar.gz');
    writeFileSync(file, Buffer.from(await empty.arrayBuffer()));
    execFileSync('gzip', ['-t', file]);
    assert.ok(opensslVerifyIndex(file, { [keyName]: pem }, work).length > 0, 'the empty index is signed');
    const emptied = await readIndex(chunked(readFileSync(file)), {
      keys: [loadPublicKey(keyName, pem)],
      requireValidSignature: true,
    });
    assert.equal(emptied.records.length, 0);
    removeDir(work);
    const listed = (await (await fetch(`${server.url}/api/v1/repos`)).json()) as {
      repos: Array<{ name: string; indexes: Array<{ arch: string; packages: number }> }>;
    };
    assert.deepEqual(
      listed.repos.find((r) => r.name === 'gone')?.indexes.map((i) => [i.arch, i.packages]),
      [['x86_64', 0]],
    );
    const blobs = await server.services.database.get<{ n: number }>(
      "SELECT count(*) AS n FROM packages WHERE repo = 'gone'",
    );
    assert.equal(blobs?.n, 0);
  });
});

describe('concurrency', () => {
  test('50 concurrent publishes to one index all succeed and one final index lists all 50', async () => {
    const server = await startServer();
    try {
      const packages = await Promise.all(
        Array.from({ length: 50 }, (_, i) => buildApk({ name: `burst${i}`, depends: ['so:libc.so.6'] })),
      );
      const results = await Promise.all(packages.map((p) => publish(server, 'burst', 'glibc', p)));
      assert.deepEqual(
        results.map((r) => r.status),
        Array(50).fill(201),
      );
      const body = Buffer.from(
        await (await fetch(`${server.url}/burst/glibc/x86_64/APKINDEX.tar.gz`)).arrayBuffer(),
      );
      const index = await readIndex(chunked(body));
      assert.equal(index.records.length, 50);
      const builds = server.logs.filter((l) => l.includes('"index published"')).length;
      assert.ok(builds < 50, `publishes coalesce into fewer index builds (${builds})`);
    } finally {
      await server.close();
      removeDir(server.dataDir);
    }
  });
});
