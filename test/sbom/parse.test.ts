import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isAppError } from '../../src/errors.ts';
import { checkDescribes, parseSbom } from '../../src/sbom/parse.ts';
import type { ParsedSbom } from '../../src/sbom/types.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';
import { FIXTURES, fixtureSboms, sampleCycloneDx, sampleSpdx, sha } from './sbom-fixtures.ts';

type SpdxJson = {
  SPDXID: string;
  documentDescribes?: string[];
  packages: Array<{
    SPDXID: string;
    name: string;
    versionInfo?: string;
    licenseDeclared?: string;
    externalRefs?: Array<{ referenceType: string; referenceLocator: string }>;
    checksums?: Array<{ algorithm: string; checksumValue: string }>;
  }>;
  files?: Array<{ fileName: string; checksums: Array<{ algorithm: string; checksumValue: string }> }>;
  relationships?: Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
};

const bytesOf = (doc: unknown) => Buffer.from(JSON.stringify(doc));
const rejects = (bytes: Buffer, code: string) =>
  assert.throws(
    () => parseSbom(bytes),
    (err) => isAppError(err) && err.code === code,
    code,
  );
/** A melange-shaped SBOM describing crane 0.20.2-r1. */
const crane = () => Buffer.from(JSON.stringify(sampleSpdx('crane', '0.20.2-r1'), null, 2));

