import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { APK_ARCHES } from '../apk/pkginfo.ts';
import { ERROR_CODES } from '../errors.ts';
import { LIBCS } from '../repo/publish.ts';
import { allow } from './auth.ts';
import { auditQuery, createTokenBody, deletedQuery, repoSettingsBody } from './routes/admin.ts';
import { advisoryListQuery, importBody } from './routes/advisories.ts';
import { fileListQuery } from './routes/package-files.ts';
import { pageQuery } from './routes/packages.ts';
import { PACKAGE_SIDE_FILES } from './routes/repo-files.ts';
import { componentQuery, diffQuery, exportQuery, licenseQuery, sbomQuery } from './routes/sbom.ts';
import { apiSearchQuery } from './routes/search.ts';
import { searchQuery } from './routes/ui.ts';
import { uiComponentQuery, uiDiffQuery, uiLicenseQuery } from './routes/ui-audit.ts';
import { vulnerabilityQuery } from './routes/vulnerabilities.ts';

/**
 * The OpenAPI 3.1 description of reef's HTTP interface, and a self-contained
 * HTML reference rendered from it. Request bodies and query parameters come
 * from the zod schemas the routes validate with, so limits cannot drift;
 * paths, statuses and response shapes are written here and pinned by
 * test/http/openapi.test.ts against the routes the app really registers.
 */

type Json = Record<string, unknown>;
type Method = 'get' | 'head' | 'post' | 'put' | 'delete';

/** Who may call an operation; becomes its `security` and its 401/403/429 responses. */
type Access =
  | { kind: 'public' }
  /** Public repositories answer anyone; private ones need `<repo>:read`. */
  | { kind: 'read' }
  /** A token: bad credentials are refused (401), none are fine (public listing). */
  | { kind: 'optional' }
  | { kind: 'scope'; scope: string };

interface OperationSpec {
  method: Method;
  path: string;
  tag: string;
  operationId: string;
  summary: string;
  description?: string;
  access: Access;
  query?: z.ZodObject;
  requestBody?: Json;
  /** Status → a response object or a `#/components/responses/…` name. */
  responses: Record<string, Json | string>;
}

export interface OpenApiOperation {
  tags?: string[];
  operationId?: string;
  summary?: string;
  description?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Json[];
  requestBody?: Json;
  responses: Record<string, Json>;
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string; license?: Json };
  tags: Array<{ name: string; description: string }>;
  paths: Record<string, Partial<Record<Method, OpenApiOperation>>>;
  components: {
    schemas: Record<string, Json>;
    responses: Record<string, Json>;
    securitySchemes: Record<string, Json>;
  };
}

// Small JSON Schema builders: the response shapes below are hand-written.
const str = (description?: string, extra: Json = {}): Json => ({ type: 'string', ...extra, description });
const int = (description?: string, extra: Json = {}): Json => ({ type: 'integer', ...extra, description });
const bool = (description?: string): Json => ({ type: 'boolean', description });
const time = (description?: string): Json => ({ type: 'string', format: 'date-time', description });
const orNull = (schema: Json): Json => ({ ...schema, type: [schema.type, 'null'] });
const arr = (items: Json, description?: string): Json => ({ type: 'array', items, description });
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Record<string, Json>, required = Object.keys(properties)): Json => ({
  type: 'object',
  properties,
  required,
});
const json = (schema: Json): Json => ({ 'application/json': { schema } });
const ok = (description: string, schema: Json): Json => ({ description, content: json(schema) });

/** The input side of a zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect). */
function schemaOf(schema: z.ZodType, descriptions: Record<string, string> = {}): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input' }) as Json;
  const properties = rest.properties as Record<string, Json> | undefined;
  for (const [name, description] of Object.entries(descriptions)) {
    const property = properties?.[name];
    if (property && property.description === undefined) property.description = description;
  }
  return rest;
}

/** A zod object of query parameters as `in: query` parameters. */
function queryParameters(schema: z.ZodObject, descriptions: Record<string, string>): Json[] {
  const json = schemaOf(schema, descriptions);
  const required = new Set((json.required as string[] | undefined) ?? []);
  return Object.entries((json.properties ?? {}) as Record<string, Json>).map(([name, property]) => {
    const { description, ...propertySchema } = property;
    return { name, in: 'query', required: required.has(name), description, schema: propertySchema };
  });
}

