import type { Command } from './command.ts';
import { advisoriesOptions, publishOptions, verifyOptions } from './options.ts';

/**
 * The commands a publisher's CI needs, in a module of their own: the
 * standalone client (client.ts) bundles these and nothing of the server.
 */
export const CLIENT_COMMANDS: Command[] = [
  {
    name: 'verify',
    summary: "check a package's index, checksums, SBOM, attestation and provenance, offline after download",
    options: verifyOptions,
    load: async () => (await import('./verify.ts')).runVerify,
  },
  {
    name: 'publish',
    summary: 'upload .apk files to a reef server',
    options: publishOptions,
    load: async () => (await import('./publish.ts')).runPublish,
  },
  {
    name: 'advisories',
    summary: "import a Wolfi advisories repository's files into a repository's security advisories",
    options: advisoriesOptions,
    load: async () => (await import('./advisories.ts')).runAdvisories,
  },
];
