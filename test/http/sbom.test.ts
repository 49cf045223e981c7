import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  makePrivate,
  publish,
  publishForm,
  removeDir,
  snapshotData,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { needsSharedFixtures, realFixturesDir } from '../helpers/shared-fixtures.ts';
import { sampleSpdx } from '../sbom/sbom-fixtures.ts';

const FIXTURES = realFixturesDir();
const require = createRequire(import.meta.url);

/** The official CycloneDX 1.6 schema, as shipped by the CycloneDX library (an independent validator). */
function cycloneDxValidator() {
  const dir = join(require.resolve('@cyclonedx/cyclonedx-library/package.json'), '..', 'res', 'schema');
  const load = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: true });
  addFormats.default(ajv);
  ajv.addFormat('iri-reference', true);
  ajv.addFormat('iri', true);
  for (const file of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    ajv.addSchema({ ...load(file), $id: `http://cyclonedx.org/schema/${file}` });
  }
  return ajv.compile(load('bom-1.6.SNAPSHOT.schema.json'));
}

const embedded = [
  { file: 'melange/linter__kubeflow-pipelines-2.1.3-r7.apk', libc: 'glibc' },
  { file: 'go-apk/apk__replaces__replaces-0.0.1-r0.apk', libc: 'glibc' },
  { file: 'apko/cli__packages__x86_64__pretend-baselayout-1.0.0-r0.apk', libc: 'glibc' },
];

