import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

/**
 * A name and version is one slot per index (design invariant 4): apk's
 * version equality decides what "the same version" is, a noarch build and an
 * arch build share every index they are both listed in, and a deleted
 * version stays reserved to the bytes once served under it.
 */

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.close();
  removeDir(server.dataDir);
});

const auth = { authorization: `Bearer ${TEST_TOKEN}` };
const code = (json: Record<string, unknown>) => json.code;

async function indexNames(repo: string, arch = 'x86_64'): Promise<string[]> {
  const res = await fetch(`${server.url}/${repo}/musl/${arch}/APKINDEX.tar.gz`);
  assert.equal(res.status, 200);
  const index = await readIndex(chunked(Buffer.from(await res.arrayBuffer())));
  return index.records.map((r) => `${r.name}-${r.version} ${r.arch}`).sort();
}

function del(repo: string, arch: string, name: string, version: string) {
  return fetch(`${server.url}/api/v1/repos/${repo}/musl/${arch}/${name}/${version}`, {
    method: 'DELETE',
    headers: auth,
  });
}

describe('noarch and arch builds of one name and version', () => {
  test('an arch build after a noarch one (and the reverse) is a 409, and the index lists the package once', async () => {
    const noarch = await buildApk({ name: 'shared', arch: 'noarch' });
    const amd64 = await buildApk({ name: 'shared', arch: 'x86_64' });
    assert.equal((await publish(server, 'slots1', 'musl', noarch)).status, 201);
    const clash = await publish(server, 'slots1', 'musl', amd64);
    assert.equal(clash.status, 409);
    assert.equal(code(clash.json), 'PUBLISH_VERSION_EXISTS');
    assert.deepEqual(await indexNames('slots1'), ['shared-1.0.0-r0 x86_64']);

    assert.equal((await publish(server, 'slots2', 'musl', amd64)).status, 201);
    const reverse = await publish(server, 'slots2', 'musl', noarch);
    assert.equal(reverse.status, 409);
    assert.equal(code(reverse.json), 'PUBLISH_VERSION_EXISTS');
    assert.deepEqual(await indexNames('slots2'), ['shared-1.0.0-r0 x86_64']);
    // Another arch is another slot: its index never lists the x86_64 build.
    const arm = await publish(server, 'slots2', 'musl', await buildApk({ name: 'shared', arch: 'aarch64' }));
    assert.equal(arm.status, 201);
    assert.deepEqual(await indexNames('slots2', 'aarch64'), ['shared-1.0.0-r0 aarch64']);
  });

  test('racing noarch and arch publishes: exactly one wins', async () => {
    const results = await Promise.all([
      publish(server, 'slots3', 'musl', await buildApk({ name: 'race', arch: 'noarch' })),
      publish(server, 'slots3', 'musl', await buildApk({ name: 'race', arch: 'x86_64' })),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [201, 409]);
    assert.equal((await indexNames('slots3')).length, 1);
  });
});

describe("apk's version equality", () => {
  test('versions apk compares equal are one slot; identical bytes stay idempotent', async () => {
    const first = await buildApk({ name: 'eq', version: '1.0-r0' });
    assert.equal((await publish(server, 'slots4', 'musl', first)).status, 201);
    assert.equal((await publish(server, 'slots4', 'musl', first)).status, 200);
    for (const spelling of ['01.0-r0', '1.0-r00', '001.0-r000']) {
      const res = await publish(server, 'slots4', 'musl', await buildApk({ name: 'eq', version: spelling }));
      assert.equal(res.status, 409, spelling);
      assert.equal(code(res.json), 'PUBLISH_VERSION_EXISTS', spelling);
      assert.equal((res.json.details as { version: string }).version, '1.0-r0');
    }
    // Versions apk orders apart are their own slots (1.0 < 1.0-r0 < 1.00-r0 < 1.0-r1).
    for (const other of ['1.0', '1.00-r0', '1.0-r1']) {
      const res = await publish(server, 'slots4', 'musl', await buildApk({ name: 'eq', version: other }));
      assert.equal(res.status, 201, other);
    }
    assert.deepEqual(await indexNames('slots4'), [
      'eq-1.0 x86_64',
      'eq-1.0-r0 x86_64',
      'eq-1.0-r1 x86_64',
      'eq-1.00-r0 x86_64',
    ]);
  });
});

describe('deleted versions stay reserved to their bytes', () => {
  test('other bytes after a delete are a 409; the identical file comes back; admins list what is reserved', async () => {
    const original = await buildApk({ name: 'undo', description: 'the first build' });
    const other = await buildApk({ name: 'undo', description: 'a different build, same version' });
    assert.equal((await publish(server, 'slots5', 'musl', original)).status, 201);
    assert.equal((await del('slots5', 'x86_64', 'undo', '1.0.0-r0')).status, 204);

    const reuse = await publish(server, 'slots5', 'musl', other);
    assert.equal(reuse.status, 409);
    assert.equal(code(reuse.json), 'PUBLISH_VERSION_DELETED');
    // Spelled otherwise, or as noarch: still the deleted slot.
    for (const bytes of [
      await buildApk({ name: 'undo', version: '01.0.0-r0' }),
      await buildApk({ name: 'undo', arch: 'noarch', description: 'noarch rebuild' }),
    ]) {
      const res = await publish(server, 'slots5', 'musl', bytes);
      assert.equal(res.status, 409);
      assert.equal(code(res.json), 'PUBLISH_VERSION_DELETED');
    }
    const listed = await fetch(`${server.url}/api/v1/repos/slots5/musl/deleted`, { headers: auth });
    assert.equal(listed.status, 200);
    const page = (await listed.json()) as {
      deleted: Array<{ name: string; version: string; arch: string; sha256: string }>;
      next: string | null;
    };
    assert.deepEqual(
      page.deleted.map((d) => [d.name, d.version, d.arch]),
      [['undo', '1.0.0-r0', 'x86_64']],
    );
    assert.equal(page.next, null);
    assert.equal((await fetch(`${server.url}/api/v1/repos/slots5/musl/deleted`)).status, 401);

    // The undo: the same file is welcome back, and served again.
    assert.equal((await publish(server, 'slots5', 'musl', original)).status, 201);
    const served = await fetch(`${server.url}/slots5/musl/x86_64/undo-1.0.0-r0.apk`);
    assert.deepEqual(Buffer.from(await served.arrayBuffer()), original);
    // Deleted again, then other bytes: still refused.
    assert.equal((await del('slots5', 'x86_64', 'undo', '1.0.0-r0')).status, 204);
    assert.equal(code((await publish(server, 'slots5', 'musl', other)).json), 'PUBLISH_VERSION_DELETED');
  });

  test('the reserved list pages', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await publish(server, 'slots6', 'musl', await buildApk({ name: `p${i}` }))).status, 201);
      assert.equal((await del('slots6', 'x86_64', `p${i}`, '1.0.0-r0')).status, 204);
    }
    const seen: string[] = [];
    let after = '';
    for (let pages = 0; pages < 5; pages++) {
      const res = await fetch(`${server.url}/api/v1/repos/slots6/musl/deleted?limit=2${after}`, {
        headers: auth,
      });
      const page = (await res.json()) as { deleted: Array<{ name: string }>; next: string | null };
      seen.push(...page.deleted.map((d) => d.name));
      if (!page.next) break;
      after = `&after=${encodeURIComponent(page.next)}`;
    }
    assert.deepEqual(seen, ['p0', 'p1', 'p2']);
  });
});

