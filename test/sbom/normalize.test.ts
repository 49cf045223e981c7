import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeSpdx } from '../../src/sbom/normalize.ts';
import { parseSbomDocument } from '../../src/sbom/parse.ts';
import { officialSpdxValidator, schemaErrors } from '../helpers/official-schemas.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';
import { sampleSpdx } from './sbom-fixtures.ts';

type Doc = Record<string, unknown> & {
  SPDXID: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[]; comment?: string };
  packages: Array<Record<string, unknown> & { externalRefs?: Array<Record<string, unknown>> }>;
  relationships: Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
  hasExtractedLicensingInfos?: Array<{ licenseId: string; extractedText: string }>;
};

const NAMESPACE = 'https://reef.invalid/spdxdocs/normalized/main/glibc/crane-0.20.2-r1-00';

/** sampleSpdx as melange wrote it in 2023: its document id, underscores, a UTC offset, an abuild licence. */
function melange2023(): Doc {
  const doc = sampleSpdx('crane', '0.20.2-r1') as Doc;
  doc.SPDXID = 'SPDXRef-DOCUMENT-apk-crane-0.20.2-r1';
  doc.relationships.push({
    spdxElementId: doc.SPDXID,
    relationshipType: 'DESCRIBES',
    relatedSpdxElement: 'SPDXRef-Package-apk-crane-0.20.2-r1',
  });
  doc.creationInfo.created = '1969-12-31T19:00:00-05:00';
  const main = doc.packages[1]!;
  main.externalRefs![0]!.referenceCategory = 'PACKAGE_MANAGER';
  main.licenseDeclared = 'GPL2+';
  doc.packages[2]!.licenseDeclared = 'MIT AND LicenseRef-undefined';
  return doc;
}

describe('normalizeSpdx', () => {
  test('a melange document becomes SPDX 2.3 that reef and the official schema accept', () => {
    const doc = melange2023();
    const changes = normalizeSpdx(doc, { namespace: NAMESPACE, replaceNamespace: true });
    assert.equal(changes.length, 6, changes.join('\n'));

    assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT');
    assert.deepEqual(
      doc.relationships.filter((r) => r.relationshipType === 'DESCRIBES').map((r) => r.spdxElementId),
      ['SPDXRef-DOCUMENT'],
    );
    assert.equal(doc.packages[1]!.externalRefs![0]!.referenceCategory, 'PACKAGE-MANAGER');
    assert.equal(doc.packages[0]!.primaryPackagePurpose, 'OPERATING_SYSTEM');
    assert.equal(doc.creationInfo.created, '1970-01-01T00:00:00Z');
    assert.equal(doc.documentNamespace, NAMESPACE);
    assert.ok(doc.creationInfo.creators.includes('Tool: reef'));
    assert.match(doc.creationInfo.comment!, /SPDXRef-DOCUMENT-apk-crane-0\.20\.2-r1/);
    // The abuild licence is a LicenseRef carrying its text; a LicenseRef used but never defined is defined.
    assert.equal(doc.packages[1]!.licenseDeclared, 'LicenseRef-GPL2');
    const defined = new Map(doc.hasExtractedLicensingInfos!.map((e) => [e.licenseId, e.extractedText]));
    assert.equal(defined.get('LicenseRef-GPL2'), 'GPL2+');
    assert.ok(defined.has('LicenseRef-undefined'));

    parseSbomDocument(doc);
  });

  test('the official schema accepts the result', needsSharedFixtures, () => {
    const doc = melange2023();
    const validate = officialSpdxValidator();
    assert.equal(validate(structuredClone(doc)), false, 'the melange document fails it as it is');
    normalizeSpdx(doc, { namespace: NAMESPACE, replaceNamespace: true });
    assert.ok(validate(doc), schemaErrors(validate));
  });

  test('a conforming document is left alone, unless its namespace is to be replaced', () => {
    const conforming = sampleSpdx('crane', '0.20.2-r1') as Doc;
    conforming.packages[0]!.primaryPackagePurpose = 'OPERATING_SYSTEM';
    const doc = structuredClone(conforming);
    assert.deepEqual(normalizeSpdx(doc, { namespace: NAMESPACE, replaceNamespace: false }), []);
    assert.deepEqual(doc, conforming);

    const changes = normalizeSpdx(doc, { namespace: NAMESPACE, replaceNamespace: true });
    assert.equal(changes.length, 1);
    assert.equal(doc.documentNamespace, NAMESPACE);
    assert.deepEqual(doc.packages, conforming.packages);
  });
});
