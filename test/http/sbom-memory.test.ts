import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_SBOM_BYTES } from '../../src/sbom/limits.ts';
import { buildApk, gzipMember } from '../helpers/apk-builder.ts';
import {
  publish,
  publishForm,
  removeDir,
  snapshotData,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';

/**
 * What SBOMs cost the server while packages arrive: the one size limit, the
 * budget of embedded SBOM bytes held across uploads at once, and documents
 * parsed off the event loop. Behaviour only: codes, headers, nothing left.
 */

/** A valid SPDX document about name-version, padded with JSON whitespace to `size` bytes. */
function spdxOf(name: string, version: string, size = 0): Buffer {
  const text = JSON.stringify({
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `apk-${name}-${version}`,
    documentNamespace: `https://example.org/spdxdocs/${name}-${version}`,
    creationInfo: { created: '2024-01-01T00:00:00Z', creators: ['Tool: reef-test'] },
    packages: [{ SPDXID: 'SPDXRef-Package', name, versionInfo: version, downloadLocation: 'NOASSERTION' }],
    documentDescribes: ['SPDXRef-Package'],
  });
  return Buffer.concat([Buffer.from(text), Buffer.alloc(Math.max(0, size - text.length), 0x20)]);
}

/**
 * A package of `count` one-line files, each with the SHA-1 pax record abuild
 * writes (so the generated SBOM lists it). The tar is written here, header by
 * header: buildApk's tar-stream takes minutes for 100,000 entries on a busy
 * machine, this takes about a second.
 */
function manyFilesApk(name: string, count: number): Buffer {
  const blocks: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(`${i}\n`);
    const record = ` APK-TOOLS.checksum.SHA1=${createHash('sha1').update(body).digest('hex')}\n`;
    const pax = Buffer.from(`${record.length + 2}${record}`);
    blocks.push(tarHeader('PaxHeader', pax.length, 'x'), pax, pad(pax.length));
    const path = `usr/share/many/${String(i).padStart(6, '0')}.txt`;
    blocks.push(tarHeader(path, body.length, '0'), body, pad(body.length));
  }
  blocks.push(Buffer.alloc(1024));
  const data = gzipMember(Buffer.concat(blocks), 1);
  const pkginfo = Buffer.from(
    [
      `pkgname = ${name}`,
      'pkgver = 1.0.0-r0',
      'pkgdesc = many files',
      'url = https://example.org/',
      'builddate = 1700000000',
      `size = ${count}`,
      'arch = x86_64',
      'license = MIT',
      `datahash = ${createHash('sha256').update(data).digest('hex')}`,
      '',
    ].join('\n'),
  );
  const control = Buffer.concat([tarHeader('.PKGINFO', pkginfo.length, '0'), pkginfo, pad(pkginfo.length)]);
  return Buffer.concat([gzipMember(control), data]);
}

