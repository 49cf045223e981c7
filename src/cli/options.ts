import type { OptionSpec } from './command.ts';

/**
 * The flags of every command, kept apart from the commands themselves: main
 * needs them all to find the command word, but loads only the command it runs.
 */

/** The server's settings as flags; each is also an environment variable (config.ts has the names). */
export const serverOptions = {
  host: { type: 'string' },
  port: { type: 'string' },
  data: { type: 'string' },
  'public-url': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

/** Only `--data` for the commands that work on a data folder directly. */
export const dataOptions = {
  data: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const fsckOptions = {
  ...dataOptions,
  json: { type: 'boolean' },
  repair: { type: 'boolean' },
  grace: { type: 'string' },
} as const satisfies OptionSpec;

export const migrateStorageOptions = {
  ...dataOptions,
  to: { type: 'string' },
  'to-database': { type: 'string' },
} as const satisfies OptionSpec;

export const provenanceOptions = {
  ...dataOptions,
  'dry-run': { type: 'boolean' },
} as const satisfies OptionSpec;

export const listOptions = { ...dataOptions, json: { type: 'boolean' } } as const satisfies OptionSpec;

export const tokenCreateOptions = {
  ...dataOptions,
  name: { type: 'string' },
  scope: { type: 'string', multiple: true },
  expires: { type: 'string' },
} as const satisfies OptionSpec;

export const tokenOptions = { ...tokenCreateOptions, ...listOptions } as const satisfies OptionSpec;

export const repoCreateOptions = {
  ...dataOptions,
  private: { type: 'boolean' },
  'max-upload-bytes': { type: 'string' },
} as const satisfies OptionSpec;

export const repoOptions = { ...repoCreateOptions, ...listOptions } as const satisfies OptionSpec;

export const publishOptions = {
  url: { type: 'string' },
  provenance: { type: 'string' },
  sbom: { type: 'string' },
  repo: { type: 'string' },
  libc: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const advisoriesOptions = {
  repo: { type: 'string' },
  url: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const keyOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
  data: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const verifyOptions = {
  apk: { type: 'string' },
  'repo-url': { type: 'string' },
  key: { type: 'string', multiple: true },
  'attestation-key': { type: 'string' },
  identity: { type: 'string' },
  'identity-regex': { type: 'string' },
  issuer: { type: 'string' },
  'trusted-root': { type: 'string' },
  'publisher-key': { type: 'string', multiple: true },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;
