/**
 * SPDX 2.3 JSON as a draft-07 JSON Schema, for ajv.
 *
 * This is reef's transcription of the SPDX 2.3 specification clauses
 * (§6 document creation information, §7 package, §8 file, §9 snippet,
 * §10 other licensing information, §11 relationships, §12 annotations),
 * NOT the official spdx-schema.json, which no package installed here ships.
 * Where they differ it is on purpose:
 * - objects are closed to the same property names as the official 2.3 schema
 *   (additionalProperties false), so a typo is an error rather than lost data;
 * - it also requires what the spec text requires and the official schema leaves
 *   open: documentNamespace (§6.5, a URI without `#`), dataLicense CC0-1.0 (§6.2),
 *   the SPDXRef-/DocumentRef- identifier syntax (§3.2, §6.3, §11.1), creators
 *   prefixed Person:/Organization:/Tool: (§6.8), a SHA1 among every file's
 *   checksums (§8.4), date-time values (§6.9, §7.25-7.27, §12.2), and no
 *   files or verification code under filesAnalyzed false (§7.8, §7.9);
 * - enums accept both spellings met in the wild where the spec text and the
 *   official JSON schema disagree (OPERATING-SYSTEM / OPERATING_SYSTEM,
 *   PACKAGE-MANAGER / PACKAGE_MANAGER).
 * What a schema cannot say (unique SPDXIDs, references that resolve) is
 * checked in validate.ts.
 */

/** §7.10 / §8.4 checksum algorithms. */
export const CHECKSUM_ALGORITHMS = [
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
] as const;

/** §11.1 relationship types (45 in SPDX 2.3). */
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
] as const;

/** §7.24 primary package purpose; the official JSON schema spells OPERATING_SYSTEM, the spec OPERATING-SYSTEM. */
export const PACKAGE_PURPOSES = [
  'APPLICATION',
  'FRAMEWORK',
  'LIBRARY',
  'CONTAINER',
  'OPERATING-SYSTEM',
  'OPERATING_SYSTEM',
  'DEVICE',
  'FIRMWARE',
  'SOURCE',
  'ARCHIVE',
  'FILE',
  'INSTALL',
  'OTHER',
] as const;

/** §7.21 external reference categories; underscores are the SPDX 2.2 / tool spellings. */
export const REFERENCE_CATEGORIES = [
  'SECURITY',
  'PACKAGE-MANAGER',
  'PACKAGE_MANAGER',
  'PERSISTENT-ID',
  'PERSISTENT_ID',
  'OTHER',
] as const;

/** §8.3 file types. */
const FILE_TYPES = [
  'SOURCE',
  'BINARY',
  'ARCHIVE',
  'APPLICATION',
  'AUDIO',
  'IMAGE',
  'TEXT',
  'VIDEO',
  'DOCUMENTATION',
  'SPDX',
  'OTHER',
];

/** §3.2 `SPDXRef-[idstring]`, idstring of letters, digits, `.` and `-`. */
const SPDX_ID = '^SPDXRef-[A-Za-z0-9.-]+$';
/** §11.1 an element here, or one in an external document (`DocumentRef-x:SPDXRef-y`). */
const ELEMENT_REF = '^(DocumentRef-[A-Za-z0-9.+-]+:)?SPDXRef-[A-Za-z0-9.-]+$';

const ref = (name: string) => ({ $ref: `#/definitions/${name}` });
const string = { type: 'string' };
const strings = { type: 'array', items: string };
const dateTime = { type: 'string', format: 'date-time' };

const element = {
  annotations: { type: 'array', items: ref('annotation') },
  attributionTexts: strings,
  comment: string,
  copyrightText: string,
  licenseComments: string,
  licenseConcluded: string,
};

