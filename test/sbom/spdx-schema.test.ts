import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { CHECKSUM_ALGORITHMS, RELATIONSHIP_TYPES, SPDX_23_SCHEMA } from '../../src/sbom/spdx-schema.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';
import { fixtureSboms, sampleSpdx } from './sbom-fixtures.ts';

/** reef's SPDX 2.3 transcription, compiled on its own: each rule the spec states, one case each. */
const ajv = new Ajv({ strict: false });
addFormats.default(ajv);
const validate = ajv.compile(SPDX_23_SCHEMA);

type Doc = Record<string, unknown> & {
  creationInfo: Record<string, unknown>;
  packages: Array<Record<string, unknown>>;
  relationships: Array<Record<string, unknown>>;
};

const base = () => sampleSpdx('sed', '4.9-r8') as Doc;
const file = (extra: Record<string, unknown> = {}) => ({
  SPDXID: 'SPDXRef-File-1',
  fileName: './usr/bin/sed',
  checksums: [{ algorithm: 'SHA1', checksumValue: 'da39a3ee5e6b4b0d3255bfef95601890afd80709' }],
  ...extra,
});

function fails(mutate: (d: Doc) => void, path: RegExp): void {
  const doc = base();
  mutate(doc);
  assert.equal(validate(doc), false, `expected a failure at ${path}`);
  assert.match(validate.errors?.[0]?.instancePath ?? '', path, JSON.stringify(validate.errors?.[0]));
}

describe('SPDX_23_SCHEMA', () => {
  test('every golden and embedded SBOM passes', needsSharedFixtures, async () => {
    for (const s of await fixtureSboms()) {
      assert.ok(
        validate(JSON.parse(s.bytes.toString('utf8'))),
        `${s.file}: ${JSON.stringify(validate.errors)}`,
      );
    }
  });

  test('§6: version, data licence, document id, namespace, creation info', () => {
    fails((d) => (d.spdxVersion = 'SPDX-2.1'), /^\/spdxVersion$/);
    fails((d) => (d.dataLicense = 'MIT'), /^\/dataLicense$/);
    fails((d) => (d.SPDXID = 'SPDXRef-doc'), /^\/SPDXID$/);
    fails((d) => delete d.documentNamespace, /^$/);
    fails((d) => (d.documentNamespace = 'not a uri'), /^\/documentNamespace$/);
    fails((d) => (d.documentNamespace = 'https://example.org/doc#frag'), /^\/documentNamespace$/);
    fails((d) => delete (d as Record<string, unknown>).creationInfo, /^$/);
    fails((d) => (d.creationInfo.created = 'yesterday'), /^\/creationInfo\/created$/);
    fails((d) => (d.creationInfo.creators = []), /^\/creationInfo\/creators$/);
    fails((d) => (d.creationInfo.creators = ['melange']), /^\/creationInfo\/creators\/0$/);
    fails((d) => (d.unknownField = true), /^$/);
  });

  test('§7: package id, name and download location; checksums, references, purpose', () => {
    fails((d) => (d.packages[0]!.SPDXID = 'SPDXRef-has space'), /^\/packages\/0\/SPDXID$/);
    fails((d) => delete d.packages[0]!.name, /^\/packages\/0$/);
    fails((d) => delete d.packages[0]!.downloadLocation, /^\/packages\/0$/);
    fails((d) => (d.packages[0]!.filesAnalyzed = 'yes'), /^\/packages\/0\/filesAnalyzed$/);
    fails(
      (d) => (d.packages[0]!.checksums = [{ algorithm: 'SHA-256', checksumValue: 'ab' }]),
      /^\/packages\/0\/checksums\/0\/algorithm$/,
    );
    fails(
      (d) => (d.packages[0]!.checksums = [{ algorithm: 'SHA256', checksumValue: 'xyz' }]),
      /^\/packages\/0\/checksums\/0\/checksumValue$/,
    );
    fails(
      (d) =>
        (d.packages[0]!.externalRefs = [
          { referenceCategory: 'PACKAGE', referenceType: 'purl', referenceLocator: 'pkg:apk/x/y' },
        ]),
      /^\/packages\/0\/externalRefs\/0\/referenceCategory$/,
    );
    fails((d) => (d.packages[0]!.primaryPackagePurpose = 'GAME'), /^\/packages\/0\/primaryPackagePurpose$/);
    fails((d) => (d.packages[0]!.homePage = 'https://x'), /^\/packages\/0$/);
    fails((d) => {
      d.packages[0]!.filesAnalyzed = false;
      d.packages[0]!.packageVerificationCode = { packageVerificationCodeValue: 'a'.repeat(40) };
    }, /^\/packages\/0$/);
  });

  test('§8: a file needs a SHA1 among its checksums', () => {
    fails((d) => (d.files = [file({ checksums: [] })]), /^\/files\/0\/checksums$/);
    fails(
      (d) => (d.files = [file({ checksums: [{ algorithm: 'SHA256', checksumValue: 'ab' }] })]),
      /^\/files\/0\/checksums$/,
    );
    fails((d) => (d.files = [{ SPDXID: 'SPDXRef-File-1', checksums: file().checksums }]), /^\/files\/0$/);
    const ok = base();
    ok.files = [file({ fileTypes: ['BINARY'] })];
    assert.ok(validate(ok), JSON.stringify(validate.errors));
  });

  test('§10, §11: extracted licences and relationships', () => {
    fails(
      (d) => (d.hasExtractedLicensingInfos = [{ licenseId: 'Acme', extractedText: 'x' }]),
      /^\/hasExtractedLicensingInfos\/0\/licenseId$/,
    );
    fails(
      (d) => (d.hasExtractedLicensingInfos = [{ licenseId: 'LicenseRef-Acme' }]),
      /^\/hasExtractedLicensingInfos\/0$/,
    );
    fails((d) => (d.relationships[0]!.relationshipType = 'USES'), /^\/relationships\/0\/relationshipType$/);
    fails(
      (d) => (d.relationships[0]!.relatedSpdxElement = 'sed'),
      /^\/relationships\/0\/relatedSpdxElement$/,
    );
    const ok = base();
    ok.relationships.push(
      {
        spdxElementId: 'SPDXRef-OperatingSystem',
        relationshipType: 'DEPENDS_ON',
        relatedSpdxElement: 'NONE',
      },
      {
        spdxElementId: 'SPDXRef-OperatingSystem',
        relationshipType: 'OTHER',
        relatedSpdxElement: 'DocumentRef-other:SPDXRef-Package-x',
        comment: 'an element of another document',
      },
    );
    assert.ok(validate(ok), JSON.stringify(validate.errors));
  });

  test('the enumerations are SPDX 2.3’s', () => {
    assert.equal(RELATIONSHIP_TYPES.length, 45);
    assert.equal(new Set(RELATIONSHIP_TYPES).size, 45);
    assert.equal(CHECKSUM_ALGORITHMS.length, 17);
  });
});