describe('parseSbom on the real SBOMs', needsSharedFixtures, () => {
  test('the fixtures hold the goldens and the embedded SBOMs the issue names', async () => {
    const sboms = await fixtureSboms();
    const files = sboms.map((s) => s.file);
    assert.equal(sboms.filter((s) => s.source === 'golden').length, 3);
    assert.ok(sboms.filter((s) => s.source === 'embedded').length >= 15, files.join(' '));
    for (const wanted of [
      'melange/linter__kubeflow-pipelines-2.1.3-r7.apk',
      'go-apk/apk__replaces__replaces-0.0.1-r0.apk',
      'apko/cli__packages__x86_64__custom-ca-certs-2-1.0.0-r0.apk',
    ]) {
      assert.ok(files.includes(wanted), wanted);
    }
  });

  test('an embedded SBOM is the file GNU tar extracts from var/lib/db/sbom/ (melange pkg/build/sbom/)', async () => {
    for (const s of (await fixtureSboms()).filter((x) => x.source === 'embedded')) {
      const { name, version } = s.apk!.pkginfo;
      const extracted = execFileSync('tar', [
        '--warning=no-unknown-keyword',
        '-xzOf',
        join(FIXTURES, s.file),
        `var/lib/db/sbom/${name}-${version}.spdx.json`,
      ]);
      assert.ok(extracted.equals(s.bytes), s.file);
    }
  });

  test('every golden and embedded SBOM parses as SPDX, with its packages and files as components', async () => {
    for (const s of await fixtureSboms()) {
      const parsed = parseSbom(s.bytes);
      const raw = JSON.parse(s.bytes.toString('utf8')) as SpdxJson;
      assert.equal(parsed.format, 'spdx', s.file);
      assert.equal(parsed.specVersion, '2.3', s.file);
      assert.deepEqual(parsed.document, raw, s.file);
      // Independent expectations, read straight from the JSON.
      const expected = [
        ...raw.packages.map((p) => ({
          name: p.name,
          version: p.versionInfo,
          purl: p.externalRefs?.find((r) => r.referenceType === 'purl')?.referenceLocator,
          checksums: (p.checksums ?? []).map((c) => `${c.algorithm}:${c.checksumValue.toLowerCase()}`),
        })),
        ...(raw.files ?? []).map((f) => ({
          name: f.fileName,
          version: undefined,
          purl: undefined,
          checksums: f.checksums.map((c) => `${c.algorithm}:${c.checksumValue.toLowerCase()}`),
        })),
      ];
      assert.deepEqual(
        parsed.components.map((c) => ({
          name: c.name,
          version: c.version,
          purl: c.purl,
          checksums: c.checksums.map((x) => `${x.algorithm}:${x.value}`),
        })),
        expected,
        s.file,
      );
      assert.equal(parsed.relationships.length, raw.relationships?.length ?? 0, s.file);
    }
  });

  test('an embedded SBOM describes the package that carries it (name and version from its .PKGINFO)', async () => {
    for (const s of (await fixtureSboms()).filter((x) => x.source === 'embedded')) {
      const parsed = parseSbom(s.bytes);
      const { name, version } = s.apk!.pkginfo;
      assert.ok(
        parsed.describes.some((d) => d.name === name && d.version === version),
        `${s.file}: ${JSON.stringify(parsed.describes)}`,
      );
      checkDescribes(parsed, { name, version });
    }
  });

  test('the golden crane SBOM: crane 0.20.2-r1 with its purl, licence and sources', () => {
    const golden = readFileSync(
      join(FIXTURES, 'melange/build__goldenfiles__sboms__crane-0.20.2-r1.spdx.json'),
    );
    const parsed = parseSbom(golden);
    assert.deepEqual(parsed.describes, [{ name: 'crane', version: '0.20.2-r1' }]);
    const main = parsed.components.find((c) => c.name === 'crane')!;
    assert.equal(main.purl, 'pkg:apk/wolfi/crane@0.20.2-r1?arch=x86_64&distro=wolfi');
    assert.equal(main.license, 'Apache-2.0');
    assert.equal(main.supplier, 'Wolfi');
    const source = parsed.components.find((c) => c.name === 'go-containerregistry')!;
    assert.equal(source.version, 'v0.20.2');
    assert.equal(source.purl, 'pkg:github/google/go-containerregistry@v0.20.2');
    assert.ok(
      parsed.relationships.some(
        (r) => r.from === 'SPDXRef-Package-apk-crane-0.20.2-r1' && r.type === 'DESCRIBED_BY',
      ),
    );
  });

  test('an SBOM that says what it describes only by relationships (perl-json) and files with SHA1s (hello-wolfi)', async () => {
    const sboms = await fixtureSboms();
    const perl = parseSbom(sboms.find((s) => s.file.endsWith('perl-json-4.11-r0.apk'))!.bytes);
    assert.deepEqual(
      perl.describes.map((d) => `${d.name} ${d.version}`),
      ['perl-json 4.11-r0', 'perl-json 4.11-r0'],
    );
    const hello = parseSbom(sboms.find((s) => s.file === 'go-apk/apk__hello-wolfi-2.12.1-r0.apk')!.bytes);
    const binary = hello.components.find((c) => c.name === '/usr/bin/hello')!;
    assert.deepEqual(
      binary.checksums.map((c) => c.algorithm),
      ['SHA1', 'SHA256', 'SHA512'],
    );
    assert.equal(hello.relationships.filter((r) => r.type === 'CONTAINS').length, 46);
  });
});