describe('a noarch package under an arch path', () => {
  test('the package API and the SBOM resolve it; delete names the noarch path', async () => {
    assert.equal(
      (await publish(server, 'slots7', 'musl', await buildApk({ name: 'docs', arch: 'noarch' }))).status,
      201,
    );
    const meta = await fetch(`${server.url}/api/v1/packages/slots7/musl/x86_64/docs/1.0.0-r0`);
    assert.equal(meta.status, 200);
    assert.equal(((await meta.json()) as { arch: string }).arch, 'noarch');
    const sbom = await fetch(`${server.url}/api/v1/packages/slots7/musl/x86_64/docs/1.0.0-r0/sbom`);
    assert.equal(sbom.status, 200);
    const diff = await fetch(
      `${server.url}/api/v1/packages/slots7/musl/x86_64/docs/1.0.0-r0/sbom/diff?against=1.0.0-r0`,
    );
    assert.equal(diff.status, 200);

    const wrongPath = await del('slots7', 'x86_64', 'docs', '1.0.0-r0');
    assert.equal(wrongPath.status, 404);
    const body = (await wrongPath.json()) as { code: string; message: string };
    assert.equal(body.code, 'PACKAGE_NOT_FOUND');
    assert.match(body.message, /\/api\/v1\/repos\/slots7\/musl\/noarch\/docs\/1\.0\.0-r0/);
    assert.equal((await del('slots7', 'noarch', 'docs', '1.0.0-r0')).status, 204);
  });
});