export const SPDX_23_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'SPDX 2.3 document (reef transcription of the specification)',
  type: 'object',
  required: ['spdxVersion', 'dataLicense', 'SPDXID', 'name', 'documentNamespace', 'creationInfo'],
  additionalProperties: false,
  properties: {
    // §6.1; parseSbom routes only 2.2 and 2.3 here, and 2.3 JSON reads 2.2 documents unchanged.
    spdxVersion: { enum: ['SPDX-2.2', 'SPDX-2.3'] },
    // §6.2
    dataLicense: { const: 'CC0-1.0' },
    // §6.3 says SPDXRef-DOCUMENT; melange (2023) wrote SPDXRef-DOCUMENT-apk-<name>-<version>, found in Wolfi packages.
    SPDXID: { type: 'string', pattern: '^SPDXRef-DOCUMENT[A-Za-z0-9.-]*$' },
    // §6.4
    name: string,
    // §6.5: a unique absolute URI, without a fragment (element URIs are namespace#SPDXID).
    documentNamespace: { type: 'string', format: 'uri', pattern: '^[^#]+$' },
    // §6.6
    externalDocumentRefs: {
      type: 'array',
      items: {
        type: 'object',
        required: ['externalDocumentId', 'spdxDocument', 'checksum'],
        additionalProperties: false,
        properties: {
          externalDocumentId: { type: 'string', pattern: '^DocumentRef-[A-Za-z0-9.+-]+$' },
          spdxDocument: { type: 'string', format: 'uri' },
          checksum: ref('checksum'),
        },
      },
    },
    // §6.7-6.10
    creationInfo: {
      type: 'object',
      required: ['created', 'creators'],
      additionalProperties: false,
      properties: {
        created: dateTime,
        creators: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', pattern: '^(Person|Organization|Tool): ' },
        },
        licenseListVersion: { type: 'string', pattern: '^[0-9]+\\.[0-9]+$' },
        comment: string,
      },
    },
    comment: string,
    documentDescribes: { type: 'array', items: { type: 'string', pattern: ELEMENT_REF } },
    packages: { type: 'array', items: ref('package') },
    files: { type: 'array', items: ref('file') },
    snippets: { type: 'array', items: ref('snippet') },
    hasExtractedLicensingInfos: { type: 'array', items: ref('extractedLicensingInfo') },
    relationships: { type: 'array', items: ref('relationship') },
    annotations: { type: 'array', items: ref('annotation') },
    // Deprecated since 2.0 in favour of annotations, still in the 2.3 JSON schema.
    revieweds: {
      type: 'array',
      items: {
        type: 'object',
        required: ['reviewDate'],
        additionalProperties: false,
        properties: { reviewDate: dateTime, reviewer: string, comment: string },
      },
    },
  },
  definitions: {
    // §7.10, §8.4: lowercase hex in the spec; uppercase is read too.
    checksum: {
      type: 'object',
      required: ['algorithm', 'checksumValue'],
      additionalProperties: false,
      properties: {
        algorithm: { enum: CHECKSUM_ALGORITHMS },
        checksumValue: { type: 'string', pattern: '^[0-9a-fA-F]+$' },
      },
    },
    // §7
    package: {
      type: 'object',
      required: ['SPDXID', 'name', 'downloadLocation'],
      additionalProperties: false,
      properties: {
        ...element,
        SPDXID: { type: 'string', pattern: SPDX_ID },
        name: string, // §7.1
        versionInfo: string, // §7.3
        packageFileName: string, // §7.4
        supplier: string, // §7.5
        originator: string, // §7.6
        downloadLocation: string, // §7.7: a URL, a VCS locator, NONE or NOASSERTION
        filesAnalyzed: { type: 'boolean' }, // §7.8
        packageVerificationCode: {
          // §7.9: SHA1 over the sorted SHA1s of the package's files
          type: 'object',
          required: ['packageVerificationCodeValue'],
          additionalProperties: false,
          properties: {
            packageVerificationCodeValue: { type: 'string', pattern: '^[0-9a-fA-F]{40}$' },
            packageVerificationCodeExcludedFiles: strings,
          },
        },
        checksums: { type: 'array', items: ref('checksum') }, // §7.10
        homepage: string, // §7.11
        sourceInfo: string, // §7.12
        licenseInfoFromFiles: strings, // §7.14
        licenseDeclared: string, // §7.15
        summary: string, // §7.18
        description: string, // §7.19
        externalRefs: {
          // §7.21
          type: 'array',
          items: {
            type: 'object',
            required: ['referenceCategory', 'referenceType', 'referenceLocator'],
            additionalProperties: false,
            properties: {
              referenceCategory: { enum: REFERENCE_CATEGORIES },
              referenceType: { type: 'string', minLength: 1 },
              // "no spaces" (§7.21)
              referenceLocator: { type: 'string', pattern: '^\\S+$' },
              comment: string,
            },
          },
        },
        primaryPackagePurpose: { enum: PACKAGE_PURPOSES }, // §7.24
        releaseDate: dateTime, // §7.25
        builtDate: dateTime, // §7.26
        validUntilDate: dateTime, // §7.27
        hasFiles: { type: 'array', items: { type: 'string', pattern: SPDX_ID } },
      },
      // §7.8/§7.9: a package whose files were not analysed lists no files and has no verification code.
      if: { required: ['filesAnalyzed'], properties: { filesAnalyzed: { const: false } } },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword, not a thenable.
      then: { not: { anyOf: [{ required: ['packageVerificationCode'] }, { required: ['hasFiles'] }] } },
    },
    // §8
    file: {
      type: 'object',
      required: ['SPDXID', 'fileName', 'checksums'],
      additionalProperties: false,
      properties: {
        ...element,
        SPDXID: { type: 'string', pattern: SPDX_ID },
        fileName: { type: 'string', minLength: 1 }, // §8.1
        fileTypes: { type: 'array', items: { enum: FILE_TYPES } }, // §8.3
        // §8.4: SHA1 is mandatory for every file; others may follow.
        checksums: {
          type: 'array',
          minItems: 1,
          items: ref('checksum'),
          contains: { type: 'object', properties: { algorithm: { const: 'SHA1' } } },
        },
        licenseInfoInFiles: strings, // §8.6
        noticeText: string,
        fileContributors: strings,
        // Deprecated since SPDX 2.0 but still in the 2.3 JSON schema.
        fileDependencies: strings,
        artifactOfs: { type: 'array', items: { type: 'object' } },
      },
    },
    // §9
    snippet: {
      type: 'object',
      required: ['SPDXID', 'snippetFromFile', 'ranges'],
      additionalProperties: false,
      properties: {
        ...element,
        SPDXID: { type: 'string', pattern: SPDX_ID },
        name: string,
        snippetFromFile: { type: 'string', pattern: ELEMENT_REF },
        licenseInfoInSnippets: strings,
        ranges: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['startPointer', 'endPointer'],
            additionalProperties: false,
            properties: { startPointer: ref('pointer'), endPointer: ref('pointer') },
          },
        },
      },
    },
    pointer: {
      type: 'object',
      required: ['reference'],
      additionalProperties: false,
      properties: {
        reference: { type: 'string', pattern: ELEMENT_REF },
        offset: { type: 'integer', minimum: 0 },
        lineNumber: { type: 'integer', minimum: 0 },
      },
    },
    // §10
    extractedLicensingInfo: {
      type: 'object',
      required: ['licenseId', 'extractedText'],
      additionalProperties: false,
      properties: {
        licenseId: { type: 'string', pattern: '^LicenseRef-[A-Za-z0-9.-]+$' },
        extractedText: string,
        name: string,
        seeAlsos: strings,
        comment: string,
        crossRefs: {
          type: 'array',
          items: {
            type: 'object',
            required: ['url'],
            additionalProperties: false,
            properties: {
              url: string,
              isLive: { type: 'boolean' },
              isValid: { type: 'boolean' },
              isWayBackLink: { type: 'boolean' },
              match: string,
              order: { type: 'integer' },
              timestamp: string,
            },
          },
        },
      },
    },
    // §11.1
    relationship: {
      type: 'object',
      required: ['spdxElementId', 'relationshipType', 'relatedSpdxElement'],
      additionalProperties: false,
      properties: {
        spdxElementId: { type: 'string', pattern: ELEMENT_REF },
        relationshipType: { enum: RELATIONSHIP_TYPES },
        // NONE / NOASSERTION: "related to nothing" / "unknown" (§11.1).
        relatedSpdxElement: {
          anyOf: [{ type: 'string', pattern: ELEMENT_REF }, { enum: ['NONE', 'NOASSERTION'] }],
        },
        comment: string,
      },
    },
    // §12
    annotation: {
      type: 'object',
      required: ['annotator', 'annotationDate', 'annotationType', 'comment'],
      additionalProperties: false,
      properties: {
        annotator: { type: 'string', pattern: '^(Person|Organization|Tool): ' },
        annotationDate: dateTime,
        annotationType: { enum: ['REVIEW', 'OTHER'] },
        comment: string,
      },
    },
  },
} as const;
