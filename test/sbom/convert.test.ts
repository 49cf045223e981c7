import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cycloneDxToSpdx, spdxToCycloneDx, uuidV5 } from '../../src/sbom/convert.ts';
import { generateSpdx } from '../../src/sbom/generate.ts';
import { parseSbom } from '../../src/sbom/parse.ts';
import type { ParsedSbom, SbomComponent } from '../../src/sbom/types.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';
import {
  fixturePackages,
  fixtureSboms,
  officialCycloneDxValidator,
  sampleCycloneDx,
  spdxInputOf,
} from './sbom-fixtures.ts';

const validateCdx16 = officialCycloneDxValidator('1.6');
const reparse = (doc: Record<string, unknown>) => parseSbom(Buffer.from(JSON.stringify(doc)));

/** What must survive a conversion: names, versions, purls, licences, checksums. */
const essence = (components: SbomComponent[], keep: (algorithm: string) => boolean = () => true) =>
  components
    .map((c) =>
      JSON.stringify([
        c.name,
        c.version ?? null,
        c.purl ?? null,
        c.license ?? null,
        c.checksums
          .filter((x) => keep(x.algorithm))
          .map((x) => `${x.algorithm}:${x.value}`)
          .sort(),
      ]),
    )
    .sort();

const describes = (p: ParsedSbom) => p.describes.map((d) => `${d.name}@${d.version}`);

/** Relationships by the names of their ends, so ids may change. */
function namedRelationships(p: ParsedSbom, nameOf: (id: string) => string, skip: (type: string) => boolean) {
  return p.relationships
    .filter((r) => !skip(r.type))
    .map((r) => `${nameOf(r.from)} ${r.type} ${nameOf(r.to)}`)
    .sort();
}

function spdxNames(doc: Record<string, unknown>): (id: string) => string {
  const names = new Map<string, string>();
  for (const p of (doc.packages as Array<{ SPDXID: string; name: string; versionInfo?: string }>) ?? []) {
    names.set(p.SPDXID, `${p.name}@${p.versionInfo ?? ''}`);
  }
  for (const f of (doc.files as Array<{ SPDXID: string; fileName: string }>) ?? [])
    names.set(f.SPDXID, f.fileName);
  return (id) => names.get(id) ?? (/^SPDXRef-DOCUMENT/.test(id) ? 'DOCUMENT' : id);
}

/** The SPDX documents the tests name: every golden and embedded SBOM, plus reef-generated ones. */
async function spdxDocuments(): Promise<Array<[string, Buffer]>> {
  const out: Array<[string, Buffer]> = (await fixtureSboms()).map((s) => [s.file, s.bytes]);
  for (const { file, apk } of await fixturePackages()) {
    if (apk.sbom) continue;
    const doc = generateSpdx(
      spdxInputOf(apk, { created: new Date(0), namespaceBase: 'https://reef.example/spdxdocs' }),
    );
    out.push([`generated from ${file}`, Buffer.from(JSON.stringify(doc))]);
  }
  return out;
}

