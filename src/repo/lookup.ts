import { AppError } from '../errors.ts';
import type { IndexKey, PackageStore, StoredPackage } from '../store/package-store.ts';

/**
 * The published package an API path names. A noarch package is listed in
 * every arch's index and downloads under every arch, so `…/x86_64/<name>/<version>`
 * finds it too, as apk would; its own path is `…/noarch/…`.
 */
export async function requirePublishedPackage(
  store: PackageStore,
  key: IndexKey,
  name: string,
  version: string,
): Promise<StoredPackage> {
  const pkg = await store.findListed(key, name, version);
  if (!pkg || pkg.publishedAt === undefined) {
    throw new AppError(
      'PACKAGE_NOT_FOUND',
      `${name}-${version} (${key.arch}) is not in ${key.repo}/${key.libc}`,
    );
  }
  return pkg;
}
