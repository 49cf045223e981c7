import { CLIENT_COMMANDS } from './client-commands.ts';
import type { Command } from './command.ts';
import {
  dataOptions,
  fsckOptions,
  keyOptions,
  migrateStorageOptions,
  provenanceOptions,
  repoOptions,
  serverOptions,
  tokenOptions,
} from './options.ts';

/** Every command of `reef`, each loaded only when it runs. */
export const COMMANDS: Command[] = [
  {
    name: 'serve',
    summary: 'run the repository server',
    options: serverOptions,
    load: async () => (await import('./serve.ts')).runServe,
  },
  {
    name: 'migrate',
    summary: 'apply database migrations and exit',
    options: serverOptions,
    load: async () => (await import('./migrate.ts')).runMigrate,
  },
  {
    name: 'token',
    summary: 'create, list and revoke API tokens (on the data folder)',
    options: tokenOptions,
    load: async () => (await import('./token.ts')).runToken,
  },
  {
    name: 'repo',
    summary: 'create and list repositories, set their visibility (on the data folder)',
    options: repoOptions,
    load: async () => (await import('./repo.ts')).runRepo,
  },
  {
    name: 'reindex',
    summary: 'rebuild the signed indexes of one repository or all (on the data folder)',
    options: dataOptions,
    load: async () => (await import('./reindex.ts')).runReindex,
  },
  {
    name: 'key',
    summary: 'list, rotate, retire signing keys (through the server); init, restore (on the data folder)',
    options: keyOptions,
    load: async () => (await import('./key.ts')).runKey,
  },
  {
    name: 'provenance',
    summary: 'reverify: check stored unverified publisher provenance again (on the data folder)',
    options: provenanceOptions,
    load: async () => (await import('./provenance.ts')).runProvenance,
  },
  {
    name: 'backup',
    summary: 'copy the data folder consistently while the server runs',
    options: dataOptions,
    load: async () => (await import('./backup.ts')).runBackup,
  },
  {
    name: 'migrate-storage',
    summary: 'copy every blob between the data folder and an object store (server stopped)',
    options: migrateStorageOptions,
    load: async () => (await import('./migrate-storage.ts')).runMigrateStorage,
  },
  {
    name: 'fsck',
    summary: 'verify every blob and index against the database (on the data folder)',
    options: fsckOptions,
    load: async () => (await import('./fsck.ts')).runFsck,
  },
  ...CLIENT_COMMANDS,
];