describe('parseSbom on CycloneDX', () => {
  test('a syft-like 1.5 document: describes, nested components, licences, hashes and the graph', () => {
    const parsed = parseSbom(bytesOf(sampleCycloneDx()));
    assert.equal(parsed.format, 'cyclonedx');
    assert.equal(parsed.specVersion, '1.5');
    assert.deepEqual(parsed.describes, [{ name: 'myapp', version: '2.0.1-r3' }]);
    assert.deepEqual(
      parsed.components.map((c) => c.name),
      ['myapp', 'left-pad', 'index.js', 'org.apache.commons/commons-lang3'],
    );
    const [app, leftPad, index, commons] = parsed.components;
    assert.equal(app!.license, 'MIT AND LicenseRef-Acme-Proprietary');
    assert.equal(app!.supplier, 'Acme');
    assert.deepEqual(app!.checksums, [{ algorithm: 'SHA256', value: sha('sha256', 'myapp') }]);
    assert.equal(leftPad!.license, 'MIT OR Apache-2.0');
    assert.deepEqual(
      leftPad!.checksums.map((c) => c.algorithm),
      ['SHA1', 'SHA512'],
    );
    assert.equal(index!.checksums[0]!.value, sha('sha1', 'index.js'));
    assert.equal(commons!.supplier, 'The Apache Software Foundation');
    assert.equal(commons!.purl, 'pkg:maven/org.apache.commons/commons-lang3@3.12.0');
    assert.deepEqual(parsed.relationships, [
      { from: 'pkg:npm/left-pad@1.3.0', type: 'CONTAINS', to: 'file-index' },
      { from: 'app', type: 'DEPENDS_ON', to: 'pkg:npm/left-pad@1.3.0' },
      { from: 'app', type: 'DEPENDS_ON', to: 'maven-commons' },
    ]);
  });

  test('1.6 is read too, and a document failing the official schema names where', () => {
    const doc = { ...sampleCycloneDx(), specVersion: '1.6' };
    assert.equal(parseSbom(bytesOf(doc)).specVersion, '1.6');
    const bad = sampleCycloneDx() as { components: Array<Record<string, unknown>> };
    bad.components[0]!.type = 'gadget';
    assert.throws(
      () => parseSbom(bytesOf(bad)),
      (err) =>
        isAppError(err, 'SBOM_SCHEMA_INVALID') &&
        err.details?.path === '/components/0/type' &&
        /CycloneDX 1\.5/.test(err.message),
    );
    const badHash = sampleCycloneDx() as { components: Array<Record<string, unknown>> };
    badHash.components[0]!.hashes = [{ alg: 'SHA-1', content: 'not hex' }];
    rejects(bytesOf(badHash), 'SBOM_SCHEMA_INVALID');
  });
});