const PATH_PARAMETERS: Record<string, Json> = {
  repo: {
    description: 'repository name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit',
    schema: str(undefined, { pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
  },
  libc: { description: 'the libc the packages are built for', schema: str(undefined, { enum: [...LIBCS] }) },
  arch: {
    description: 'apk architecture; noarch packages also answer under every architecture',
    schema: str(undefined, { enum: [...APK_ARCHES].sort() }),
  },
  name: { description: 'package name (`P:`)', schema: str() },
  version: { description: 'package version (`V:`), e.g. 2.12-r0', schema: str() },
  file: { description: 'the package file name without `.apk`: `<name>-<version>`', schema: str() },
  keyName: { description: 'a signing key name, e.g. reef-1a2b3c4d.rsa.pub', schema: str() },
  id: { description: 'token id, as listed by GET /api/v1/tokens', schema: int(undefined, { minimum: 1 }) },
};

const SCHEMAS: Record<string, Json> = {
  Error: {
    type: 'object',
    description: 'Every 4xx/5xx JSON body. Match on `code`, which is stable; `message` is for people.',
    properties: {
      code: str('stable machine-readable error code', { enum: Object.keys(ERROR_CODES) }),
      message: str('what went wrong and what to fix'),
      details: { type: 'object', additionalProperties: true, description: 'extra machine-readable facts' },
    },
    required: ['code', 'message'],
  },
  Status: obj({ status: str(), code: str(), message: str() }, ['status']),
  Component: obj(
    {
      name: str(),
      version: str(),
      purl: str(),
      license: str(),
      supplier: str(),
      checksums: arr(obj({ algorithm: str(), value: str() })),
    },
    ['name', 'checksums'],
  ),
  PackageKey: obj({
    repo: str(),
    libc: str(undefined, { enum: [...LIBCS] }),
    arch: str(),
    name: str(),
    version: str(),
  }),
  Package: obj({
    repo: str(),
    libc: str(undefined, { enum: [...LIBCS] }),
    arch: str(),
    name: str(),
    version: str(),
    filename: str('`<name>-<version>.apk`'),
    url: str('where apk downloads it', { format: 'uri' }),
    size: int('`S:` bytes of the .apk file'),
    sha256: str('SHA-256 of the whole file (hex); the ETag of downloads'),
    checksum: str('`C:` Q1-prefixed SHA-1 of the control segment'),
    datahash: str('SHA-256 of the data segment, as declared in .PKGINFO and checked at upload'),
    installedSize: int('`I:`'),
    description: str(),
    projectUrl: str(),
    license: str(),
    origin: str(),
    maintainer: str(),
    builddate: orNull(int('unix seconds')),
    commit: str(),
    providerPriority: orNull(int()),
    depends: arr(str()),
    provides: arr(str()),
    installIf: arr(str()),
    signatures: arr(obj({ algorithm: str(), keyName: str() }), 'signatures inside the .apk'),
    pkginfo: {
      type: 'object',
      additionalProperties: arr(str()),
      description: 'every .PKGINFO line, by key',
    },
    uploadedAt: time(),
    publishedAt: orNull(time('when an index listing it went live')),
    provenance: obj({
      publisher: orNull(
        obj({
          format: str(undefined, { enum: ['sigstore-bundle', 'melange-attestation'] }),
          sha256: str('SHA-256 of the document as sent'),
          policy: str('the policy mode it was checked under', { enum: ['off', 'record', 'require'] }),
          verified: { type: 'boolean' },
          subjectDigest: str('which digest the statement names', { enum: ['sha256', 'datahash'] }),
          signer: { type: 'object', description: 'kind key / identity (SAN, issuer) / apk-key' },
          predicateType: str(),
          predicate: obj({
            builderId: str(),
            buildType: str(),
            sourceRepository: str(),
            sourceCommit: str(),
            invocationId: str(),
          }),
          reason: str('why it did not verify'),
        }),
      ),
      policy: str("the repository's provenance policy mode", { enum: ['off', 'record', 'require'] }),
    }),
  }),
  PublishResult: {
    allOf: [
      ref('Package'),
      obj({
        outcome: str('created: new; exists: identical bytes were already stored', {
          enum: ['created', 'exists'],
        }),
        warnings: arr(str()),
      }),
    ],
  },
  SearchPage: obj({
    packages: arr(
      ref('Package'),
      'exact name first, then names starting with q, other names containing it, then descriptions and provides; by name within each',
    ),
    next: orNull(str('the `after` of the next page; null on the last page')),
  }),
  PackagePage: obj({
    packages: arr(ref('Package')),
    next: orNull(int('the `after` of the next page; null on the last page')),
  }),
  IndexInfo: obj(
    {
      libc: str(),
      arch: str(),
      packages: int(),
      sha256: str('SHA-256 of APKINDEX.tar.gz'),
      size: int(),
      builtAt: time(),
    },
    ['libc', 'arch', 'packages', 'sha256', 'size'],
  ),
  Repo: obj({
    name: str(),
    private: bool('private repositories answer 401 without a token with `<repo>:read`'),
    maxUploadBytes: orNull(int('overrides REEF_MAX_UPLOAD_BYTES when set')),
    distro: { anyOf: [ref('Distro'), { type: 'null' }] },
    indexes: arr(ref('IndexInfo')),
  }),
  RepoList: obj({ repos: arr(ref('Repo')) }),
  RepoSettings: obj({
    name: str(),
    private: bool(),
    maxUploadBytes: orNull(int()),
    distro: { anyOf: [ref('Distro'), { type: 'null' }] },
  }),
  Distro: obj(
    {
      id: str('os-release ID, e.g. alpine, wolfi: the namespace of the purls reef generates'),
      version: str('os-release VERSION_ID, e.g. 3.18.0; the `distro` qualifier is `<id>-<version>`'),
    },
    ['id'],
  ),
  Token: obj({
    id: int(),
    name: str(),
    scopes: arr(str('`<repo|*>:<read|publish|delete|advise|admin>`')),
    createdAt: time(),
    expiresAt: orNull(time()),
    revokedAt: orNull(time()),
    lastUsedAt: orNull(time()),
  }),
  TokenCreated: {
    allOf: [ref('Token'), obj({ token: str('the secret; shown only in this response') })],
  },
  TokenList: obj({ tokens: arr(ref('Token')) }),
  PublicKey: obj({ name: str(), publicKey: str('PEM') }),
  KeyList: obj({ keys: arr(ref('PublicKey')) }),
  KeyCreated: {
    allOf: [ref('PublicKey'), obj({ resigned: int('indexes re-signed') })],
  },
  KeyRetired: obj({ retired: str(), resigned: int('indexes re-signed') }),
  KeyNames: obj({
    keys: arr(str('index signing keys (.rsa.pub), for /etc/apk/keys')),
    attestation: str('the ECDSA P-256 key that signs reef attestations (.pub.pem)'),
  }),
  AuditEntry: obj(
    {
      id: int(),
      at: time(),
      tokenId: int(),
      tokenName: str(),
      action: str('e.g. package.publish, token.create, key.retire'),
      target: str(),
      remoteAddr: str(),
      result: str(undefined, { enum: ['ok', 'rejected'] }),
      code: str('error code of a rejected write'),
      detail: { type: 'object', additionalProperties: true },
    },
    ['id', 'at', 'action', 'target', 'result'],
  ),
  DeletedVersion: obj({
    name: str(),
    version: str(),
    arch: str(),
    sha256: str('SHA-256 of the file the slot is reserved to'),
    checksum: str('its C: identity as it was served'),
    deletedAt: time(),
  }),
  DeletedPage: obj({
    deleted: arr(ref('DeletedVersion')),
    next: orNull(str('the `after` of the next page; null on the last page')),
  }),
  SbomExportLine: obj({
    repo: str(),
    libc: str(undefined, { enum: ['glibc', 'musl'] }),
    arch: str(),
    name: str(),
    version: str(),
    source: str('where the SBOM came from', { enum: ['embedded', 'uploaded', 'generated'] }),
    format: str(undefined, { enum: ['spdx', 'cyclonedx'] }),
    sbom: { type: 'object', additionalProperties: true, description: 'the stored document, as served' },
  }),
  AuditPage: obj({
    entries: arr(ref('AuditEntry'), 'newest first'),
    next: orNull(int('the `before` of the next page; null on the last page')),
  }),
};

const errorResponse = (description: string, headers?: Json): Json => ({
  description,
  ...(headers ? { headers } : {}),
  content: json(ref('Error')),
});

const RESPONSES: Record<string, Json> = {
  BadRequest: errorResponse('malformed request or upload (BAD_REQUEST, APK_*, PUBLISH_BAD_REPO, …)'),
  Unauthorized: errorResponse('no or invalid credentials (AUTH_REQUIRED, AUTH_INVALID)', {
    'WWW-Authenticate': { description: 'Basic realm="reef"', schema: str() },
  }),
  Forbidden: errorResponse('the token lacks the scope (AUTH_FORBIDDEN)'),
  NotFound: errorResponse('no such repository, index, package, key or token'),
  Conflict: errorResponse(
    'different bytes for a name and version that exist (PUBLISH_VERSION_EXISTS: the same version as apk compares it, noarch and arch builds sharing one slot) or existed and were deleted (PUBLISH_VERSION_DELETED)',
  ),
  TooLarge: errorResponse('a size limit was exceeded (PUBLISH_TOO_LARGE, APK_*_TOO_LARGE, …)'),
  Unprocessable: errorResponse(
    'well-formed but breaks a rule (APK_DATAHASH_MISMATCH, PUBLISH_LIBC_MISMATCH)',
  ),
  RateLimited: errorResponse('too many failed authentications from this address (AUTH_RATE_LIMITED)'),
  StorageFull: errorResponse('no space left to store the upload (STORAGE_FULL)'),
  NotModified: { description: 'the cached copy named by If-None-Match / If-Modified-Since is current' },
  PartialContent: {
    description: 'the byte range asked for with Range (single ranges only)',
    headers: { 'Content-Range': { schema: str() } },
  },
  RangeNotSatisfiable: {
    description: 'the Range lies outside the file',
    headers: { 'Content-Range': { schema: str(undefined, { example: 'bytes */1234' }) } },
  },
};

const SECURITY_SCHEMES: Record<string, Json> = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    description: 'Authorization: Bearer <token>',
  },
  basicAuth: {
    type: 'http',
    scheme: 'basic',
    description:
      'HTTP Basic with the token as password (the user name is ignored): what apk sends for http://user:token@host/…',
  },
};

/** Headers every download carries (apk-tools libfetch/http.c, apko pkg/apk/apk/cache.go). */
const FILE_HEADERS: Json = {
  ETag: { description: 'strong: the quoted SHA-256 of the body, the same on HEAD and GET', schema: str() },
  'Last-Modified': { schema: str() },
  'Cache-Control': { schema: str() },
  'Accept-Ranges': { schema: str(undefined, { const: 'bytes' }) },
};

const REQUEST_HEADERS: Json[] = [
  { name: 'If-None-Match', in: 'header', required: false, schema: str() },
  { name: 'If-Modified-Since', in: 'header', required: false, schema: str() },
  { name: 'Range', in: 'header', required: false, schema: str(undefined, { example: 'bytes=0-1023' }) },
  { name: 'If-Range', in: 'header', required: false, schema: str() },
];