/** A ustar header (POSIX.1-1988): name, mode 0644, uid/gid 0, size, a fixed mtime, type. */
function tarHeader(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${(1_700_000_000).toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

describe('SBOM memory while packages arrive', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });
  const tempFiles = () => readdirSync(join(server.dataDir, 'tmp'));

  test('an embedded SBOM is accepted up to the limit a sent one has, and refused at its header past it', async () => {
    const atLimit = await buildApk({
      name: 'at-limit',
      depends: [],
      sbom: spdxOf('at-limit', '1.0.0-r0', MAX_SBOM_BYTES),
    });
    const ok = await publish(server, 'mem', 'glibc', atLimit);
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
    // As stored: .spdx.json is the document normalized (src/sbom/normalize.ts).
    const api = await fetch(
      `${server.url}/api/v1/packages/mem/glibc/x86_64/at-limit/1.0.0-r0/sbom?format=original`,
    );
    assert.equal(api.headers.get('x-reef-sbom-source'), 'embedded');
    assert.equal(Number(api.headers.get('content-length')), MAX_SBOM_BYTES);
    await api.arrayBuffer();

    const before = await snapshotData(server);
    const over = await buildApk({
      name: 'over',
      depends: [],
      sbom: spdxOf('over', '1.0.0-r0', MAX_SBOM_BYTES + 1),
    });
    const refused = await publish(server, 'mem', 'glibc', over);
    assert.equal(refused.status, 413);
    assert.equal(refused.json.code, 'APK_SBOM_TOO_LARGE');
    assert.equal(await snapshotData(server), before);
    assert.deepEqual(tempFiles(), []);
    assert.equal(server.services.sbomMemory.inUse, 0);
  });

  test('an upload that finds the SBOM budget spent gets 503 SBOM_BUSY with Retry-After, and a retry succeeds', async () => {
    const apk = await buildApk({ name: 'busy', depends: [], sbom: spdxOf('busy', '1.0.0-r0') });
    const others = server.services.sbomMemory.hold();
    others.take(server.services.sbomMemory.capacity);
    const before = await snapshotData(server);
    const res = await fetch(`${server.url}/api/v1/repos/mem/glibc/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(apk),
    });
    const body = (await res.json()) as { code: string };
    assert.equal(res.status, 503);
    assert.equal(body.code, 'SBOM_BUSY');
    assert.ok(Number(res.headers.get('retry-after')) > 0);
    assert.equal(await snapshotData(server), before);
    assert.deepEqual(tempFiles(), []);
    assert.equal(server.services.sbomMemory.inUse, server.services.sbomMemory.capacity);

    others.release();
    const retried = await publish(server, 'mem', 'glibc', apk);
    assert.equal(retried.status, 201, JSON.stringify(retried.json));
    assert.equal(server.services.sbomMemory.inUse, 0);
  });

  test('the budget and temp blobs are given back on every refusal', async () => {
    const wrong = await buildApk({
      name: 'wrong',
      depends: [],
      sbom: spdxOf('someone-else', '1.0.0-r0', 4096),
    });
    const res = await publish(server, 'mem', 'glibc', wrong);
    assert.equal(res.status, 422);
    assert.equal(res.json.code, 'SBOM_WRONG_PACKAGE');
    const libc = await buildApk({ name: 'libc', sbom: spdxOf('libc', '1.0.0-r0', 4096) });
    assert.equal((await publish(server, 'mem', 'glibc', libc)).json.code, 'PUBLISH_LIBC_MISMATCH');
    const sent = await publishForm(server, 'mem', 'glibc', {
      sbom: Buffer.from('{"spdxVersion": '),
      package: await buildApk({ name: 'sent', depends: [] }),
    });
    assert.equal(sent.json.code, 'SBOM_INVALID_JSON');
    const large = await publishForm(server, 'mem', 'glibc', {
      sbom: spdxOf('large', '1.0.0-r0', MAX_SBOM_BYTES + 1),
      package: await buildApk({ name: 'large', depends: [] }),
    });
    assert.equal(large.json.code, 'SBOM_TOO_LARGE');
    assert.deepEqual(tempFiles(), []);
    assert.equal(server.services.sbomMemory.inUse, 0);
  });

  test('sixteen SBOMs sent at once are each parsed and stored with their package', async () => {
    const names = Array.from({ length: 16 }, (_, i) => `many${i}`);
    const results = await Promise.all(
      names.map(async (name) =>
        publishForm(server, 'mem', 'glibc', {
          sbom: spdxOf(name, '1.0.0-r0', 256 * 1024),
          package: await buildApk({ name, depends: [] }),
        }),
      ),
    );
    for (const r of results) assert.equal(r.status, 201, JSON.stringify(r.json));
    for (const name of names) {
      const res = await fetch(`${server.url}/api/v1/packages/mem/glibc/x86_64/${name}/1.0.0-r0/sbom`);
      assert.equal(res.headers.get('x-reef-sbom-source'), 'uploaded');
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(spdxOf(name, '1.0.0-r0', 256 * 1024)));
    }
    assert.deepEqual(tempFiles(), []);
  });

  test('an SBOM attached later is streamed to disk: refused ones leave nothing, a good one replaces the old', async () => {
    const apk = await buildApk({ name: 'later', depends: [] });
    assert.equal((await publish(server, 'mem', 'glibc', apk)).status, 201);
    const url = `${server.url}/api/v1/packages/mem/glibc/x86_64/later/1.0.0-r0/sbom`;
    const put = (body: Uint8Array | ReadableStream, extra: Record<string, string> = {}) =>
      fetch(url, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json', ...extra },
        body,
        duplex: 'half',
      } as RequestInit);
    const before = await snapshotData(server);
    // Without a length up front (chunked), the limit is found while the body streams in.
    const tooLarge = new ReadableStream({
      start(controller) {
        for (let i = 0; i <= 16; i++) controller.enqueue(new Uint8Array(2 ** 20).fill(0x20));
        controller.close();
      },
    });
    const cases: Array<[Uint8Array | ReadableStream, string]> = [
      [tooLarge, 'SBOM_TOO_LARGE'],
      [new Uint8Array(spdxOf('later', '1.0.0-r0', MAX_SBOM_BYTES + 1)), 'SBOM_TOO_LARGE'],
      [new Uint8Array(0), 'SBOM_INVALID_JSON'],
      [new Uint8Array(Buffer.from('{"spdxVersion": ')), 'SBOM_INVALID_JSON'],
      [new Uint8Array(spdxOf('other', '1.0.0-r0')), 'SBOM_WRONG_PACKAGE'],
    ];
    for (const [body, code] of cases) {
      const res = await put(body);
      assert.equal(res.status, 422, code);
      assert.equal(((await res.json()) as { code: string }).code, code);
    }
    const missing = await fetch(url.replace('/1.0.0-r0/', '/9.9.9-r0/'), {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: new Uint8Array(spdxOf('later', '9.9.9-r0')),
    });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, 'PACKAGE_NOT_FOUND');
    assert.equal(await snapshotData(server), before);
    assert.deepEqual(tempFiles(), []);

    const doc = spdxOf('later', '1.0.0-r0', 100_000);
    const ok = await put(new Uint8Array(doc));
    assert.equal(ok.status, 200, await ok.clone().text());
    const served = await fetch(url);
    assert.equal(served.headers.get('x-reef-sbom-source'), 'uploaded');
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(doc));
    assert.deepEqual(tempFiles(), []);
  });

  test('a package of 100,000 files gets its generated SBOM, larger than the limit on sent ones', async () => {
    const count = 100_000;
    const res = await publish(server, 'mem', 'glibc', manyFilesApk('many-files', count));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const served = await fetch(`${server.url}/api/v1/packages/mem/glibc/x86_64/many-files/1.0.0-r0/sbom`);
    assert.equal(served.status, 200);
    assert.equal(served.headers.get('x-reef-sbom-source'), 'generated');
    const text = await served.text();
    assert.ok(Buffer.byteLength(text) > MAX_SBOM_BYTES, String(Buffer.byteLength(text)));
    const doc = JSON.parse(text) as { files: Array<{ fileName: string }> };
    assert.equal(doc.files.length, count);
    assert.equal(doc.files.at(-1)!.fileName, './usr/share/many/099999.txt');
    assert.deepEqual(tempFiles(), []);
  });
});