describe('SBOMs beside every package', () => {
  let server: TestServer;
  const validateCdx = cycloneDxValidator();
  const work = mkdtempSync(join(tmpdir(), 'reef-sbom-work-'));
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  test(
    'an embedded melange SBOM is kept byte for byte, and served as CycloneDX that passes the official schema',
    needsSharedFixtures,
    async () => {
      for (const { file, libc } of embedded) {
        const path = join(FIXTURES, file);
        const r = await publish(server, 'sb', libc, readFileSync(path));
        assert.equal(r.status, 201, JSON.stringify(r.json));
        const { name, version, arch } = r.json as { name: string; version: string; arch: string };
        const sbomPath = `var/lib/db/sbom/${name}-${version}.spdx.json`;
        const expected = execFileSync('tar', ['--warning=no-unknown-keyword', '-xzOf', path, sbomPath]);
        const base = `${server.url}/sb/${libc}/${arch}/${name}-${version}.apk`;
        // .spdx.json is normalized to conform (test/http/sbom-conformance.test.ts); the original is kept.
        const spdx = await fetch(`${base}.sbom.original.json`);
        assert.equal(spdx.status, 200);
        assert.ok(
          Buffer.from(await spdx.arrayBuffer()).equals(expected),
          `${file}: original bytes = embedded bytes`,
        );
        assert.match(spdx.headers.get('cache-control') ?? '', /immutable/);
        const cdx = await fetch(`${base}.cdx.json`);
        assert.equal(cdx.status, 200);
        const doc = await cdx.json();
        assert.ok(validateCdx(doc), `${file}: ${JSON.stringify(validateCdx.errors?.slice(0, 3))}`);
        const api = await fetch(
          `${server.url}/api/v1/packages/sb/${libc}/${arch}/${name}/${version}/sbom?format=spdx`,
        );
        assert.equal(api.headers.get('x-reef-sbom-source'), 'embedded');
        // The SBOM's own packages are queryable by name.
        const spdxDoc = JSON.parse(expected.toString()) as { packages: Array<{ name: string }> };
        const someName = spdxDoc.packages[0]!.name;
        const found = (await (
          await fetch(`${server.url}/api/v1/components?name=${encodeURIComponent(someName)}`)
        ).json()) as {
          matches: Array<{ package: { name: string } }>;
        };
        assert.ok(
          found.matches.some((m) => m.package.name === name),
          `${someName} is found in ${name}`,
        );
      }
    },
  );

  test('an Alpine package gets a generated SBOM listing its files with the checksums of its tar', async () => {
    const path = join(work, 'alpine-base-3.12.0-r0.apk');
    const apk = await buildApk({
      name: 'alpine-base',
      version: '3.12.0-r0',
      arch: 'noarch',
      depends: ['alpine-baselayout', 'alpine-conf'],
      files: [
        { name: 'etc/alpine-release', content: '3.12.0\n' },
        { name: 'etc/issue', content: 'Welcome to Alpine Linux 3.12\n' },
        { name: 'etc/motd', content: '' },
      ],
    });
    writeFileSync(path, apk);
    const r = await publish(server, 'sb', 'musl', apk);
    assert.equal(r.status, 201);
    const res = await fetch(`${server.url}/sb/musl/x86_64/alpine-base-3.12.0-r0.apk.spdx.json`);
    const doc = (await res.json()) as {
      files: Array<{ fileName: string; checksums: Array<{ algorithm: string; checksumValue: string }> }>;
    };
    const listed = execFileSync('tar', ['--warning=no-unknown-keyword', '-tzf', path], { encoding: 'utf8' })
      .split('\n')
      .filter((n) => n && !n.startsWith('.') && !n.endsWith('/'));
    assert.deepEqual(doc.files.map((f) => f.fileName.replace(/^\.?\//, '')).sort(), listed.sort());
    for (const f of doc.files) {
      const name = f.fileName.replace(/^\.?\//, '');
      const content = execFileSync('tar', ['--warning=no-unknown-keyword', '-xzOf', path, name]);
      const sha1 = execFileSync('sha1sum', { input: content, encoding: 'utf8' }).split(' ')[0];
      assert.equal(f.checksums.find((c) => c.algorithm === 'SHA1')?.checksumValue, sha1, name);
    }
    const api = await fetch(`${server.url}/api/v1/packages/sb/musl/noarch/alpine-base/3.12.0-r0/sbom`);
    assert.equal(api.headers.get('x-reef-sbom-source'), 'generated');
  });

  test('an SBOM sent with the package is stored; bad ones are refused with their code and leave nothing', async () => {
    const golden = Buffer.from(JSON.stringify(sampleSpdx('crane', '0.20.2-r1'), null, 2));
    const crane = await buildApk({ name: 'crane', version: '0.20.2-r1', depends: [] });
    const ok = await publishForm(server, 'up', 'glibc', { sbom: golden, package: crane });
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
    const served = await fetch(`${server.url}/up/glibc/x86_64/crane-0.20.2-r1.apk.sbom.original.json`);
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(golden));

    const before = await snapshotData(server);
    const other = await buildApk({ name: 'other', depends: [] });
    const cases: Array<[Buffer, string]> = [
      [golden, 'SBOM_WRONG_PACKAGE'],
      [Buffer.from('{"spdxVersion": "SPDX-2.3", '), 'SBOM_INVALID_JSON'],
      [Buffer.alloc(17 * 2 ** 20, 0x20), 'SBOM_TOO_LARGE'],
      [
        Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: 'x' })),
        'SBOM_SCHEMA_INVALID',
      ],
      [Buffer.from(JSON.stringify({ hello: 'world' })), 'SBOM_UNKNOWN_FORMAT'],
    ];
    for (const [sbom, code] of cases) {
      const r = await publishForm(server, 'up', 'glibc', { package: other, sbom });
      assert.equal(r.status, 422, `${code}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code);
    }
    assert.equal(await snapshotData(server), before, 'rejected uploads leave nothing behind');
  });

  test('an SBOM attached later replaces the generated one', async () => {
    const pkg = await buildApk({ name: 'sed', version: '4.9-r8', depends: [] });
    assert.equal((await publish(server, 'later', 'glibc', pkg)).status, 201);
    const url = `${server.url}/api/v1/packages/later/glibc/x86_64/sed/4.9-r8/sbom`;
    assert.equal((await fetch(url)).headers.get('x-reef-sbom-source'), 'generated');
    const golden = Buffer.from(JSON.stringify(sampleSpdx('sed', '4.9-r8'), null, 2));
    const put = (token?: string) =>
      fetch(url, {
        method: 'PUT',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: new Uint8Array(golden),
      });
    assert.equal((await put()).status, 401);
    const res = await put(TEST_TOKEN);
    assert.equal(res.status, 200, await res.clone().text());
    const after = await fetch(`${url}?format=original`);
    assert.equal(after.headers.get('x-reef-sbom-source'), 'uploaded');
    assert.ok(Buffer.from(await after.arrayBuffer()).equals(golden));
  });
});

test('a private repository keeps its SBOMs private', async () => {
  const server = await startServer();
  try {
    await makePrivate(server, 'secret');
    assert.equal(
      (await publish(server, 'secret', 'glibc', await buildApk({ name: 'hidden', depends: ['libhidden'] })))
        .status,
      201,
    );
    for (const path of [
      '/secret/glibc/x86_64/hidden-1.0.0-r0.apk.spdx.json',
      '/secret/glibc/x86_64/hidden-1.0.0-r0.apk.cdx.json',
      '/api/v1/packages/secret/glibc/x86_64/hidden/1.0.0-r0/sbom',
      '/api/v1/sbom/export?repo=secret',
    ]) {
      assert.equal((await fetch(server.url + path)).status, 401, path);
      assert.equal(
        (await fetch(server.url + path, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).status,
        200,
        path,
      );
    }
    const anonymous = (await (await fetch(`${server.url}/api/v1/components?name=libhidden`)).json()) as {
      matches: unknown[];
    };
    assert.equal(
      anonymous.matches.length,
      0,
      'components of private repos are hidden from anonymous callers',
    );
    const admitted = (await (
      await fetch(`${server.url}/api/v1/components?name=libhidden`, {
        headers: { authorization: `Bearer ${TEST_TOKEN}` },
      })
    ).json()) as { matches: unknown[] };
    assert.equal(admitted.matches.length, 1);
  } finally {
    await server.close();
    removeDir(server.dataDir);
  }
});

describe('auditor queries over 200 generated packages', () => {
  let server: TestServer;
  const N = 200;
  before(async () => {
    server = await startServer();
    const packages = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        buildApk({
          name: `app${i}`,
          depends: [...(i % 2 === 0 ? ['libfoo'] : []), ...(i % 5 === 0 ? ['libbar'] : [])],
          license: i % 4 === 0 ? 'GPL-2.0-only' : 'MIT',
          files: [{ name: `usr/bin/app${i}`, content: `app ${i}` }],
        }),
      ),
    );
    let next = 0;
    const worker = async () => {
      while (next < packages.length) {
        const i = next++;
        const r = await publish(server, 'many', 'glibc', packages[i]!);
        assert.equal(r.status, 201);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    // A second version of app0 with one file more and libfoo gone.
    const v2 = await buildApk({
      name: 'app0',
      version: '1.1.0-r0',
      depends: ['libbar'],
      license: 'GPL-2.0-only',
      files: [
        { name: 'usr/bin/app0', content: 'app 0 v2' },
        { name: 'usr/share/app0/extra', content: 'new' },
      ],
    });
    assert.equal((await publish(server, 'many', 'glibc', v2)).status, 201);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('components: which packages depend on what', async () => {
    const get = async (q: string) =>
      (
        (await (await fetch(`${server.url}/api/v1/components?${q}`)).json()) as {
          matches: Array<{ package: { name: string; version: string } }>;
        }
      ).matches;
    const foo = await get('name=libfoo&limit=10000');
    assert.equal(new Set(foo.map((m) => `${m.package.name}-${m.package.version}`)).size, N / 2);
    const bar = await get('name=libbar&limit=10000');
    assert.equal(new Set(bar.map((m) => `${m.package.name}-${m.package.version}`)).size, N / 5 + 1);
    const self = await get(`purl=${encodeURIComponent('pkg:apk/many/app7')}`);
    assert.ok(
      self.some((m) => m.package.name === 'app7'),
      'the package itself is found by purl without version',
    );
    const ranged = await get(`name=app0&version=${encodeURIComponent('>=1.1')}`);
    assert.deepEqual([...new Set(ranged.map((m) => m.package.version))], ['1.1.0-r0']);
  });

  test('diff between two versions', async () => {
    const diff = (await (
      await fetch(`${server.url}/api/v1/packages/many/glibc/x86_64/app0/1.1.0-r0/sbom/diff?against=1.0.0-r0`)
    ).json()) as { added: Array<{ name: string }>; removed: Array<{ name: string }>; changed: unknown[] };
    assert.ok(
      diff.added.some((c) => c.name.endsWith('usr/share/app0/extra')),
      JSON.stringify(diff.added),
    );
    assert.ok(
      diff.removed.some((c) => c.name === 'libfoo'),
      JSON.stringify(diff.removed),
    );
    assert.ok(diff.changed.length >= 1, 'the package itself and its binary changed');
  });

  test('export streams one SBOM per package as NDJSON', async () => {
    const res = await fetch(`${server.url}/api/v1/sbom/export?repo=many`);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await res.text()).trim().split('\n');
    assert.equal(lines.length, N + 1);
    const first = JSON.parse(lines[0]!) as { name: string; source: string; sbom: { spdxVersion: string } };
    assert.equal(first.source, 'generated');
    assert.equal(first.sbom.spdxVersion, 'SPDX-2.3');
  });

  test('licences: packages whose declared licence satisfies an expression, or conflicts with it', async () => {
    const get = async (q: string) =>
      (
        (await (await fetch(`${server.url}/api/v1/licenses?${q}`)).json()) as {
          packages: Array<{ name: string; license: string }>;
        }
      ).packages;
    const gpl = await get(`expression=${encodeURIComponent('GPL-2.0-only')}`);
    assert.equal(gpl.length, N / 4 + 1);
    assert.ok(gpl.every((p) => p.license === 'GPL-2.0-only'));
    const conflicts = await get(`expression=${encodeURIComponent('MIT OR Apache-2.0')}&mode=conflicts`);
    assert.equal(conflicts.length, N / 4 + 1);
  });
});
