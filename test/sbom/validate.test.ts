import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isAppError } from '../../src/errors.ts';
import { validateCycloneDx, validateSpdx } from '../../src/sbom/validate.ts';
import { sampleCycloneDx, sampleSpdx } from './sbom-fixtures.ts';

type Doc = Record<string, unknown> & {
  documentDescribes: string[];
  packages: Array<Record<string, unknown>>;
  relationships: Array<Record<string, unknown>>;
};

const crane = () => sampleSpdx('crane', '0.20.2-r1') as Doc;

function invalidAt(doc: Record<string, unknown>, path: string): void {
  assert.throws(
    () => validateSpdx(doc),
    (err) => isAppError(err, 'SBOM_SCHEMA_INVALID') && err.details?.path === path,
    path,
  );
}

describe('validateSpdx: what a schema cannot say', () => {
  test('SPDXIDs are unique across packages, files and the document', () => {
    const doc = crane();
    doc.packages.push({ ...doc.packages[0]! });
    invalidAt(doc, '/packages/4/SPDXID');
    const file = crane();
    file.files = [
      {
        SPDXID: 'SPDXRef-DOCUMENT',
        fileName: 'x',
        checksums: [{ algorithm: 'SHA1', checksumValue: 'da39a3ee5e6b4b0d3255bfef95601890afd80709' }],
      },
    ];
    invalidAt(file, '/files/0/SPDXID');
  });

  test('references resolve: documentDescribes, hasFiles, relationships (NONE, NOASSERTION and other documents aside)', () => {
    const describes = crane();
    describes.documentDescribes = ['SPDXRef-Package-gone'];
    invalidAt(describes, '/documentDescribes/0');
    const hasFiles = crane();
    hasFiles.packages[1]!.filesAnalyzed = true;
    hasFiles.packages[1]!.hasFiles = ['SPDXRef-Package-apk-crane-0.20.2-r1'];
    invalidAt(hasFiles, '/packages/1/hasFiles/0');
    const from = crane();
    from.relationships.push({
      spdxElementId: 'SPDXRef-gone',
      relationshipType: 'CONTAINS',
      relatedSpdxElement: 'SPDXRef-OperatingSystem',
    });
    invalidAt(from, '/relationships/2/spdxElementId');
    const to = crane();
    to.relationships[0]!.relatedSpdxElement = 'SPDXRef-gone';
    invalidAt(to, '/relationships/0/relatedSpdxElement');
    const fine = crane();
    fine.relationships.push(
      {
        spdxElementId: 'SPDXRef-OperatingSystem',
        relationshipType: 'DEPENDS_ON',
        relatedSpdxElement: 'NOASSERTION',
      },
      {
        spdxElementId: 'SPDXRef-OperatingSystem',
        relationshipType: 'DESCENDANT_OF',
        relatedSpdxElement: 'DocumentRef-wolfi:SPDXRef-OperatingSystem',
      },
    );
    validateSpdx(fine);
  });

  test('schema errors name the path and the offending property', () => {
    const doc = crane();
    doc.packages[0]!.colour = 'blue';
    assert.throws(
      () => validateSpdx(doc),
      (err) =>
        isAppError(err, 'SBOM_SCHEMA_INVALID') &&
        err.details?.path === '/packages/0' &&
        /'colour'/.test(err.message) &&
        /SPDX 2\.3/.test(err.message),
    );
  });
});

describe('validateCycloneDx', () => {
  test('the official 1.5 and 1.6 schemas, including the formats ajv-formats lacks', () => {
    validateCycloneDx(sampleCycloneDx(), '1.5');
    validateCycloneDx({ ...sampleCycloneDx(), specVersion: '1.6' }, '1.6');
    const badUrl = sampleCycloneDx() as { components: Array<Record<string, unknown>> };
    badUrl.components[1]!.externalReferences = [{ type: 'website', url: 'https://exa mple.org/' }];
    assert.throws(
      () => validateCycloneDx(badUrl, '1.5'),
      (err) =>
        isAppError(err, 'SBOM_SCHEMA_INVALID') &&
        err.details?.path === '/components/1/externalReferences/0/url',
    );
    assert.throws(
      () => validateCycloneDx({ ...sampleCycloneDx(), serialNumber: 'urn:uuid:nope' }, '1.5'),
      (err) => isAppError(err, 'SBOM_SCHEMA_INVALID') && err.details?.path === '/serialNumber',
    );
  });
});
