/**
 * The parts of SPDX 2.3 (spec clauses 6-11) that reef checks, written as a
 * draft-07 JSON Schema. This is reef's transcription of the specification, not
 * the official spdx-schema.json, which no package reachable here ships; its
 * closed objects list the same property names as the official 2.3 schema.
 */
const ref = (name: string) => ({ $ref: `#/definitions/${name}` });

const CHECKSUM_ALGORITHMS = [
  'SHA1',
  'SHA224',
  'SHA256',
  'SHA384',
  'SHA512',
  'SHA3-256',
  'SHA3-384',
  'SHA3-512',
  'BLAKE2b-256',
  'BLAKE2b-384',
  'BLAKE2b-512',
  'BLAKE3',
  'MD2',
  'MD4',
  'MD5',
  'MD6',
  'ADLER32',
];

export const RELATIONSHIP_TYPES = [
  'DESCRIBES',
  'DESCRIBED_BY',
  'CONTAINS',
  'CONTAINED_BY',
  'DEPENDS_ON',
  'DEPENDENCY_OF',
  'DEPENDENCY_MANIFEST_OF',
  'BUILD_DEPENDENCY_OF',
  'DEV_DEPENDENCY_OF',
  'OPTIONAL_DEPENDENCY_OF',
  'PROVIDED_DEPENDENCY_OF',
  'TEST_DEPENDENCY_OF',
  'RUNTIME_DEPENDENCY_OF',
  'EXAMPLE_OF',
  'GENERATES',
  'GENERATED_FROM',
  'ANCESTOR_OF',
  'DESCENDANT_OF',
  'VARIANT_OF',
  'DISTRIBUTION_ARTIFACT',
  'PATCH_FOR',
  'PATCH_APPLIED',
  'COPY_OF',
  'FILE_ADDED',
  'FILE_DELETED',
  'FILE_MODIFIED',
  'EXPANDED_FROM_ARCHIVE',
  'DYNAMIC_LINK',
  'STATIC_LINK',
  'DATA_FILE_OF',
  'TEST_CASE_OF',
  'BUILD_TOOL_OF',
  'DEV_TOOL_OF',
  'TEST_OF',
  'TEST_TOOL_OF',
  'DOCUMENTATION_OF',
  'OPTIONAL_COMPONENT_OF',
  'METAFILE_OF',
  'PACKAGE_OF',
  'AMENDS',
  'PREREQUISITE_FOR',
  'HAS_PREREQUISITE',
  'REQUIREMENT_DESCRIPTION_FOR',
  'SPECIFICATION_FOR',
  'OTHER',
];

/** Every property a closed object may hold (the official 2.3 JSON schema closes these objects). */
const closed = (names: string[]) => ({
  propertyNames: { enum: names },
});

const PACKAGE_PROPERTIES = [
  'SPDXID',
  'annotations',
  'attributionTexts',
  'builtDate',
  'checksums',
  'comment',
  'copyrightText',
  'description',
  'downloadLocation',
  'externalRefs',
  'filesAnalyzed',
  'hasFiles',
  'homepage',
  'licenseComments',
  'licenseConcluded',
  'licenseDeclared',
  'licenseInfoFromFiles',
  'name',
  'originator',
  'packageFileName',
  'packageVerificationCode',
  'primaryPackagePurpose',
  'releaseDate',
  'sourceInfo',
  'summary',
  'supplier',
  'validUntilDate',
  'versionInfo',
];
const FILE_PROPERTIES = [
  'SPDXID',
  'annotations',
  'artifactOfs',
  'attributionTexts',
  'checksums',
  'comment',
  'copyrightText',
  'fileContributors',
  'fileDependencies',
  'fileName',
  'fileTypes',
  'licenseComments',
  'licenseConcluded',
  'licenseInfoInFiles',
  'noticeText',
];
const DOCUMENT_PROPERTIES = [
  'SPDXID',
  'annotations',
  'comment',
  'creationInfo',
  'dataLicense',
  'externalDocumentRefs',
  'hasExtractedLicensingInfos',
  'name',
  'revieweds',
  'spdxVersion',
  'documentNamespace',
  'documentDescribes',
  'packages',
  'files',
  'snippets',
  'relationships',
];