const fileResponses = (method: Method, contentType: string, what: string): Record<string, Json | string> => ({
  200: {
    description: what,
    headers: FILE_HEADERS,
    // HEAD answers the same headers (Content-Length included) and no body.
    ...(method === 'get'
      ? { content: { [contentType]: { schema: str(undefined, { contentMediaType: contentType }) } } }
      : {}),
  },
  206: 'PartialContent',
  304: 'NotModified',
  404: 'NotFound',
  416: 'RangeNotSatisfiable',
});

const pem = (description: string): Json => ({
  description,
  content: { 'application/x-pem-file': { schema: str() } },
});

const fileOps = (method: Method): OperationSpec[] => [
  {
    method,
    path: '/{repo}/{libc}/{arch}/APKINDEX.tar.gz',
    tag: 'apk',
    operationId: `${method}IndexFile`,
    summary: method === 'get' ? 'The signed index' : 'Index headers (same ETag as GET)',
    description:
      'The signed APKINDEX.tar.gz of a (repository, libc, architecture), noarch packages included. ' +
      '`Cache-Control: no-cache`: caches must revalidate.',
    access: { kind: 'read' },
    responses: fileResponses(method, 'application/gzip', 'the index'),
  },
  {
    method,
    path: '/{repo}/{libc}/{arch}/{file}.apk',
    tag: 'apk',
    operationId: `${method}PackageFile`,
    summary: method === 'get' ? 'A package file' : 'Package headers (same ETag as GET)',
    description: 'The package, byte-identical to the upload; `Cache-Control: immutable`.',
    access: { kind: 'read' },
    responses: fileResponses(method, 'application/vnd.apk', 'the package'),
  },
];

/** GET and HEAD of each file beside a package (`{file}` is `<name>-<version>`). */
const sideFileOps = (method: Method): OperationSpec[] =>
  PACKAGE_SIDE_FILES.map((side) => ({
    method,
    path: `/{repo}/{libc}/{arch}/{file}${side.suffix}`,
    tag: 'apk',
    operationId: `${method}${side.suffix
      .split('.')
      .filter(Boolean)
      .map((w) => w[0]!.toUpperCase() + w.slice(1))
      .join('')}`,
    summary: method === 'get' ? side.summary : `${side.summary}: headers (same ETag as GET)`,
    description:
      'Beside the package `{file}.apk`, under every arch it is listed in; `Cache-Control: immutable`, like the package.',
    access: { kind: 'read' },
    responses: fileResponses(method, side.contentType, side.summary),
  }));

const advisoryDocument: Json = {
  type: 'object',
  description:
    "A package's advisories, as a Wolfi advisory file (schema version 2): `schema-version`, `package.name`, " +
    '`advisories[]` of `{id, aliases, events[{timestamp, type, data}]}`.',
};

const securityFeedOp = (method: Method): OperationSpec => ({
  method,
  path: '/{repo}/{libc}/security.json',
  tag: 'advisories',
  operationId: `${method}SecurityFeed`,
  summary:
    method === 'get'
      ? "The repository's security feed (Alpine secdb)"
      : 'Security feed headers (same ETag as GET)',
  description:
    'What Grype and Trivy read for apk distributions: per source package, `secfixes` maps each fixed version ' +
    'to the ids it fixes; `"0"` lists ids it is not affected by. Built from the repository\'s advisories ' +
    "as wolfictl builds Wolfi's; it changes at the next request after an advisory change. `Cache-Control: no-cache`.",
  access: { kind: 'read' },
  responses: fileResponses(method, 'application/json', 'the feed'),
});

const count = { type: 'integer' };

const signedFeedOp = (method: Method): OperationSpec => ({
  method,
  path: '/{repo}/{libc}/security.json.sigstore.json',
  tag: 'advisories',
  operationId: `${method}SignedSecurityFeed`,
  summary:
    method === 'get'
      ? "reef's signed statement of the security feed it serves now"
      : 'Signed feed statement headers (same ETag as GET)',
  description:
    'A Sigstore bundle (DSSE, in-toto Statement v1, predicate https://reef.dev/attestation/feed/v1) whose ' +
    "subject is security.json's SHA-256 as served now, signed with reef's attestation key (/keys): keep it " +
    'beside a copy of the feed to prove what reef said, and when.',
  access: { kind: 'read' },
  responses: fileResponses(method, 'application/vnd.dev.sigstore.bundle.v0.3+json', 'the bundle'),
});

const ADVISORY_OPERATIONS: OperationSpec[] = [
  securityFeedOp('get'),
  securityFeedOp('head'),
  signedFeedOp('get'),
  signedFeedOp('head'),
  {
    method: 'get',
    path: '/api/v1/repos/{repo}/advisories',
    tag: 'advisories',
    operationId: 'listAdvisoryPackages',
    summary: 'Packages with advisories, by name, paged',
    access: { kind: 'read' },
    query: advisoryListQuery,
    responses: {
      200: ok(
        'one page',
        obj({
          packages: arr(obj({ package: str(), advisories: count, updatedAt: count })),
          next: { type: ['string', 'null'] },
        }),
      ),
      400: 'BadRequest',
    },
  },
  {
    method: 'get',
    path: '/api/v1/repos/{repo}/osv.json',
    tag: 'advisories',
    operationId: 'exportOsv',
    summary: "The repository's advisories as OSV records (a JSON array)",
    description:
      "One record per advisory (OSV 1.7): the source package in the ecosystem of the repository's distro " +
      '(Wolfi, Chainguard, Alpine:vX.Y, MinimOS, …), an ECOSYSTEM range in apk version order, CVE and GHSA ' +
      'ids in `upstream`. 422 ADVISORY_NO_ECOSYSTEM when the distro names no OSV ecosystem.',
    access: { kind: 'read' },
    responses: { 200: ok('the records', arr({ type: 'object' })), 304: 'NotModified', 422: 'Unprocessable' },
  },
  {
    method: 'get',
    path: '/api/v1/repos/{repo}/osv/{file}',
    tag: 'advisories',
    operationId: 'getOsv',
    summary: 'One OSV record (<id>.json), or the feed index (all.json: every id and its modified time)',
    access: { kind: 'read' },
    responses: {
      200: ok('the record or index', { type: ['object', 'array'] }),
      304: 'NotModified',
      404: 'NotFound',
      422: 'Unprocessable',
    },
  },
  {
    method: 'get',
    path: '/api/v1/repos/{repo}/advisories/{name}',
    tag: 'advisories',
    operationId: 'getAdvisories',
    summary: "A package's advisory document",
    access: { kind: 'read' },
    responses: { 200: ok('the document', advisoryDocument), 404: 'NotFound' },
  },
  {
    method: 'put',
    path: '/api/v1/repos/{repo}/advisories/{name}',
    tag: 'advisories',
    operationId: 'putAdvisories',
    summary: "Replace a package's advisories (YAML or JSON)",
    description:
      'The whole document of the package `name` (its `package.name` must match). A bad document is a 400 ' +
      'ADVISORY_INVALID with `details.field`, and nothing changes. Each write is in the audit log.',
    access: { kind: 'scope', scope: '{repo}:advise' },
    requestBody: {
      required: true,
      content: { ...json(advisoryDocument), 'application/yaml': { schema: str() } },
    },
    responses: {
      200: ok('stored', obj({ package: str(), added: arr(str()), changed: arr(str()), removed: arr(str()) })),
      400: 'BadRequest',
      409: 'Conflict',
      413: 'TooLarge',
    },
  },
  {
    method: 'post',
    path: '/api/v1/repos/{repo}/advisories/import',
    tag: 'advisories',
    operationId: 'importAdvisories',
    summary: "Import many packages' advisory files, all or nothing",
    description:
      'Every file is read and checked before any is written; a bad file fails the import (400, naming ' +
      '`details.file` and `details.field`). Packages without a file keep their advisories.',
    access: { kind: 'scope', scope: '{repo}:advise' },
    requestBody: { required: true, content: json(schemaOf(importBody)) },
    responses: {
      200: ok(
        'imported',
        obj({ files: count, packages: count, added: count, changed: count, removed: count }),
      ),
      400: 'BadRequest',
      409: 'Conflict',
      413: 'TooLarge',
    },
  },
];

