/**
 * The one error type of reef. Every failure that reaches a user carries a
 * stable `code` (tests and clients match on it) and a `kind`; only the HTTP
 * layer turns a kind into a status code.
 */

export type ErrorKind =
  | 'invalid' // the request or uploaded bytes are malformed
  | 'unprocessable' // well-formed, but violates a rule (libc mismatch, datahash)
  | 'too_large' // a size limit was exceeded
  | 'not_found'
  | 'conflict'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

/** Every code reef can emit, with its kind. Adding a code means adding a line here. */
export const ERROR_CODES = {
  // .apk container (apk3 doc/apk-v2.5.scd)
  APK_EMPTY: 'invalid',
  APK_V3_UNSUPPORTED: 'invalid',
  APK_NOT_GZIP: 'invalid',
  APK_GZIP_CORRUPT: 'invalid',
  APK_TRUNCATED: 'invalid',
  APK_TRAILING_DATA: 'invalid',
  APK_TOO_MANY_MEMBERS: 'invalid',
  APK_TOO_FEW_MEMBERS: 'invalid',
  APK_DATA_MULTIPLE_MEMBERS: 'invalid',
  APK_TOO_LARGE: 'too_large',
  APK_GZIP_BOMB: 'too_large',
  APK_MEMBER_TOO_LARGE: 'too_large',
  // tar dialect (apk2 src/io_archive.c)
  APK_TAR_CORRUPT: 'invalid',
  APK_TAR_BAD_NAME: 'invalid',
  APK_TAR_TOO_MANY_ENTRIES: 'too_large',
  APK_TAR_END_IN_CONTROL: 'invalid',
  APK_TAR_UNALIGNED_MEMBER: 'invalid',
  APK_DUPLICATE_PATH: 'invalid',
  APK_SIGNATURE_MEMBER_INVALID: 'invalid',
  APK_CONTROL_MEMBER_INVALID: 'invalid',
  // .PKGINFO (apk2 src/package.c, apk3 doc/apk-package.5.scd)
  APK_MISSING_PKGINFO: 'invalid',
  APK_PKGINFO_TOO_LARGE: 'too_large',
  APK_PKGINFO_NOT_UTF8: 'invalid',
  APK_PKGINFO_MISSING_KEY: 'invalid',
  APK_PKGINFO_BAD_VALUE: 'invalid',
  APK_PKGINFO_FIELD_TOO_LONG: 'invalid',
  APK_INDEX_RECORD_TOO_LONG: 'invalid',
  APK_INVALID_NAME: 'invalid',
  APK_INVALID_VERSION: 'invalid',
  APK_INVALID_ARCH: 'invalid',
  APK_INVALID_DEPENDENCY: 'invalid',
  APK_DATAHASH_MISMATCH: 'unprocessable',
  APK_SBOM_TOO_LARGE: 'too_large',
  // APKINDEX (apk2 src/app_index.c, src/database.c)
  INDEX_NOT_GZIP: 'invalid',
  INDEX_CORRUPT: 'invalid',
  INDEX_UNSIGNED: 'invalid',
  INDEX_MISSING_APKINDEX: 'invalid',
  INDEX_TOO_LARGE: 'too_large',
  INDEX_BAD_RECORD: 'invalid',
  INDEX_SIGNATURE_INVALID: 'unprocessable',
  // reef never writes an index without a signature
  INDEX_NO_SIGNER: 'internal',
  // SBOMs (issue 5): every defect of a sent or embedded SBOM is a 422
  SBOM_INVALID_JSON: 'unprocessable',
  SBOM_TOO_LARGE: 'unprocessable',
  SBOM_SCHEMA_INVALID: 'unprocessable',
  SBOM_UNKNOWN_FORMAT: 'unprocessable',
  SBOM_WRONG_PACKAGE: 'unprocessable',
  // a sent SPDX document named other than SPDXRef-DOCUMENT (SPDX 2.3 §6.3)
  SBOM_INVALID_SPDXID: 'unprocessable',
  // a sent document's licence value is not an SPDX licence expression
  SBOM_INVALID_LICENSE: 'unprocessable',
  SBOM_NOT_FOUND: 'not_found',
  // too many SBOM bytes held for other uploads at once: retry (503 with Retry-After)
  SBOM_BUSY: 'unavailable',
  // publisher provenance (issue 6): every defect, and every refusal by policy, is a 422
  PROVENANCE_INVALID: 'unprocessable',
  PROVENANCE_TOO_LARGE: 'unprocessable',
  PROVENANCE_SUBJECT_MISMATCH: 'unprocessable',
  PROVENANCE_REQUIRED: 'unprocessable',
  PROVENANCE_UNVERIFIED: 'unprocessable',
  PROVENANCE_EXISTS: 'conflict',
  PACKAGE_SIGNATURE_UNVERIFIED: 'unprocessable',
  // security advisories
  ADVISORY_INVALID: 'invalid',
  ADVISORY_TOO_LARGE: 'too_large',
  ADVISORY_ID_TAKEN: 'conflict',
  ADVISORY_NOT_FOUND: 'not_found',
  // the repository's distro names no ecosystem OSV knows
  ADVISORY_NO_ECOSYSTEM: 'unprocessable',
  // keys
  // no attestation key, yet the database holds attestations: the server does not start
  KEY_ATTESTATION_MISSING: 'unavailable',
  KEY_ENCRYPTION_KEY_WRONG: 'unavailable',
  KEY_INVALID: 'invalid',
  KEY_NOT_FOUND: 'not_found',
  // no active key, yet indexes were signed before: the server does not start
  KEY_NONE_ACTIVE: 'unavailable',
  // publishing and serving
  PUBLISH_LIBC_MISMATCH: 'unprocessable',
  PUBLISH_VERSION_EXISTS: 'conflict',
  PUBLISH_VERSION_DELETED: 'conflict',
  PUBLISH_BAD_REPO: 'invalid',
  PUBLISH_NO_BODY: 'invalid',
  PUBLISH_TOO_LARGE: 'too_large',
  // stored, but its index could not be written, nor the row taken back: listed at the next index build
  PUBLISH_INDEX_PENDING: 'unavailable',
  PACKAGE_NOT_FOUND: 'not_found',
  // a package published before file lists were kept, whose stored .apk today's parser cannot list
  PACKAGE_FILES_UNREADABLE: 'internal',
  // the standalone publisher client was not built beside this server
  CLIENT_NOT_BUILT: 'not_found',
  REPO_NOT_FOUND: 'not_found',
  REPO_EXISTS: 'conflict',
  NOT_FOUND: 'not_found',
  BAD_REQUEST: 'invalid',
  // refused by Node's HTTP parser before any route: 431 and 408
  REQUEST_HEADERS_TOO_LARGE: 'invalid',
  REQUEST_TIMEOUT: 'invalid',
  RANGE_NOT_SATISFIABLE: 'invalid',
  AUTH_REQUIRED: 'unauthorized',
  AUTH_INVALID: 'unauthorized',
  AUTH_FORBIDDEN: 'forbidden',
  AUTH_RATE_LIMITED: 'rate_limited',
  TOKEN_INVALID_SCOPE: 'invalid',
  TOKEN_NOT_FOUND: 'not_found',
  CONFIG_INVALID: 'invalid',
  STORAGE_FULL: 'unavailable',
  // the data folder or the database cannot be written (read-only file system, permissions)
  STORAGE_READ_ONLY: 'unavailable',
  // the object store refused a request or did not answer
  STORAGE_UNAVAILABLE: 'unavailable',
  STORAGE_CORRUPT: 'internal',
  // two databases a copy would join differ in tables or columns (reef migrate-storage)
  STORAGE_SCHEMA_MISMATCH: 'internal',
  // the database a copy would fill holds rows already
  STORAGE_TARGET_NOT_EMPTY: 'conflict',
  INTERNAL: 'internal',
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  /** Extra machine-readable facts for the client (never secrets). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.kind = ERROR_CODES[code];
    this.details = opts.details;
  }
}

export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}