describe('parseSbom refuses hostile and broken input', () => {
  test('malformed JSON, and bytes that are not UTF-8', () => {
    rejects(Buffer.from('{"spdxVersion": "SPDX-2.3", '), 'SBOM_INVALID_JSON');
    rejects(Buffer.from('{nope'), 'SBOM_INVALID_JSON');
    rejects(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 'SBOM_INVALID_JSON');
  });

  test('20 MiB is refused by size, before any parsing', () => {
    rejects(Buffer.alloc(20 * 2 ** 20, 0x20), 'SBOM_TOO_LARGE');
    // Valid JSON over the limit is refused too: the size decides, not the content.
    const big = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', pad: 'x'.repeat(20 * 2 ** 20) }));
    rejects(big, 'SBOM_TOO_LARGE');
    assert.throws(
      () => parseSbom(crane(), { maxBytes: 100, maxDepth: 64 }),
      (err) => isAppError(err, 'SBOM_TOO_LARGE'),
    );
  });

  test('10,000 levels of nesting are refused without a stack overflow, and a million quickly', () => {
    const nested = (n: number) =>
      Buffer.from(`{"spdxVersion":"SPDX-2.3","x":${'['.repeat(n)}${']'.repeat(n)}}`);
    rejects(nested(10_000), 'SBOM_SCHEMA_INVALID');
    const t = Date.now();
    rejects(nested(1_000_000), 'SBOM_SCHEMA_INVALID');
    assert.ok(Date.now() - t < 1000, 'the depth scan runs before JSON.parse');
    // Objects count as much as arrays; brackets inside strings do not count at all.
    rejects(Buffer.from(`${'{"a":'.repeat(65)}1${'}'.repeat(65)}`), 'SBOM_SCHEMA_INVALID');
    const doc = JSON.parse(crane().toString('utf8')) as { name: string };
    doc.name = `${'['.repeat(100)}"\\"{{{${'{'.repeat(100)}`;
    assert.equal(parseSbom(bytesOf(doc)).format, 'spdx');
  });

  test('SPDX without creationInfo, or with a dangling or duplicate id, fails its schema', () => {
    const doc = JSON.parse(crane().toString('utf8')) as Record<string, unknown> & SpdxJson;
    const { creationInfo: _, ...noCreationInfo } = doc;
    assert.throws(
      () => parseSbom(bytesOf(noCreationInfo)),
      (err) => isAppError(err, 'SBOM_SCHEMA_INVALID') && /creationInfo/.test(err.message),
    );
    rejects(
      bytesOf({
        ...doc,
        relationships: [
          ...doc.relationships!,
          {
            spdxElementId: 'SPDXRef-Package-apk-crane-0.20.2-r1',
            relationshipType: 'DEPENDS_ON',
            relatedSpdxElement: 'SPDXRef-nowhere',
          },
        ],
      }),
      'SBOM_SCHEMA_INVALID',
    );
    rejects(bytesOf({ ...doc, packages: [...doc.packages, doc.packages[1]] }), 'SBOM_SCHEMA_INVALID');
    rejects(
      bytesOf({ spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: 'x' }),
      'SBOM_SCHEMA_INVALID',
    );
  });

  test('unknown formats and versions', () => {
    rejects(bytesOf({ hello: 'world' }), 'SBOM_UNKNOWN_FORMAT');
    rejects(Buffer.from('[]'), 'SBOM_UNKNOWN_FORMAT');
    rejects(Buffer.from('"SPDX-2.3"'), 'SBOM_UNKNOWN_FORMAT');
    const doc = JSON.parse(crane().toString('utf8')) as Record<string, unknown>;
    rejects(bytesOf({ ...doc, spdxVersion: 'SPDX-2.1' }), 'SBOM_UNKNOWN_FORMAT');
    rejects(bytesOf({ ...sampleCycloneDx(), specVersion: '1.4' }), 'SBOM_UNKNOWN_FORMAT');
    rejects(
      bytesOf({ '@context': 'https://spdx.org/rdf/3.0.1/spdx-context.jsonld', '@graph': [] }),
      'SBOM_UNKNOWN_FORMAT',
    );
  });

  test('SPDX 2.2 and a leading byte order mark are accepted', () => {
    const doc = JSON.parse(crane().toString('utf8')) as Record<string, unknown>;
    assert.equal(parseSbom(bytesOf({ ...doc, spdxVersion: 'SPDX-2.2' })).specVersion, '2.2');
    assert.equal(parseSbom(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), crane()])).format, 'spdx');
  });
});

describe('checkDescribes', () => {
  const parsed = (describes: ParsedSbom['describes']): ParsedSbom => ({
    format: 'spdx',
    specVersion: '2.3',
    document: {},
    describes,
    components: [],
    relationships: [],
  });

  test('accepts the full version, or the upstream version when the SBOM has no -rN', () => {
    checkDescribes(parseSbom(crane()), { name: 'crane', version: '0.20.2-r1' });
    checkDescribes(parsed([{ name: 'crane', version: '0.20.2' }]), { name: 'crane', version: '0.20.2-r1' });
    checkDescribes(parsed([{ name: 'crane', version: undefined }]), { name: 'crane', version: '0.20.2-r1' });
  });

  test('refuses another name, another version or another -rN, naming what the SBOM describes', () => {
    const sbom = parseSbom(crane());
    for (const pkg of [
      { name: 'crane', version: '0.20.3-r0' },
      { name: 'crane', version: '0.20.2-r2' },
      { name: 'other', version: '0.20.2-r1' },
    ]) {
      assert.throws(
        () => checkDescribes(sbom, pkg),
        (err) => isAppError(err, 'SBOM_WRONG_PACKAGE') && /describes crane 0\.20\.2-r1/.test(err.message),
        JSON.stringify(pkg),
      );
    }
    assert.throws(
      () => checkDescribes(parsed([]), { name: 'crane', version: '1-r0' }),
      (err) => isAppError(err, 'SBOM_WRONG_PACKAGE'),
    );
  });
});
