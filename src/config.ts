import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { AppError } from './errors.ts';

/**
 * All configuration, read once: defaults < config file (REEF_CONFIG, JSON) <
 * environment < command-line flags. Nothing else reads process.env.
 */

const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Who may sign a repo's publisher provenance, and what it takes (issue 6; README "Provenance policy"). */
const identityRuleSchema = z
  .object({
    subjectAlternativeName: z.string().min(1).optional(),
    subjectAlternativeNameRegex: z.string().min(1).optional(),
    issuer: z.string().min(1),
  })
  .strict()
  .refine((r) => (r.subjectAlternativeName === undefined) !== (r.subjectAlternativeNameRegex === undefined), {
    message: 'give exactly one of subjectAlternativeName and subjectAlternativeNameRegex',
  })
  .refine(
    (r) => {
      if (r.subjectAlternativeNameRegex === undefined) return true;
      try {
        new RegExp(r.subjectAlternativeNameRegex);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'subjectAlternativeNameRegex is not a valid regular expression' },
  );

export const provenancePolicySchema = z
  .object({
    /** off: not verified; record: verified, result stored, accepted either way; require: must verify. */
    mode: z.enum(['off', 'record', 'require']).default('record'),
    /** Publisher public keys (PEM files or inline PEM) that may sign provenance bundles. */
    keys: z.array(z.string().min(1)).default([]),
    /** Keyless signers: certificate SAN (exact or regex) and OIDC issuer. */
    identities: z.array(identityRuleSchema).default([]),
    /** A Sigstore trusted_root.json file, or `public-good` for the root pinned in @sigstore/tuf. */
    trustedRoot: z.string().min(1).optional(),
    tlogThreshold: int(0, 10).default(1),
    ctlogThreshold: int(0, 10).default(1),
    /** Never 0 for identities: a certificate is only checked against a verified timestamp. */
    timestampThreshold: int(1, 10).default(1),
    keyTlogThreshold: int(0, 10).default(0),
    keyTimestampThreshold: int(0, 10).default(0),
    /** The package's own .SIGN.* must verify with one of `packageKeys` (apk RSA keys, by file name). */
    requirePackageSignature: z.boolean().default(false),
    packageKeys: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .refine((p) => p.identities.length === 0 || p.trustedRoot !== undefined, {
    message: 'identities need a trustedRoot (a trusted_root.json file or "public-good")',
  })
  .refine((p) => !p.requirePackageSignature || p.packageKeys.length > 0, {
    message: 'requirePackageSignature needs packageKeys',
  });

export type ProvenancePolicyConfig = z.infer<typeof provenancePolicySchema>;

export const configSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: int(0, 65535).default(8080),
  dataDir: z.string().min(1).default('./data'),
  /** Bootstrap token with every scope; generated and printed at first start when unset. */
  adminToken: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Base URL used in hints and documents; derived from the request when unset. */
  publicUrl: z.url().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Also sign indexes with RSA/SHA-1 (`.SIGN.RSA.`) for clients that lack RSA256 (old go-apk). */
  indexSha1: bool.default(true),
  /** Modulus size of a generated index signing key. */
  keyBits: z.coerce
    .number()
    .pipe(z.union([z.literal(2048), z.literal(3072), z.literal(4096)]))
    .default(4096),
  /** Largest accepted upload in bytes; apk 2 reads S: as 32-bit unsigned. */
  maxUploadBytes: int(1024, 2 ** 32 - 1).default(2 ** 31),
  /**
   * Behind a reverse proxy or load balancer: trust X-Forwarded-For from it, so
   * the audit log and the failed-auth limit see the client's address. `true`,
   * a hop count, or comma-separated addresses/CIDRs of the proxies.
   */
  trustProxy: z
    .union([z.boolean(), z.string()])
    .default(false)
    .transform((v): boolean | number | string[] => {
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'false') return v === 'true';
      if (/^\d+$/.test(v)) return Number(v);
      return v
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
    }),
  /** Memory for caching small packages and indexes (each up to 1 MiB) when serving; 0 turns it off. */
  cacheBytes: int(0, 2 ** 40).default(64 * 2 ** 20),
  /**
   * Longest time to receive one whole request, headers and body (slow-loris
   * uploads): 30 minutes lets a 2 GiB upload through at 1.2 MB/s. 0 turns it off.
   */
  requestTimeoutMs: int(0, 2 ** 31 - 1).default(30 * 60_000),
  /** A connection on which nothing moves this long is closed (stalled uploads, idle clients). */
  idleTimeoutMs: int(100, 2 ** 31 - 1).default(120_000),
  /** Architectures that get an index when a repo holds noarch packages only. */
  defaultArches: z
    .union([z.array(z.string()), z.string().transform((s) => s.split(',').map((a) => a.trim()))])
    .default(['x86_64', 'aarch64']),
  /**
   * Provenance policy per repository (config file only); the key `*` applies
   * to repositories not listed. File paths are relative to the config file.
   */
  provenance: z.record(z.string(), provenancePolicySchema).default({}),
  /**
   * Where the metadata lives: unset, SQLite in the data folder;
   * `postgres://user:password@host:port/database`, a PostgreSQL server that
   * several reef replicas can share. Holds a password: never logged.
   */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\/[^\s]+$/, 'give a postgres:// or postgresql:// URL naming the database')
    .optional(),
  /**
   * With REEF_DATABASE_URL, the private keys live in the database encrypted
   * under this key: 32 random bytes as hex or base64. Prefer the _FILE form
   * (a mounted secret is not in the process environment). Never logged.
   */
  keyEncryptionKey: z.string().optional(),
  keyEncryptionKeyFile: z.string().optional(),
  /** Connections each reef process keeps to PostgreSQL at most. */
  databasePoolSize: int(1, 1000).default(10),
  /**
   * Where package blobs and side documents live: unset, the data folder;
   * `s3://<bucket>[/<prefix>]`, an S3-compatible object store (credentials,
   * region and endpoint from the standard AWS variables).
   */
  blobUrl: z
    .string()
    .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^?#]*)?$/, 'give s3://<bucket>[/<prefix>]')
    .optional(),
  /** Address buckets as <endpoint>/<bucket> (MinIO, Swift, Ceph) rather than <bucket>.<endpoint>. */
  s3PathStyle: bool.default(false),
  /**
   * Answer package downloads with a 302 to a presigned URL of the object
   * store, valid this many seconds; 0 streams them through reef.
   */
  blobRedirectSeconds: int(0, 7 * 24 * 3600).default(0),
  /**
   * How long a replaced index stays in the blob store before it is deleted:
   * a replica may have read the old index's row and still be sending it.
   */
  indexGraceMs: int(0, 7 * 24 * 3600_000).default(10 * 60_000),
  /** Directory that relative paths in the config file are resolved against. */
  configDir: z.string().default('.'),
});