const match = obj(
  {
    package: ref('PackageKey'),
    component: obj({ name: str(), version: str(), purl: str() }, ['name']),
    record: str('the OSV record that matched'),
    ecosystem: str(),
    range: { type: 'object', description: 'the OSV range the version fell in' },
    versions: { type: 'boolean', description: 'the version is listed in the record' },
    state: {
      type: 'string',
      enum: ['affected', 'under_investigation', 'fixed', 'not_affected'],
      description:
        "after reef's advisories of the package's source package: fixed and not_affected are suppressed",
    },
    advisory: obj({ id: str(), event: str(), fixedVersion: str(), justification: str() }, ['id', 'event']),
  },
  ['package', 'record', 'ecosystem', 'state'],
);
const notEvaluated = obj(
  {
    package: ref('PackageKey'),
    component: obj({ name: str(), version: str(), purl: str() }, ['name']),
    record: str(),
    ecosystem: str(),
    reason: str('why reef could not compare: an ecosystem it has no rule for, or a version it cannot read'),
  },
  ['package', 'record', 'ecosystem', 'reason'],
);

const VULNERABILITY_OPERATIONS: OperationSpec[] = [
  {
    method: 'post',
    path: '/api/v1/vulnerabilities',
    tag: 'advisories',
    operationId: 'uploadVulnerabilities',
    summary: 'Upload OSV records (one, or an array), all or none',
    description:
      'Vulnerability data to match against every SBOM: osv.dev exports for Go, npm, PyPI, crates.io, Maven, or an ' +
      'apk distribution. A record replaces the stored one of its id unless that one is newer (`modified`).',
    access: { kind: 'scope', scope: '*:advise' },
    requestBody: { required: true, content: json({ type: ['object', 'array'] }) },
    responses: {
      200: ok(
        'stored',
        obj({ received: { type: 'integer' }, stored: { type: 'integer' }, older: { type: 'integer' } }),
      ),
      400: 'BadRequest',
      413: 'TooLarge',
    },
  },
  {
    method: 'get',
    path: '/api/v1/vulnerabilities/{id}',
    tag: 'advisories',
    operationId: 'affectedBy',
    summary: 'The packages a vulnerability affects (by OSV id, CVE or GHSA), paged',
    description:
      'Packages whose SBOM components fall in an affected range of a record known by this name (SEMVER; ' +
      "ECOSYSTEM ranges by Go, npm and crates.io semver, PyPI's PEP 440 and apk order), and, for apk " +
      "distributions' records, packages built from the named source package in repositories of that distro. " +
      'Components reef cannot compare are listed under notEvaluated, never left out. Private repositories ' +
      'only for a token that may read them.',
    access: { kind: 'read' },
    query: vulnerabilityQuery,
    responses: {
      200: ok(
        'one page',
        obj({
          id: str(),
          records: arr(str()),
          withdrawn: arr(str()),
          matches: arr(match),
          notEvaluated: arr(notEvaluated),
          next: { type: ['string', 'null'] },
        }),
      ),
      400: 'BadRequest',
      404: 'NotFound',
    },
  },
  {
    method: 'get',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/vulnerabilities',
    tag: 'advisories',
    operationId: 'packageVulnerabilities',
    summary: 'The uploaded vulnerabilities one package falls under, paged',
    access: { kind: 'read' },
    query: vulnerabilityQuery,
    responses: {
      200: ok(
        'matches',
        obj({ matches: arr(match), notEvaluated: arr(notEvaluated), next: { type: ['string', 'null'] } }),
      ),
      404: 'NotFound',
    },
  },
];

const htmlPage = (description: string): Json => ({
  description,
  content: { 'text/html': { schema: str(undefined, { contentMediaType: 'text/html' }) } },
});

