import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  officialCycloneDxValidator,
  officialSpdxValidator,
  schemaErrors,
} from '../helpers/official-schemas.ts';
import {
  publish,
  publishForm,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { needsSharedFixtures, realFixturesDir } from '../helpers/shared-fixtures.ts';
import { sampleCycloneDx, sampleSpdx } from '../sbom/sbom-fixtures.ts';

/**
 * Every SPDX and CycloneDX document reef serves passes the official SPDX 2.3
 * and CycloneDX 1.6 JSON schemas (the shared corpus, not reef's own schema
 * code): generated, sent, converted, and the SBOMs melange embedded in real
 * Wolfi packages, which do not conform as they are and are served
 * normalized, their original kept byte for byte at `….apk.sbom.original.json`.
 */

type Doc = Record<string, unknown> & {
  SPDXID?: string;
  documentNamespace?: string;
  creationInfo?: { created: string; creators: string[] };
  relationships?: Array<{ spdxElementId: string; relatedSpdxElement: string }>;
};

const UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const SBOM_DIR = 'var/lib/db/sbom/';

/** The real packages (melange, go-apk, apko fixtures) that embed an SBOM, and its bytes read with tar. */
function embeddedFixtures(): Array<{ path: string; sbom: Buffer }> {
  const root = realFixturesDir();
  const found: Array<{ path: string; sbom: Buffer }> = [];
  for (const dir of ['melange', 'go-apk', 'apko']) {
    for (const file of readdirSync(join(root, dir)).filter((f) => f.endsWith('.apk'))) {
      const path = join(root, dir, file);
      const names = execFileSync('tar', ['--warning=no-unknown-keyword', '-tzf', path], { encoding: 'utf8' })
        .split('\n')
        .filter((n) => n.startsWith(SBOM_DIR) && n.endsWith('.spdx.json'));
      if (names.length !== 1) continue;
      found.push({
        path,
        sbom: execFileSync('tar', ['--warning=no-unknown-keyword', '-xzOf', path, names[0]!]),
      });
    }
  }
  return found;
}

describe('served SBOMs pass the official SPDX 2.3 and CycloneDX 1.6 schemas', needsSharedFixtures, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  /** GETs a package's .spdx.json and .cdx.json and checks both against the official schemas. */
  const servedConforming = async (base: string) => {
    const validateSpdx = officialSpdxValidator();
    const validateCdx = officialCycloneDxValidator();
    const spdxRes = await fetch(`${base}.spdx.json`);
    assert.equal(spdxRes.status, 200, base);
    assert.equal(spdxRes.headers.get('content-type'), 'application/spdx+json');
    const spdx = (await spdxRes.json()) as Doc;
    assert.ok(validateSpdx(spdx), `${base}.spdx.json: ${schemaErrors(validateSpdx)}`);
    // What the schema leaves to the specification text: §6.3 and §6.9.
    assert.equal(spdx.SPDXID, 'SPDXRef-DOCUMENT');
    assert.match(spdx.creationInfo!.created, UTC);
    const cdxRes = await fetch(`${base}.cdx.json`);
    assert.equal(cdxRes.status, 200, base);
    const cdx = (await cdxRes.json()) as Doc;
    assert.ok(validateCdx(cdx), `${base}.cdx.json: ${schemaErrors(validateCdx)}`);
    return { spdx, cdx };
  };

  const original = async (base: string) => {
    const res = await fetch(`${base}.sbom.original.json`);
    assert.equal(res.status, 200, base);
    assert.match(res.headers.get('cache-control') ?? '', /immutable/);
    return { bytes: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type') };
  };

  test('melange SBOMs embedded in real packages: served normalized, each its own namespace; the original byte for byte', async () => {
    const fixtures = embeddedFixtures();
    assert.ok(fixtures.length >= 10, `${fixtures.length} real packages with an embedded SBOM`);
    const namespaces = new Map<string, string>();
    let nonConforming = 0;
    for (const { path, sbom } of fixtures) {
      const bytes = readFileSync(path);
      let libc = 'glibc';
      let r = await publish(server, 'emb', libc, bytes);
      if (r.json.code === 'PUBLISH_LIBC_MISMATCH') {
        libc = 'musl';
        r = await publish(server, 'emb', libc, bytes);
      }
      assert.equal(r.status, 201, `${path}: ${JSON.stringify(r.json)}`);
      const { name, version, arch } = r.json as { name: string; version: string; arch: string };
      const base = `${server.url}/emb/${libc}/${arch}/${name}-${version}.apk`;

      const embedded = JSON.parse(sbom.toString('utf8')) as Doc;
      if (!officialSpdxValidator()(embedded) || embedded.SPDXID !== 'SPDXRef-DOCUMENT') nonConforming++;

      const { spdx } = await servedConforming(base);
      // The old document id is gone from the relationships too.
      for (const rel of spdx.relationships ?? []) {
        assert.ok(!/^SPDXRef-DOCUMENT-/.test(rel.spdxElementId), `${name}: ${rel.spdxElementId}`);
        assert.ok(!/^SPDXRef-DOCUMENT-/.test(rel.relatedSpdxElement), `${name}: ${rel.relatedSpdxElement}`);
      }
      const seen = namespaces.get(spdx.documentNamespace!);
      assert.equal(seen, undefined, `${name}-${version} and ${seen} share ${spdx.documentNamespace}`);
      namespaces.set(spdx.documentNamespace!, `${name}-${version}`);
      assert.notEqual(spdx.documentNamespace, embedded.documentNamespace);
      assert.ok(spdx.creationInfo!.creators.includes('Tool: reef'));

      const kept = await original(base);
      assert.ok(
        kept.bytes.equals(sbom),
        `${name}-${version}: the original is the embedded file byte for byte`,
      );
      assert.equal(kept.contentType, 'application/spdx+json');
      const api = await fetch(
        `${server.url}/api/v1/packages/emb/${libc}/${arch}/${name}/${version}/sbom?format=original`,
      );
      assert.ok(Buffer.from(await api.arrayBuffer()).equals(sbom));

      // Served bytes are a function of what is stored: the same on every request.
      const again = await fetch(`${base}.spdx.json`);
      assert.equal(again.headers.get('etag'), (await fetch(`${base}.spdx.json`)).headers.get('etag'));
    }
    assert.ok(nonConforming >= 10, `the corpus holds non-conforming documents (${nonConforming})`);
  });

  test('a generated SBOM conforms; its original is itself', async () => {
    const apk = await buildApk({ name: 'gen', depends: ['so:libc.so.6'], license: 'MIT AND custom' });
    assert.equal((await publish(server, 'gen', 'glibc', apk)).status, 201);
    const base = `${server.url}/gen/glibc/x86_64/gen-1.0.0-r0.apk`;
    await servedConforming(base);
    const spdx = Buffer.from(await (await fetch(`${base}.spdx.json`)).arrayBuffer());
    assert.ok((await original(base)).bytes.equals(spdx));
  });

  test('a sent SPDX document is served normalized when it needs to be; a sent CycloneDX one as sent', async () => {
    // sampleSpdx spells OPERATING-SYSTEM as the SPDX 2.3 text does; the official schema wants OPERATING_SYSTEM.
    const sent = Buffer.from(JSON.stringify(sampleSpdx('crane', '0.20.2-r1'), null, 2));
    const crane = await buildApk({ name: 'crane', version: '0.20.2-r1', depends: [] });
    const r = await publishForm(server, 'up', 'glibc', { package: crane, sbom: sent });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const base = `${server.url}/up/glibc/x86_64/crane-0.20.2-r1.apk`;
    const { spdx } = await servedConforming(base);
    assert.ok((await original(base)).bytes.equals(sent));
    assert.notEqual(spdx.documentNamespace, (sampleSpdx('crane', '0.20.2-r1') as Doc).documentNamespace);

    // A conforming document is served as sent, namespace and all.
    const conforming = JSON.parse(sent.toString()) as { packages: Array<Record<string, unknown>> };
    for (const p of conforming.packages)
      if (p.primaryPackagePurpose === 'OPERATING-SYSTEM') p.primaryPackagePurpose = 'OPERATING_SYSTEM';
    const asIs = Buffer.from(JSON.stringify(conforming, null, 2));
    const sed = await buildApk({ name: 'crane', version: '0.20.2-r2', depends: [] });
    const asIsDoc = JSON.parse(asIs.toString()) as Doc & { name: string; documentDescribes: string[] };
    const renamed = Buffer.from(asIs.toString().replaceAll('0.20.2-r1', '0.20.2-r2'));
    assert.equal(
      (await publishForm(server, 'up', 'glibc', { package: sed, sbom: renamed })).status,
      201,
      asIsDoc.name,
    );
    const served = Buffer.from(
      await (await fetch(`${server.url}/up/glibc/x86_64/crane-0.20.2-r2.apk.spdx.json`)).arrayBuffer(),
    );
    assert.ok(served.equals(renamed));

    // CycloneDX sent: .cdx.json is the document as sent, .spdx.json its conversion.
    const cdxDoc = { ...sampleCycloneDx(), specVersion: '1.6' };
    const cdx = Buffer.from(JSON.stringify(cdxDoc, null, 2));
    const myapp = await buildApk({ name: 'myapp', version: '2.0.1-r3', depends: [] });
    assert.equal((await publishForm(server, 'up', 'glibc', { package: myapp, sbom: cdx })).status, 201);
    const cdxBase = `${server.url}/up/glibc/x86_64/myapp-2.0.1-r3.apk`;
    await servedConforming(cdxBase);
    const kept = await original(cdxBase);
    assert.ok(kept.bytes.equals(cdx));
    assert.equal(kept.contentType, 'application/vnd.cyclonedx+json');
  });

  test('a sent SBOM with an invalid licence expression or document SPDXID is refused with a code that says so', async () => {
    const pkg = await buildApk({ name: 'crane', version: '1.0-r0', depends: [] });
    const spdx = () => sampleSpdx('crane', '1.0-r0') as Doc & { packages: Array<Record<string, unknown>> };
    const badLicense = spdx();
    badLicense.packages[1]!.licenseDeclared = 'Apache 2.0';
    const badList = spdx();
    badList.packages[1]!.licenseInfoFromFiles = ['MIT', 'GPLv2+'];
    const badId = spdx();
    badId.SPDXID = 'SPDXRef-DOCUMENT-apk-crane-1.0-r0';
    const badCdx = sampleCycloneDx() as { metadata: { component: Record<string, unknown> } };
    badCdx.metadata.component.name = 'crane';
    badCdx.metadata.component.version = '1.0-r0';
    badCdx.metadata.component.licenses = [{ expression: 'MIT or whatever' }];
    const cases: Array<[unknown, string, Record<string, unknown>]> = [
      [badLicense, 'SBOM_INVALID_LICENSE', { path: '/packages/1/licenseDeclared', expression: 'Apache 2.0' }],
      [badList, 'SBOM_INVALID_LICENSE', { path: '/packages/1/licenseInfoFromFiles/1', expression: 'GPLv2+' }],
      [badId, 'SBOM_INVALID_SPDXID', { spdxId: 'SPDXRef-DOCUMENT-apk-crane-1.0-r0' }],
      [badCdx, 'SBOM_INVALID_LICENSE', { expression: 'MIT or whatever' }],
    ];
    for (const [doc, code, details] of cases) {
      const sbom = Buffer.from(JSON.stringify(doc));
      const r = await publishForm(server, 'refuse', 'glibc', { package: pkg, sbom });
      assert.equal(r.status, 422, `${code}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code);
      for (const [k, v] of Object.entries(details)) {
        assert.equal(
          (r.json.details as Record<string, unknown>)?.[k],
          v,
          `${code} ${k}: ${JSON.stringify(r.json)}`,
        );
      }
    }
    // The same through PUT …/sbom on a published package.
    assert.equal((await publish(server, 'refuse', 'glibc', pkg)).status, 201);
    for (const [doc, code] of cases) {
      const res = await fetch(`${server.url}/api/v1/packages/refuse/glibc/x86_64/crane/1.0-r0/sbom`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(doc),
      });
      assert.equal(res.status, 422);
      assert.equal(((await res.json()) as { code: string }).code, code);
    }
  });
});