export const SPDX_23_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  required: ['spdxVersion', 'dataLicense', 'SPDXID', 'name', 'documentNamespace', 'creationInfo'],
  ...closed(DOCUMENT_PROPERTIES),
  properties: {
    spdxVersion: { type: 'string', enum: ['SPDX-2.2', 'SPDX-2.3'] },
    dataLicense: { const: 'CC0-1.0' },
    // 6.3 says SPDXRef-DOCUMENT; melange (2023) wrote SPDXRef-DOCUMENT-<name>, which apk users meet in Wolfi.
    SPDXID: { type: 'string', pattern: '^SPDXRef-DOCUMENT' },
    name: { type: 'string' },
    documentNamespace: { type: 'string', format: 'uri' },
    documentDescribes: { type: 'array', items: { type: 'string' } },
    creationInfo: {
      type: 'object',
      required: ['created', 'creators'],
      ...closed(['comment', 'created', 'creators', 'licenseListVersion']),
      properties: {
        created: { type: 'string', format: 'date-time' },
        creators: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', pattern: '^(Person|Organization|Tool): ' },
        },
        licenseListVersion: { type: 'string' },
      },
    },
    packages: {
      type: 'array',
      items: {
        type: 'object',
        required: ['SPDXID', 'name', 'downloadLocation'],
        ...closed(PACKAGE_PROPERTIES),
        properties: {
          SPDXID: ref('spdxId'),
          name: { type: 'string' },
          versionInfo: { type: 'string' },
          downloadLocation: { type: 'string' },
          filesAnalyzed: { type: 'boolean' },
          licenseConcluded: { type: 'string' },
          licenseDeclared: { type: 'string' },
          supplier: { type: 'string' },
          originator: { type: 'string' },
          checksums: { type: 'array', items: ref('checksum') },
          externalRefs: {
            type: 'array',
            items: {
              type: 'object',
              required: ['referenceCategory', 'referenceType', 'referenceLocator'],
              properties: {
                referenceCategory: {
                  enum: [
                    'SECURITY',
                    'PACKAGE-MANAGER',
                    'PACKAGE_MANAGER',
                    'PERSISTENT-ID',
                    'PERSISTENT_ID',
                    'OTHER',
                  ],
                },
                referenceType: { type: 'string' },
                referenceLocator: { type: 'string' },
              },
            },
          },
          primaryPackagePurpose: {
            enum: [
              'APPLICATION',
              'FRAMEWORK',
              'LIBRARY',
              'CONTAINER',
              'OPERATING-SYSTEM',
              // The official JSON schema spells it with an underscore; the spec text with a hyphen.
              'OPERATING_SYSTEM',
              'DEVICE',
              'FIRMWARE',
              'SOURCE',
              'ARCHIVE',
              'FILE',
              'INSTALL',
              'OTHER',
            ],
          },
        },
      },
    },
    files: {
      type: 'array',
      items: {
        type: 'object',
        required: ['SPDXID', 'fileName', 'checksums'],
        ...closed(FILE_PROPERTIES),
        properties: {
          SPDXID: ref('spdxId'),
          fileName: { type: 'string' },
          // 8.4: a SHA1 checksum is mandatory for every file.
          checksums: {
            type: 'array',
            minItems: 1,
            items: ref('checksum'),
            contains: { properties: { algorithm: { const: 'SHA1' } } },
          },
        },
      },
    },
    relationships: {
      type: 'array',
      items: {
        type: 'object',
        required: ['spdxElementId', 'relationshipType', 'relatedSpdxElement'],
        ...closed(['spdxElementId', 'relationshipType', 'relatedSpdxElement', 'comment']),
        properties: {
          spdxElementId: { type: 'string' },
          relationshipType: { enum: RELATIONSHIP_TYPES },
          relatedSpdxElement: { type: 'string' },
        },
      },
    },
    hasExtractedLicensingInfos: {
      type: 'array',
      items: {
        type: 'object',
        required: ['licenseId', 'extractedText'],
        properties: {
          licenseId: { type: 'string', pattern: '^LicenseRef-[A-Za-z0-9.-]+$' },
          extractedText: { type: 'string' },
        },
      },
    },
  },
  definitions: {
    spdxId: { type: 'string', pattern: '^SPDXRef-[A-Za-z0-9.-]+$' },
    checksum: {
      type: 'object',
      required: ['algorithm', 'checksumValue'],
      properties: {
        algorithm: { enum: CHECKSUM_ALGORITHMS },
        checksumValue: { type: 'string', pattern: '^[0-9a-fA-F]+$' },
      },
    },
  },
} as const;