/** The web interface: pages for people, rendered on the server (no script). */
const UI_OPERATIONS: OperationSpec[] = [
  {
    method: 'get',
    path: '/',
    tag: 'ui',
    operationId: 'root',
    summary: 'A browser (Accept: text/html) is sent to /ui/; anything else gets 404',
    access: { kind: 'public' },
    responses: { 302: { description: 'to /ui/' }, 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/ui/',
    tag: 'ui',
    operationId: 'uiHome',
    summary: 'Repositories, libcs and arches the caller may read, with the lines to use each',
    access: { kind: 'public' },
    responses: { 200: htmlPage('the page') },
  },
  {
    method: 'get',
    path: '/ui/search',
    tag: 'ui',
    operationId: 'uiSearch',
    summary: 'Search packages by name, description and what they provide',
    access: { kind: 'public' },
    query: searchQuery,
    responses: { 200: htmlPage('the results'), 400: 'BadRequest' },
  },
  {
    method: 'get',
    path: '/ui/packages/{repo}/{libc}/{arch}/{name}/{version}',
    tag: 'ui',
    operationId: 'uiPackage',
    summary: 'A package: its fields, dependencies, versions, SBOM, provenance and advisories',
    access: { kind: 'read' },
    responses: { 200: htmlPage('the page'), 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/ui/packages/{repo}/{libc}/{arch}/{name}/{version}/diff',
    tag: 'ui',
    operationId: 'uiPackageDiff',
    summary: 'SBOM components added, removed and changed since another version (query against)',
    access: { kind: 'read' },
    query: uiDiffQuery,
    responses: { 200: htmlPage('the page'), 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/ui/components',
    tag: 'ui',
    operationId: 'uiComponents',
    summary: 'Which packages contain a component (by name or purl), in a version range',
    description: 'The page of GET /api/v1/components, a hundred rows at a time.',
    access: { kind: 'public' },
    query: uiComponentQuery,
    responses: { 200: htmlPage('the form and the results'), 400: htmlPage('the form and what to fix') },
  },
  {
    method: 'get',
    path: '/ui/licenses',
    tag: 'ui',
    operationId: 'uiLicenses',
    summary: 'Packages whose declared licence an approved list does not allow (or does)',
    description: 'The page of GET /api/v1/licenses, a hundred rows at a time.',
    access: { kind: 'public' },
    query: uiLicenseQuery,
    responses: { 200: htmlPage('the form and the results'), 400: htmlPage('the form and what to fix') },
  },
  {
    method: 'get',
    path: '/ui/sign-in',
    tag: 'ui',
    operationId: 'uiSignInPage',
    summary: 'The sign-in form',
    access: { kind: 'public' },
    responses: { 200: htmlPage('the form') },
  },
  {
    method: 'post',
    path: '/ui/sign-in',
    tag: 'ui',
    operationId: 'uiSignIn',
    summary:
      'Sign in with a token (form field token): kept in an HttpOnly, Secure, SameSite=Strict cookie for /ui/',
    description:
      "Only from reef's own pages (the Origin header is checked), and over https or on a loopback address. " +
      'The cookie counts for reading pages of the interface only, never for the API.',
    access: { kind: 'public' },
    requestBody: {
      required: true,
      content: { 'application/x-www-form-urlencoded': { schema: obj({ token: str() }) } },
    },
    responses: {
      303: { description: 'to /ui/, signed in' },
      400: htmlPage('needs https'),
      401: htmlPage('not a valid token'),
      403: 'Forbidden',
    },
  },
  {
    method: 'post',
    path: '/ui/sign-out',
    tag: 'ui',
    operationId: 'uiSignOut',
    summary: 'Sign out (the cookie is cleared)',
    access: { kind: 'public' },
    responses: { 303: { description: 'to /ui/' }, 403: 'Forbidden' },
  },
  {
    method: 'get',
    path: '/ui/static/reef.css',
    tag: 'ui',
    operationId: 'uiStylesheet',
    summary: "The interface's stylesheet",
    access: { kind: 'public' },
    responses: {
      200: { description: 'CSS', content: { 'text/css': { schema: str() } } },
      304: 'NotModified',
    },
  },
];

const OPERATIONS: OperationSpec[] = [
  ...UI_OPERATIONS,
  ...ADVISORY_OPERATIONS,
  ...VULNERABILITY_OPERATIONS,
  ...fileOps('get'),
  ...fileOps('head'),
  ...sideFileOps('get'),
  ...sideFileOps('head'),
  {
    method: 'get',
    path: '/keys',
    tag: 'apk',
    operationId: 'listKeyNames',
    summary: 'Names of the keys that sign indexes',
    access: { kind: 'public' },
    responses: { 200: ok('key names', ref('KeyNames')) },
  },
  {
    method: 'get',
    path: '/keys/{keyName}',
    tag: 'apk',
    operationId: 'getKey',
    summary: 'A public signing key (PEM)',
    description: 'Save it under /etc/apk/keys/ with exactly this name.',
    access: { kind: 'public' },
    responses: { 200: pem('the public key'), 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/{repo}/{libc}/{keyName}',
    tag: 'apk',
    operationId: 'getRepoKey',
    summary: 'A public signing key, beside a repository (PEM)',
    access: { kind: 'public' },
    responses: { 200: pem('the public key'), 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/client/reef.mjs',
    tag: 'apk',
    operationId: 'getClient',
    summary: 'The publisher client (publish, verify) as one file for node',
    description:
      'For CI without a checkout of reef: `curl -fsSO <server>/client/reef.mjs && node reef.mjs publish …`. ' +
      '404 CLIENT_NOT_BUILT when the server was started without `npm run build`.',
    access: { kind: 'public' },
    responses: {
      200: {
        description: 'an ES module, its dependencies bundled',
        headers: FILE_HEADERS,
        content: { 'text/javascript': { schema: str() } },
      },
      304: 'NotModified',
      404: 'NotFound',
    },
  },
  {
    method: 'get',
    path: '/healthz',
    tag: 'operations',
    operationId: 'health',
    summary: 'Liveness',
    access: { kind: 'public' },
    responses: { 200: ok('the process answers', ref('Status')) },
  },
  {
    method: 'get',
    path: '/readyz',
    tag: 'operations',
    operationId: 'ready',
    summary: 'Readiness',
    access: { kind: 'public' },
    responses: {
      200: ok('ready to serve', ref('Status')),
      503: ok(
        'starting, shutting down, the database is unavailable, or the data folder cannot be written (`code` says why: STORAGE_READ_ONLY, STORAGE_FULL)',
        ref('Status'),
      ),
    },
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'operations',
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    description:
      'Text exposition format 0.0.4: HTTP, publish and index metrics, and process metrics. ' +
      'Series with a `repo` label of a private repository only for a token that may read it.',
    access: { kind: 'optional' },
    responses: {
      200: { description: 'the metrics', content: { 'text/plain; version=0.0.4': { schema: str() } } },
    },
  },
  {
    method: 'get',
    path: '/api/v1/repos',
    tag: 'packages',
    operationId: 'listRepos',
    summary: 'Repositories and their indexes',
    description: 'Private repositories are listed only for tokens with `<repo>:read`.',
    access: { kind: 'optional' },
    responses: { 200: ok('the repositories', ref('RepoList')) },
  },
  {
    method: 'get',
    path: '/api/v1/repos/{repo}/{libc}/{arch}/packages',
    tag: 'packages',
    operationId: 'listPackages',
    summary: 'Packages of an index, paged',
    access: { kind: 'read' },
    query: pageQuery,
    responses: { 200: ok('one page', ref('PackagePage')), 400: 'BadRequest', 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/api/v1/search',
    tag: 'packages',
    operationId: 'searchPackages',
    summary: 'Search packages by name, description and what they provide (so:, cmd:, pc:), paged',
    description:
      'Case-insensitive substring search over the packages the caller may read (a private repository ' +
      'only with `<repo>:read`). `q` of 1 or 2 characters matches names by their start; an empty `q` ' +
      'lists every package by name. Every character of `q` is literal. Ranked: the exact name, names ' +
      'starting with `q`, other names containing it (each by name), then packages with `q` only in ' +
      'their description or provides, newest first. A page may hold fewer than `limit` packages and ' +
      "still have a `next`: keep paging until `next` is null. The web interface's /ui/search shows the " +
      'same results.',
    access: { kind: 'optional' },
    query: apiSearchQuery,
    responses: { 200: ok('one page', ref('SearchPage')), 400: 'BadRequest' },
  },
  {
    method: 'get',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}',
    tag: 'packages',
    operationId: 'getPackage',
    summary: 'One package: every .PKGINFO field, checksums, size, upload time',
    access: { kind: 'read' },
    responses: { 200: ok('the package', ref('Package')), 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/files',
    tag: 'packages',
    operationId: 'listPackageFiles',
    summary: 'The files a package installs: the entries of its data tar, in archive order, paged',
    description:
      'Paths are as the archive spells them (no leading `/`; a directory may end in `/` and may ' +
      'come more than once). `total` counts every entry. For a package published before reef ' +
      'recorded file lists, the first request reads the list from the stored package. Pass `next` ' +
      'as `after` until it is null.',
    access: { kind: 'read' },
    query: fileListQuery,
    responses: {
      200: ok(
        'one page of the list',
        obj({
          files: arr(
            obj(
              {
                path: str('the entry name in the data tar'),
                type: str(undefined, {
                  enum: ['file', 'directory', 'symlink', 'hardlink', 'chardev', 'blockdev', 'fifo'],
                }),
                mode: int('permission bits, as in the tar header (e.g. 493 = 0o755)'),
                size: int('bytes of a regular file; 0 for other entries'),
                linkTarget: str('what a symlink points to, or the entry a hard link names'),
              },
              ['path', 'type', 'mode', 'size'],
            ),
          ),
          total: int('entries in the whole list'),
          next: orNull(str('an opaque cursor: the `after` of the next page; null on the last page')),
        }),
      ),
      400: 'BadRequest',
      404: 'NotFound',
    },
  },
  ...(['post', 'put'] as const).map(
    (method): OperationSpec => ({
      method,
      path: '/api/v1/repos/{repo}/{libc}/packages',
      tag: 'packages',
      operationId: method === 'post' ? 'publishPackage' : 'publishPackagePut',
      summary: 'Publish a package',
      description:
        'The raw .apk as the body, or a multipart form with the file in field `package`, and ' +
        'optionally `sbom` (SPDX 2.3 or CycloneDX JSON) and `provenance` (a Sigstore bundle with an ' +
        'in-toto SLSA provenance statement, or a melange .attest.tar.gz), checked under the ' +
        "repository's provenance policy. " +
        'The repository is created by its first upload. The answer comes once an index listing ' +
        'the package is live. The same bytes again answer 200; different bytes for an existing ' +
        'name, version and arch answer 409.',
      access: { kind: 'scope', scope: '{repo}:publish' },
      requestBody: {
        required: true,
        content: {
          'application/octet-stream': { schema: str(undefined, { contentMediaType: 'application/vnd.apk' }) },
          'multipart/form-data': {
            schema: obj({
              package: str('the .apk file', { contentMediaType: 'application/vnd.apk' }),
              sbom: str('an SBOM describing the package (optional)'),
              provenance: str(
                'publisher provenance: a Sigstore bundle or a melange .attest.tar.gz (optional)',
              ),
            }),
          },
        },
      },
      responses: {
        201: ok('stored, and an index that lists it is live', ref('PublishResult')),
        200: ok('identical bytes were already stored', ref('PublishResult')),
        400: 'BadRequest',
        409: 'Conflict',
        413: 'TooLarge',
        422: 'Unprocessable',
        507: 'StorageFull',
      },
    }),
  ),
  {
    method: 'delete',
    path: '/api/v1/repos/{repo}/{libc}/{arch}/{name}/{version}',
    tag: 'packages',
    operationId: 'deletePackage',
    summary: 'Delete a package',
    description:
      'Its index is rewritten; an index emptied by deletes stays, signed and empty. The name, version and arch ' +
      'stay reserved to the deleted bytes: only the identical file may be published there again. A noarch ' +
      'package is deleted under `noarch`.',
    access: { kind: 'scope', scope: '{repo}:delete' },
    responses: { 204: { description: 'deleted' }, 404: 'NotFound' },
  },
  {
    method: 'put',
    path: '/api/v1/repos/{repo}',
    tag: 'admin',
    operationId: 'updateRepo',
    summary: 'Repository settings',
    description: 'Creates the repository if needed. Omitted fields keep their value.',
    access: { kind: 'scope', scope: '{repo}:admin' },
    requestBody: {
      required: false,
      content: json(
        schemaOf(repoSettingsBody, {
          private: 'answer 401 to readers without `<repo>:read`',
          maxUploadBytes: 'largest upload for this repository; null = the server default',
          distro:
            'the vendor named by the purls of SBOMs reef generates from now on (`pkg:apk/<id>/…?distro=<id>-<version>`); null = the repository name',
        }),
      ),
    },
    responses: { 200: ok('the settings now', ref('RepoSettings')), 400: 'BadRequest' },
  },
  {
    method: 'post',
    path: '/api/v1/tokens',
    tag: 'admin',
    operationId: 'createToken',
    summary: 'Create a token',
    description: 'The token itself is in this response only; reef keeps its hash.',
    access: { kind: 'scope', scope: '*:admin' },
    requestBody: {
      required: true,
      content: json(
        schemaOf(createTokenBody, {
          name: 'a label for people',
          scopes:
            '`<repo|*>:<read|publish|delete|advise|admin>`, e.g. main:publish; admin implies the others',
          expiresIn: 'lifetime in seconds; omitted = no expiry',
        }),
      ),
    },
    responses: { 201: ok('the new token', ref('TokenCreated')), 400: 'BadRequest' },
  },
  {
    method: 'get',
    path: '/api/v1/tokens',
    tag: 'admin',
    operationId: 'listTokens',
    summary: 'List tokens (never their secrets)',
    access: { kind: 'scope', scope: '*:admin' },
    responses: { 200: ok('the tokens', ref('TokenList')) },
  },
  {
    method: 'delete',
    path: '/api/v1/tokens/{id}',
    tag: 'admin',
    operationId: 'revokeToken',
    summary: 'Revoke a token',
    access: { kind: 'scope', scope: '*:admin' },
    responses: { 204: { description: 'revoked' }, 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/api/v1/keys',
    tag: 'admin',
    operationId: 'listKeys',
    summary: 'The keys that sign indexes, with their public halves',
    access: { kind: 'scope', scope: '*:admin' },
    responses: { 200: ok('the active keys', ref('KeyList')) },
  },
  {
    method: 'post',
    path: '/api/v1/keys',
    tag: 'admin',
    operationId: 'generateKey',
    summary: 'Key rotation, step 1: add a signing key',
    description: 'The new key signs alongside the current ones; every index is re-signed.',
    access: { kind: 'scope', scope: '*:admin' },
    responses: { 201: ok('the new key', ref('KeyCreated')) },
  },
  {
    method: 'post',
    path: '/api/v1/keys/{keyName}/retire',
    tag: 'admin',
    operationId: 'retireKey',
    summary: 'Key rotation, step 2: retire a signing key',
    description: 'The key stops signing; every index is re-signed without it.',
    access: { kind: 'scope', scope: '*:admin' },
    responses: { 200: ok('retired', ref('KeyRetired')), 400: 'BadRequest', 404: 'NotFound' },
  },
  {
    method: 'get',
    path: '/api/v1/repos/{repo}/{libc}/deleted',
    tag: 'admin',
    operationId: 'listDeletedVersions',
    summary: 'Deleted versions, reserved to their bytes',
    description:
      'Every name, version and arch deleted from this repository and libc, with the bytes it stays reserved ' +
      'to: publishing other bytes there (or at a version apk compares equal) answers 409 PUBLISH_VERSION_DELETED.',
    access: { kind: 'scope', scope: '{repo}:admin' },
    query: deletedQuery,
    responses: { 200: ok('one page, by name, version and arch', ref('DeletedPage')), 400: 'BadRequest' },
  },
  {
    method: 'get',
    path: '/api/v1/audit',
    tag: 'admin',
    operationId: 'listAudit',
    summary: 'The audit log of every write, newest first',
    access: { kind: 'scope', scope: '*:admin' },
    query: auditQuery,
    responses: { 200: ok('one page', ref('AuditPage')), 400: 'BadRequest' },
  },
  {
    method: 'get',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/sbom',
    tag: 'sbom',
    operationId: 'getSbom',
    summary: "The package's SBOM, as SPDX 2.3 or CycloneDX 1.6, or as stored",
    description:
      'SPDX that conforms to SPDX 2.3 and its official schema (an embedded or sent document that does not is ' +
      'normalized), CycloneDX 1.6 converted from it (a sent CycloneDX document as sent), or with ' +
      '`format=original` the stored document byte for byte. `X-Reef-Sbom-Source` says where it came from: ' +
      'embedded (melange), uploaded, or generated by reef.',
    access: { kind: 'read' },
    query: sbomQuery,
    responses: { 200: ok('the SBOM', { type: 'object' }), 404: 'NotFound' },
  },
  {
    method: 'put',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/sbom',
    tag: 'sbom',
    operationId: 'attachSbom',
    summary: 'Attach an SBOM (SPDX 2.3 or CycloneDX 1.5/1.6 JSON) to a published package',
    access: { kind: 'scope', scope: '{repo}:publish' },
    requestBody: { required: true, content: json({ type: 'object' }) },
    responses: {
      200: ok('stored', obj({ source: str(), format: str(), specVersion: str(), sha256: str() })),
      404: 'NotFound',
      413: 'TooLarge',
      422: 'Unprocessable',
    },
  },
  {
    method: 'get',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/sbom/diff',
    tag: 'sbom',
    operationId: 'diffSbom',
    summary: 'Components added, removed and changed since another version of the package',
    access: { kind: 'read' },
    query: diffQuery,
    responses: {
      200: ok(
        'the difference',
        obj({
          from: str(),
          to: str(),
          added: arr(ref('Component')),
          removed: arr(ref('Component')),
          changed: arr({ type: 'object' }),
        }),
      ),
      400: 'BadRequest',
      404: 'NotFound',
    },
  },
  {
    method: 'get',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/provenance',
    tag: 'sbom',
    operationId: 'getProvenance',
    summary:
      "reef's signed attestation of the publish (a Sigstore bundle), and the publisher's provenance when sent",
    access: { kind: 'read' },
    responses: {
      200: ok(
        'the attestations',
        obj({ publisher: { type: ['object', 'null'] }, publish: { type: 'object' } }),
      ),
      404: 'NotFound',
    },
  },
  {
    method: 'put',
    path: '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/provenance',
    tag: 'sbom',
    operationId: 'attachProvenance',
    summary: 'Attach publisher provenance to a published package',
    description:
      "A Sigstore bundle (DSSE, in-toto Statement v1, SLSA provenance v1) or melange's .attest.tar.gz " +
      "whose subject is the package's sha256 or datahash. Checked under the repository's policy; reef " +
      'then re-issues its own attestation to record the result. A package has at most one; the same ' +
      'bytes again answer 200, different ones 409.',
    access: { kind: 'scope', scope: '{repo}:publish' },
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { type: 'object' } },
        'application/gzip': { schema: str(undefined, { contentMediaType: 'application/gzip' }) },
      },
    },
    responses: {
      201: ok('stored, with its verification result', { type: 'object' }),
      200: ok('the same provenance was already stored', { type: 'object' }),
      404: 'NotFound',
      409: 'Conflict',
      413: 'TooLarge',
      422: 'Unprocessable',
    },
  },
  {
    method: 'get',
    path: '/api/v1/components',
    tag: 'sbom',
    operationId: 'findComponents',
    summary: 'Which packages contain a component (by name or purl, optionally in a version range)',
    description:
      'Only packages of repositories the caller may read. Ordered by name or purl, then package. ' +
      'A page holds at most `limit` matches. It may hold fewer, even none, while `next` is not null: ' +
      'one request reads at most 20,000 component rows (a version range that matches little of a ' +
      'common component). Pass `next` as `after` until it is null.',
    access: { kind: 'public' },
    query: componentQuery,
    responses: {
      200: ok(
        'the packages',
        obj({
          matches: arr(obj({ package: ref('PackageKey'), component: ref('Component') })),
          next: orNull(str('an opaque cursor: the `after` of the next page; null on the last page')),
        }),
      ),
      400: 'BadRequest',
    },
  },
  {
    method: 'get',
    path: '/api/v1/licenses',
    tag: 'sbom',
    operationId: 'findByLicense',
    summary: 'Packages whose declared licence satisfies (or conflicts with) approved licences',
    description:
      'Only packages of repositories the caller may read. Ordered by licence, then package; ' +
      'pass `next` as `after` for the next page.',
    access: { kind: 'public' },
    query: licenseQuery,
    responses: {
      200: ok(
        'the packages',
        obj({
          expression: str(),
          mode: str(undefined, { enum: ['satisfies', 'conflicts'] }),
          packages: arr({ allOf: [ref('PackageKey'), obj({ license: str('the declared licence (`L:`)') })] }),
          next: orNull(str('an opaque cursor: the `after` of the next page; null on the last page')),
        }),
      ),
      400: 'BadRequest',
    },
  },
  {
    method: 'get',
    path: '/api/v1/sbom/export',
    tag: 'sbom',
    operationId: 'exportSboms',
    summary: 'Every SBOM of a repository as NDJSON (Dependency-Track, GUAC)',
    access: { kind: 'read' },
    query: exportQuery,
    responses: {
      200: {
        description:
          'NDJSON: one SbomExportLine per line (newline-terminated JSON objects), streamed in package id order',
        content: { 'application/x-ndjson': { schema: ref('SbomExportLine') } },
      },
      404: 'NotFound',
    },
  },
  {
    method: 'get',
    path: '/api/v1/openapi.json',
    tag: 'operations',
    operationId: 'openapi',
    summary: 'This document',
    access: { kind: 'public' },
    responses: { 200: ok('OpenAPI 3.1', { type: 'object' }) },
  },
  {
    method: 'get',
    path: '/api/v1/docs',
    tag: 'operations',
    operationId: 'docs',
    summary: 'This document as an HTML page',
    access: { kind: 'public' },
    responses: { 200: { description: 'the page', content: { 'text/html': { schema: str() } } } },
  },
];

const QUERY_DESCRIPTIONS: Record<string, string> = {
  limit: 'page size',
  after: 'the `next` of the previous page',
  before: 'the `next` of the previous page',
  q: 'the text to search for, literally (case-insensitive)',
};

function securityOf(access: Access): Array<Record<string, string[]>> {
  switch (access.kind) {
    case 'public':
      return [];
    case 'optional':
      return [{}, { bearerAuth: [] }, { basicAuth: [] }];
    case 'read':
      // OpenAPI 3.1 allows role names for non-OAuth schemes: the token scope needed.
      return [{}, { bearerAuth: ['{repo}:read'] }, { basicAuth: ['{repo}:read'] }];
    case 'scope':
      return [{ bearerAuth: [access.scope] }, { basicAuth: [access.scope] }];
  }
}

/** The statuses that authentication adds to an operation. */
function authResponses(access: Access): Record<string, string> {
  switch (access.kind) {
    case 'public':
      return {};
    case 'optional':
      return { 401: 'Unauthorized', 429: 'RateLimited' };
    case 'read':
    case 'scope':
      return { 401: 'Unauthorized', 403: 'Forbidden', 429: 'RateLimited' };
  }
}

function operationOf(spec: OperationSpec): OpenApiOperation {
  const parameters: Json[] = [...spec.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    ...PATH_PARAMETERS[name!],
  }));
  if (spec.query) parameters.push(...queryParameters(spec.query, QUERY_DESCRIPTIONS));
  if (spec.tag === 'apk' && spec.path.includes('{arch}')) parameters.push(...REQUEST_HEADERS);
  const all = { ...spec.responses, ...authResponses(spec.access) };
  const responses: Record<string, Json> = {};
  for (const status of Object.keys(all).sort()) {
    const r = all[status]!;
    responses[status] = typeof r === 'string' ? { $ref: `#/components/responses/${r}` } : r;
  }
  const op: OpenApiOperation = {
    tags: [spec.tag],
    operationId: spec.operationId,
    summary: spec.summary,
    security: securityOf(spec.access),
    responses,
  };
  if (spec.description) op.description = spec.description;
  if (parameters.length > 0) op.parameters = parameters;
  if (spec.requestBody) op.requestBody = spec.requestBody;
  return op;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildOpenApiDocument(): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const spec of OPERATIONS) {
    paths[spec.path] ??= {};
    paths[spec.path]![spec.method] = operationOf(spec);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'reef',
      version: packageVersion(),
      description:
        'An apk (Alpine/Wolfi) package repository server. apk clients use the unversioned paths; ' +
        'publishers, auditors and operators use /api/v1. Errors are JSON `{code, message, details?}` ' +
        'with a stable `code`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [
      { name: 'apk', description: 'What apk, apko and melange fetch' },
      { name: 'packages', description: 'Listing, publishing and deleting packages' },
      { name: 'sbom', description: 'SBOMs of every package, and the auditor queries across them' },
      { name: 'advisories', description: 'Security advisories and the feeds scanners read' },
      { name: 'ui', description: 'The web interface (HTML pages for people)' },
      { name: 'admin', description: 'Tokens, keys, repository settings and the audit log' },
      { name: 'operations', description: 'Health, readiness, metrics and this document' },
    ],
    paths,
    components: {
      schemas: structuredClone(SCHEMAS),
      responses: structuredClone(RESPONSES),
      securitySchemes: structuredClone(SECURITY_SCHEMES),
    },
  };
}

