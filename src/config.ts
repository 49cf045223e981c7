import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
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
  /** Architectures that get an index when a repo holds noarch packages only. */
  defaultArches: z
    .union([z.array(z.string()), z.string().transform((s) => s.split(',').map((a) => a.trim()))])
    .default(['x86_64', 'aarch64']),
});

export type Config = z.infer<typeof configSchema>;

/** Environment variable ↔ config key. */
export const ENV_NAMES: Record<keyof Config, string> = {
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
  trustProxy: 'REEF_TRUST_PROXY',
};

export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  flags: Partial<Record<keyof Config, unknown>> = {},
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
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[key] = value;
  }
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) merged[key] = value;
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const name = ENV_NAMES[key as keyof Config] ?? key;
    throw new AppError('CONFIG_INVALID', `invalid configuration ${name}: ${issue.message}`);
  }
  return { ...parsed.data, dataDir: resolve(parsed.data.dataDir) };
}