describe('SPDX → CycloneDX 1.6 → SPDX on the real SBOMs', needsSharedFixtures, () => {
  test('every document converts to CycloneDX 1.6 that passes the official schema, keeping components and graph', async () => {
    const docs = await spdxDocuments();
    assert.ok(docs.length >= 25, String(docs.length));
    for (const [name, bytes] of docs) {
      const spdx = parseSbom(bytes);
      const cdx = spdxToCycloneDx(spdx.document);
      assert.ok(validateCdx16(cdx), `${name}: ${JSON.stringify(validateCdx16.errors?.slice(0, 3))}`);
      const parsed = reparse(cdx);
      assert.equal(parsed.format, 'cyclonedx');
      assert.deepEqual(describes(parsed), describes(spdx).slice(0, 1), name);
      // CycloneDX cannot name SHA224, MD2, MD4, MD6 or ADLER32; everything else is a field.
      const inCdx = (alg: string) => !['SHA224', 'MD2', 'MD4', 'MD6', 'ADLER32'].includes(alg);
      assert.deepEqual(essence(parsed.components), essence(spdx.components, inCdx), name);
      // Every relationship not from the document itself, by the names at its ends.
      const before = namedRelationships(spdx, spdxNames(spdx.document), () => false).filter(
        (r) => !r.startsWith('DOCUMENT '),
      );
      const after = namedRelationships(parsed, spdxNames(spdx.document), () => false);
      assert.deepEqual(after, before, name);
    }
  });

  test('and back to SPDX keeping names, versions, purls, licences, checksums, relationships and describes', async () => {
    for (const [name, bytes] of await spdxDocuments()) {
      const spdx = parseSbom(bytes);
      const back = reparse(cycloneDxToSpdx(reparse(spdxToCycloneDx(spdx.document)).document));
      assert.equal(back.format, 'spdx');
      assert.deepEqual(essence(back.components), essence(spdx.components), name);
      assert.deepEqual(describes(back), describes(spdx), name);
      // DESCRIBES may be restated as a relationship where the original only listed documentDescribes.
      const skip = (type: string) => type === 'DESCRIBES';
      assert.deepEqual(
        namedRelationships(back, spdxNames(back.document), skip),
        namedRelationships(spdx, spdxNames(spdx.document), skip),
        name,
      );
      // SPDX ids, external references and the extracted licences travel too.
      const ids = (p: ParsedSbom) =>
        ((p.document.packages as Array<{ SPDXID: string }>) ?? []).map((x) => x.SPDXID).sort();
      assert.deepEqual(ids(back), ids(spdx), name);
      const refs = (p: ParsedSbom) =>
        ((p.document.packages as Array<{ externalRefs?: Array<Record<string, string>> }>) ?? [])
          .flatMap((x) => x.externalRefs ?? [])
          .map((r) => `${r.referenceCategory?.replace('_', '-')} ${r.referenceType} ${r.referenceLocator}`)
          .sort();
      assert.deepEqual(refs(back), refs(spdx), name);
      assert.deepEqual(
        back.document.hasExtractedLicensingInfos ?? [],
        spdx.document.hasExtractedLicensingInfos ?? [],
        name,
      );
    }
  });

  test('a melange SBOM: the build recipe and sources keep their purpose, supplier and purls', async () => {
    const crane = (await fixtureSboms()).find((s) => s.file.includes('crane'))!;
    const cdx = spdxToCycloneDx(parseSbom(crane.bytes).document) as {
      metadata: { timestamp: string; component: Record<string, unknown> };
      components: Array<Record<string, unknown>>;
    };
    assert.equal(cdx.metadata.timestamp, '0001-01-01T00:00:00Z');
    assert.equal(cdx.metadata.component.name, 'crane');
    assert.equal(cdx.metadata.component.type, 'application');
    assert.deepEqual(cdx.metadata.component.licenses, [
      { expression: 'Apache-2.0', acknowledgement: 'declared' },
    ]);
    assert.equal(cdx.metadata.component.cpe, undefined);
    const os = cdx.components.find((c) => c.name === 'wolfi')!;
    assert.equal(os.type, 'operating-system');
    assert.deepEqual(os.supplier, { name: 'Wolfi' });
    assert.deepEqual(os.manufacturer, { name: 'Wolfi' });
    const source = cdx.components.find((c) => c.name === 'go-containerregistry')!;
    assert.ok(
      (source.properties as Array<{ name: string; value: string }>).some(
        (p) => p.name === 'spdx:primaryPackagePurpose' && p.value === 'SOURCE',
      ),
    );
    const back = cycloneDxToSpdx(cdx) as { packages: Array<Record<string, unknown>> };
    assert.equal(
      back.packages.find((p) => p.name === 'go-containerregistry')!.primaryPackagePurpose,
      'SOURCE',
    );
    assert.equal(back.packages.find((p) => p.name === 'wolfi')!.primaryPackagePurpose, 'OPERATING_SYSTEM');
  });

  test('conversions are deterministic, with a name-based serial number', async () => {
    const [, bytes] = (await spdxDocuments())[0]!;
    const doc = parseSbom(bytes).document;
    const a = spdxToCycloneDx(doc);
    assert.equal(JSON.stringify(a), JSON.stringify(spdxToCycloneDx(doc)));
    assert.match(
      String(a.serialNumber),
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.equal(JSON.stringify(cycloneDxToSpdx(a)), JSON.stringify(cycloneDxToSpdx(a)));
    assert.notEqual(uuidV5('a'), uuidV5('b'));
  });
});

describe('CycloneDX → SPDX 2.3 for uploaded documents', () => {
  test('a syft-like 1.5 document keeps components, licences, hashes, nesting and dependencies', () => {
    const cdx = parseSbom(Buffer.from(JSON.stringify(sampleCycloneDx())));
    const spdx = cycloneDxToSpdx(cdx.document, { namespaceBase: 'https://reef.example/spdxdocs/' }) as {
      documentNamespace: string;
      creationInfo: { created: string; creators: string[] };
      packages: Array<Record<string, unknown>>;
      files: Array<Record<string, unknown>>;
      hasExtractedLicensingInfos: unknown[];
    };
    const back = reparse(spdx);
    assert.deepEqual(essence(back.components), essence(cdx.components));
    assert.deepEqual(describes(back), ['myapp@2.0.1-r3']);
    assert.match(spdx.documentNamespace, /^https:\/\/reef\.example\/spdxdocs\/[0-9a-f-]{36}$/);
    assert.equal(spdx.creationInfo.created, '2024-05-01T12:30:00Z');
    assert.deepEqual(spdx.creationInfo.creators, ['Tool: reef', 'Tool: syft-1.4.1']);
    const app = spdx.packages.find((p) => p.name === 'myapp')!;
    assert.equal(app.licenseDeclared, 'MIT AND LicenseRef-Acme-Proprietary');
    assert.equal(app.supplier, 'Organization: Acme');
    assert.deepEqual(spdx.hasExtractedLicensingInfos, [
      {
        licenseId: 'LicenseRef-Acme-Proprietary',
        extractedText: 'Acme Proprietary',
        name: 'Acme Proprietary',
      },
    ]);
    const commons = spdx.packages.find((p) => p.name === 'org.apache.commons/commons-lang3')!;
    assert.equal(commons.originator, 'Person: The Apache Software Foundation');
    assert.equal(commons.homepage, 'https://commons.apache.org/lang/');
    assert.deepEqual(commons.externalRefs, [
      {
        referenceCategory: 'PACKAGE-MANAGER',
        referenceType: 'purl',
        referenceLocator: 'pkg:maven/org.apache.commons/commons-lang3@3.12.0',
      },
      {
        referenceCategory: 'SECURITY',
        referenceType: 'cpe23Type',
        referenceLocator: 'cpe:2.3:a:apache:commons_lang:3.12.0:*:*:*:*:*:*:*',
      },
    ]);
    // The nested file is an SPDX file, contained by its parent, which therefore had its files analysed.
    assert.deepEqual(
      spdx.files.map((f) => f.fileName),
      ['index.js'],
    );
    const leftPad = spdx.packages.find((p) => p.name === 'left-pad')!;
    assert.equal(leftPad.filesAnalyzed, true);
    const names = spdxNames(spdx);
    assert.deepEqual(
      back.relationships.map((r) => `${names(r.from)} ${r.type} ${names(r.to)}`),
      [
        'DOCUMENT DESCRIBES myapp@2.0.1-r3',
        'left-pad@1.3.0 CONTAINS index.js',
        'myapp@2.0.1-r3 DEPENDS_ON left-pad@1.3.0',
        'myapp@2.0.1-r3 DEPENDS_ON org.apache.commons/commons-lang3@3.12.0',
      ],
    );
    // And forward again: the official 1.6 schema holds.
    assert.ok(validateCdx16(spdxToCycloneDx(spdx)), JSON.stringify(validateCdx16.errors?.slice(0, 3)));
  });

  test('a component without bom-ref, a duplicate bom-ref and a licence expression that is not SPDX', () => {
    const doc = sampleCycloneDx() as { components: Array<Record<string, unknown>> };
    doc.components.push({ type: 'library', name: 'anonymous', version: '1' });
    // The same bom-ref twice (the schema cannot forbid it): the first one counts.
    doc.components.push({ ...doc.components[1]!, version: '3.12.1' });
    doc.components.push({
      type: 'library',
      'bom-ref': 'odd',
      name: 'odd',
      licenses: [{ expression: 'GPL v2 or whatever' }],
    });
    const spdx = cycloneDxToSpdx(parseSbom(Buffer.from(JSON.stringify(doc))).document) as {
      packages: Array<Record<string, unknown>>;
    };
    const back = reparse(spdx);
    assert.deepEqual(
      spdx.packages.filter((p) => p.name === 'org.apache.commons/commons-lang3').map((p) => p.versionInfo),
      ['3.12.0'],
    );
    assert.ok(spdx.packages.some((p) => p.name === 'anonymous'));
    assert.equal(
      spdx.packages.find((p) => p.name === 'odd')!.licenseDeclared,
      'LicenseRef-GPL-v2-or-whatever',
    );
    assert.equal(back.format, 'spdx');
  });
});
