import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isAppError } from '../../src/errors.ts';
import { SbomParser } from '../../src/repo/sbom-parser.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-sbom-parser-'));
const parser = new SbomParser();
after(async () => {
  await parser.close();
  rmSync(dir, { recursive: true, force: true });
});

function spdxFor(name: string, files = 0): Record<string, unknown> {
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name,
    documentNamespace: `https://example.org/spdxdocs/${name}`,
    creationInfo: { created: '2024-01-01T00:00:00Z', creators: ['Tool: reef-test'] },
    packages: [{ SPDXID: 'SPDXRef-Package', name, versionInfo: '1.0-r0', downloadLocation: 'NOASSERTION' }],
    files: Array.from({ length: files }, (_, i) => ({
      SPDXID: `SPDXRef-File-${i}`,
      fileName: `/usr/share/${name}/${i}`,
      checksums: [{ algorithm: 'SHA1', checksumValue: '0'.repeat(40) }],
    })),
    documentDescribes: ['SPDXRef-Package'],
  };
}

let n = 0;
function fileOf(bytes: string | Buffer): string {
  const path = join(dir, `doc-${n++}.json`);
  writeFileSync(path, bytes);
  return path;
}

test('a document is parsed in the worker: what the caller keeps, not the tree', async () => {
  const parsed = await parser.parse(fileOf(JSON.stringify(spdxFor('hello', 3))));
  assert.equal(parsed.format, 'spdx');
  assert.equal(parsed.specVersion, '2.3');
  assert.deepEqual(parsed.describes, [{ name: 'hello', version: '1.0-r0' }]);
  assert.deepEqual(
    parsed.components.map((c) => c.name),
    ['hello', '/usr/share/hello/0', '/usr/share/hello/1', '/usr/share/hello/2'],
  );
  assert.ok(!('document' in parsed));
});

test("the worker's refusals keep their codes and details", async () => {
  const cases: Array<[string | Buffer, string]> = [
    ['{"spdxVersion": ', 'SBOM_INVALID_JSON'],
    [Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), 'SBOM_INVALID_JSON'],
    ['{"spdxVersion": "SPDX-3.0"}', 'SBOM_UNKNOWN_FORMAT'],
    [`${'['.repeat(100)}${']'.repeat(100)}`, 'SBOM_SCHEMA_INVALID'],
    [Buffer.alloc(16 * 2 ** 20 + 1, 0x20), 'SBOM_TOO_LARGE'],
  ];
  for (const [bytes, code] of cases) {
    await assert.rejects(parser.parse(fileOf(bytes)), (err) => isAppError(err) && err.code === code, code);
  }
  const bad = spdxFor('bad');
  (bad.packages as Array<Record<string, unknown>>)[0]!.SPDXID = 'not an id';
  await assert.rejects(
    parser.parse(fileOf(JSON.stringify(bad))),
    (err) =>
      isAppError(err) && err.code === 'SBOM_SCHEMA_INVALID' && err.details?.path === '/packages/0/SPDXID',
  );
});

test('documents sent at once are all answered, each with its own result', async () => {
  const names = Array.from({ length: 12 }, (_, i) => `pkg${i}`);
  const results = await Promise.allSettled(
    names.map((name, i) => parser.parse(fileOf(i % 3 === 2 ? '{' : JSON.stringify(spdxFor(name, 200 * i))))),
  );
  for (const [i, r] of results.entries()) {
    if (i % 3 === 2) assert.equal(r.status, 'rejected');
    else {
      assert.equal(r.status, 'fulfilled');
      assert.equal(r.value.describes[0]!.name, names[i]);
      assert.equal(r.value.components.length, 1 + 200 * i);
    }
  }
  assert.equal(parser.pending, 0);
});

test('a parser thread that has died is replaced by the next document', async () => {
  await parser.parse(fileOf(JSON.stringify(spdxFor('first'))));
  const worker = (parser as unknown as { worker?: { terminate(): Promise<number> } }).worker;
  assert.ok(worker);
  await worker.terminate();
  const parsed = await parser.parse(fileOf(JSON.stringify(spdxFor('second'))));
  assert.equal(parsed.describes[0]!.name, 'second');
});