/** Serves the document and its HTML rendering; both are built once. */
export function registerOpenApi(app: FastifyInstance): void {
  const doc = buildOpenApiDocument();
  const body = JSON.stringify(doc);
  const html = renderDocsPage(doc);
  app.get('/api/v1/openapi.json', { config: { access: allow.public } }, async (_request, reply) => {
    return reply.type('application/json; charset=utf-8').send(body);
  });
  app.get('/api/v1/docs', { config: { access: allow.public } }, async (_request, reply) => {
    return (
      reply
        .type('text/html; charset=utf-8')
        // The page is static text: forbid everything but its own inline style.
        .header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'")
        .header('X-Content-Type-Options', 'nosniff')
        .send(html)
    );
  });
}

// ---- the HTML page -------------------------------------------------------

export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** Escaped text with `code` spans: the only markup descriptions use. */
function prose(text: unknown): string {
  if (typeof text !== 'string') return '';
  return escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

const METHODS: Method[] = ['get', 'head', 'post', 'put', 'delete'];

function anchorOf(method: string, path: string): string {
  return `${method}-${path}`.replace(/[^A-Za-z0-9_-]+/g, '-');
}

/** A short type for tables: `string`, `integer 1..1000 = 100`, `Package`, `Package[]`. */
function typeOf(schema: Json | undefined): string {
  if (!schema) return '';
  if (typeof schema.$ref === 'string') return schema.$ref.split('/').at(-1)!;
  if (Array.isArray(schema.allOf)) return (schema.allOf as Json[]).map(typeOf).join(' & ');
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as Json[]).map(typeOf).join(' | ');
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : String(schema.type ?? 'any');
  if (schema.type === 'array') return `${typeOf(schema.items as Json)}[]`;
  const facts: string[] = [];
  if (Array.isArray(schema.enum))
    facts.push(`one of ${schema.enum.length > 8 ? 'the listed values' : schema.enum.join(', ')}`);
  if (schema.pattern !== undefined) facts.push(`/${schema.pattern}/`);
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    facts.push(`${schema.minimum ?? ''}..${schema.maximum ?? ''}`);
  }
  if (schema.default !== undefined) facts.push(`default ${JSON.stringify(schema.default)}`);
  return facts.length > 0 ? `${type} (${facts.join('; ')})` : type;
}