type Settings = z.infer<typeof configSchema>;

/** The object store REEF_BLOB_URL names, with what the standard AWS variables say of it. */
export interface S3Settings {
  bucket: string;
  /** Key prefix, empty or ending in `/`. */
  prefix: string;
  region: string;
  /** AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; unset, AWS itself. */
  endpoint: string | undefined;
  pathStyle: boolean;
  /** Unset: the AWS SDK's own chain (instance role, ~/.aws, …). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
}

export type Config = Settings & { s3: S3Settings | undefined };

/** Environment variable ↔ config key. */
export const ENV_NAMES: Record<keyof Settings, string> = {
  host: 'REEF_HOST',
  port: 'REEF_PORT',
  dataDir: 'REEF_DATA_DIR',
  adminToken: 'REEF_ADMIN_TOKEN',
  publicUrl: 'REEF_PUBLIC_URL',
  logLevel: 'REEF_LOG_LEVEL',
  indexSha1: 'REEF_INDEX_SHA1',
  keyBits: 'REEF_KEY_BITS',
  maxUploadBytes: 'REEF_MAX_UPLOAD_BYTES',
  defaultArches: 'REEF_DEFAULT_ARCHES',
  cacheBytes: 'REEF_CACHE_BYTES',
  requestTimeoutMs: 'REEF_REQUEST_TIMEOUT_MS',
  idleTimeoutMs: 'REEF_IDLE_TIMEOUT_MS',
  trustProxy: 'REEF_TRUST_PROXY',
  provenance: 'provenance',
  configDir: 'configDir',
  databaseUrl: 'REEF_DATABASE_URL',
  databasePoolSize: 'REEF_DATABASE_POOL_SIZE',
  keyEncryptionKey: 'REEF_KEY_ENCRYPTION_KEY',
  keyEncryptionKeyFile: 'REEF_KEY_ENCRYPTION_KEY_FILE',
  blobUrl: 'REEF_BLOB_URL',
  s3PathStyle: 'REEF_S3_PATH_STYLE',
  blobRedirectSeconds: 'REEF_BLOB_REDIRECT_SECONDS',
  indexGraceMs: 'REEF_INDEX_GRACE_MS',
};

export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  flags: Partial<Record<keyof Settings, unknown>> = {},
): Config {
  let file: Record<string, unknown> = {};
  const configPath = env.REEF_CONFIG;
  if (configPath) {
    try {
      file = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (err) {
      throw new AppError(
        'CONFIG_INVALID',
        `cannot read config file ${configPath}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
  const merged: Record<string, unknown> = { ...file };
  if (configPath) merged.configDir = dirname(resolve(configPath));
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    if (!name.startsWith('REEF_')) continue;
    const value = env[name];
    if (value !== undefined && value !== '') merged[key] = value;
  }
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) merged[key] = value;
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const name = ENV_NAMES[key as keyof Settings] ?? key;
    const where = issue.path.length > 1 ? `${name}.${issue.path.slice(1).join('.')}` : name;
    throw new AppError('CONFIG_INVALID', `invalid configuration ${where}: ${issue.message}`);
  }
  if (parsed.data.blobRedirectSeconds > 0 && parsed.data.blobUrl === undefined) {
    throw new AppError(
      'CONFIG_INVALID',
      'invalid configuration REEF_BLOB_REDIRECT_SECONDS: redirects go to an object store; set REEF_BLOB_URL too',
    );
  }
  return {
    ...parsed.data,
    dataDir: resolve(parsed.data.dataDir),
    s3: parsed.data.blobUrl === undefined ? undefined : s3Settings(parsed.data, env),
  };
}

/** REEF_BLOB_URL and the AWS SDK's standard variables, read here as every other setting is. */
function s3Settings(settings: Settings, env: Record<string, string | undefined>): S3Settings {
  const url = new URL(settings.blobUrl!);
  let path: string;
  try {
    path = decodeURIComponent(url.pathname).replace(/^\/+/, '');
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      'invalid configuration REEF_BLOB_URL: its prefix is not valid percent-encoding',
      {
        cause: err,
      },
    );
  }
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
    throw new AppError(
      'CONFIG_INVALID',
      'invalid configuration AWS_ACCESS_KEY_ID: give it together with AWS_SECRET_ACCESS_KEY, or neither',
    );
  }
  return {
    bucket: url.hostname,
    prefix: path === '' || path.endsWith('/') ? path : `${path}/`,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined,
    pathStyle: settings.s3PathStyle,
    credentials:
      accessKeyId && secretAccessKey
        ? {
            accessKeyId,
            secretAccessKey,
            ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
          }
        : undefined,
  };
}
