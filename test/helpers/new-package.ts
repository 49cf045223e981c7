import { randomBytes } from 'node:crypto';
import type { NewPackage, PackageStore, StoredPackage } from '../../src/store/package-store.ts';

/** A package row for store-level tests (no .apk behind it): random digests, the rest plain. */
export function newPackage(name: string, version: string, arch: string): NewPackage {
  const sha = randomBytes(32).toString('hex');
  return {
    repo: 'main',
    libc: 'glibc',
    arch,
    name,
    version,
    filename: `${name}-${version}.apk`,
    sha256: sha,
    size: 1234,
    checksum: `Q1${randomBytes(20).toString('base64')}`,
    datahash: sha,
    installedSize: 4096,
    description: `${name}, a store test package`,
    url: 'https://example.org/',
    license: 'MIT',
    origin: name,
    maintainer: '',
    builddate: 1_700_000_000,
    commit: '',
    providerPriority: undefined,
    depends: ['so:libc.so.6'],
    provides: [],
    installIf: [],
    pkginfo: [],
    signatures: [],
  };
}

/** Inserts a row that must be new (store-level tests): the created package. */
export async function insertNew(store: PackageStore, pkg: NewPackage): Promise<StoredPackage> {
  const result = await store.insert(pkg);
  if (result.outcome !== 'created')
    throw new Error(`${pkg.name}-${pkg.version} was not inserted: ${result.outcome}`);
  return result.pkg;
}