function resolve(doc: OpenApiDocument, value: Json): Json {
  const target = value.$ref;
  if (typeof target !== 'string') return value;
  const [, , section, name] = target.split('/');
  const components = doc.components as Record<string, Record<string, Json>>;
  return components[section!]?.[name!] ?? value;
}

function renderParameters(doc: OpenApiDocument, parameters: Json[] | undefined): string {
  if (!parameters?.length) return '';
  const rows = parameters.map((raw) => {
    const p = resolve(doc, raw);
    return `<tr><td><code>${escapeHtml(String(p.name))}</code></td><td>${escapeHtml(String(p.in))}</td><td>${
      p.required ? 'yes' : 'no'
    }</td><td>${escapeHtml(typeOf(p.schema as Json))}</td><td>${prose(p.description)}</td></tr>`;
  });
  return `<h4>Parameters</h4><table><thead><tr><th>name</th><th>in</th><th>required</th><th>type</th><th>description</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderContent(content: unknown): string {
  if (!content || typeof content !== 'object') return '';
  return Object.entries(content as Record<string, Json>)
    .map(([type, media]) => {
      const schema = media.schema as Json | undefined;
      const isInline = schema && schema.$ref === undefined && schema.type === 'object';
      const name = escapeHtml(typeOf(schema));
      const shown = typeof schema?.$ref === 'string' ? `<a href="#schema-${name}">${name}</a>` : name;
      return `<div class="media"><code>${escapeHtml(type)}</code> ${shown}${
        isInline ? `<pre>${escapeHtml(JSON.stringify(schema, null, 2))}</pre>` : ''
      }</div>`;
    })
    .join('');
}

function renderResponses(doc: OpenApiDocument, responses: Record<string, Json>): string {
  const rows = Object.entries(responses).map(([status, raw]) => {
    const r = resolve(doc, raw);
    return `<tr><td class="status s${escapeHtml(status[0] ?? '')}">${escapeHtml(status)}</td><td>${prose(
      r.description,
    )}</td><td>${renderContent(r.content)}</td></tr>`;
  });
  return `<h4>Responses</h4><table><thead><tr><th>status</th><th>description</th><th>body</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderSecurity(security: Array<Record<string, string[]>> | undefined): string {
  if (!security || security.length === 0) return '<p class="auth">No authentication.</p>';
  const optional = security.some((s) => Object.keys(s).length === 0);
  const roles = [...new Set(security.flatMap((s) => Object.values(s).flat()))];
  const what =
    roles.length > 0
      ? `a token with ${roles.map((r) => `<code>${escapeHtml(r)}</code>`).join(', ')}`
      : 'a token';
  return `<p class="auth">${optional ? 'Optional: ' : 'Needs '}${what} (Bearer, or Basic with the token as password)${
    optional && roles.length > 0 ? ' when the repository is private' : ''
  }.</p>`;
}

function renderOperation(doc: OpenApiDocument, path: string, method: Method, op: OpenApiOperation): string {
  const body = op.requestBody ? resolve(doc, op.requestBody) : undefined;
  return `<section class="op" id="${escapeHtml(anchorOf(method, path))}">
<h3><span class="method m-${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h3>
<p class="summary">${prose(op.summary)}</p>
${op.description ? `<p>${prose(op.description)}</p>` : ''}
${renderSecurity(op.security)}
${renderParameters(doc, op.parameters)}
${body ? `<h4>Request body${body.required ? '' : ' (optional)'}</h4>${renderContent(body.content)}` : ''}
${renderResponses(doc, op.responses)}
</section>`;
}

const STYLE = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#fafbfc}
header,main,nav{max-width:1100px;margin:0 auto;padding:0 1.5rem}
h1{margin:1.5rem 0 .25rem}h2{border-bottom:2px solid #d0d7de;margin-top:2.5rem}
.op{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.op h3{margin:.5rem 0;font-size:1.05rem}.summary{margin:.25rem 0;font-weight:600}
.method{display:inline-block;min-width:4.5em;text-align:center;border-radius:4px;color:#fff;font-size:.8rem;padding:.1rem .4rem;margin-right:.4rem}
.m-get{background:#1f6feb}.m-head{background:#6e7781}.m-post{background:#1a7f37}.m-put{background:#9a6700}.m-delete{background:#cf222e}
table{border-collapse:collapse;width:100%;margin:.25rem 0 .75rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
code{font:.85rem ui-monospace,monospace;background:#f6f8fa;padding:0 .2rem;border-radius:3px}
pre{font:.8rem ui-monospace,monospace;background:#f6f8fa;padding:.5rem;overflow:auto;max-height:24rem}
.status{font-weight:700;white-space:nowrap}.s2{color:#1a7f37}.s3{color:#6e7781}.s4{color:#9a6700}.s5{color:#cf222e}
.auth{color:#57606a;font-size:.9rem}nav ul{columns:2;font-size:.9rem}nav a{text-decoration:none}
`;

/** The whole reference as one HTML page: no scripts, no external resources. */
export function renderDocsPage(doc: OpenApiDocument): string {
  const byTag = new Map<string, Array<[string, Method, OpenApiOperation]>>();
  for (const tag of doc.tags) byTag.set(tag.name, []);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag)!.push([path, method, op]);
    }
  }
  const nav = [...byTag.values()]
    .flat()
    .map(
      ([path, method]) =>
        `<li><a href="#${escapeHtml(anchorOf(method, path))}">${method.toUpperCase()} ${escapeHtml(path)}</a></li>`,
    )
    .join('');
  const sections = [...byTag.entries()]
    .filter(([, ops]) => ops.length > 0)
    .map(([tag, ops]) => {
      const description = doc.tags.find((t) => t.name === tag)?.description;
      return `<h2>${escapeHtml(tag)}</h2>${description ? `<p>${prose(description)}</p>` : ''}${ops
        .map(([path, method, op]) => renderOperation(doc, path, method, op))
        .join('\n')}`;
    })
    .join('\n');
  const schemas = Object.entries(doc.components.schemas)
    .map(
      ([name, schema]) =>
        `<section class="op" id="schema-${escapeHtml(name)}"><h3><code>${escapeHtml(name)}</code></h3><pre>${escapeHtml(
          JSON.stringify(schema, null, 2),
        )}</pre></section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(doc.info.title)} API ${escapeHtml(doc.info.version)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(doc.info.title)} API <small>${escapeHtml(doc.info.version)}</small></h1>
<p>${prose(doc.info.description)}</p>
<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI ${escapeHtml(doc.openapi)}).</p></header>
<nav><ul>${nav}</ul></nav>
<main>
${sections}
<h2>schemas</h2>
${schemas}
</main>
</body>
</html>
`;
}
