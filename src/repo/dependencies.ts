import { parseDependency } from '../apk/dependency.ts';
import { compareVersions } from '../apk/version.ts';
import {
  type IndexKey,
  type PackageStore,
  relationNames,
  type StoredPackage,
} from '../store/package-store.ts';

/** One `depend` token of a package and what in its index satisfies it. */
export interface ResolvedDependency {
  /** The token as the package declares it (`so:libc.so.6`, `foo>=1.2`, `!bar`). */
  token: string;
  name: string;
  /** `!name`: the package refuses to be installed beside `name`. */
  conflict: boolean;
  /** The newest version of each package named `name` or providing it, in the same index. */
  providers: StoredPackage[];
}

export interface PackageRelations {
  depends: ResolvedDependency[];
  /** Packages of the same index depending on this one's name or on what it provides, newest version of each. */
  dependents: StoredPackage[];
  /** More dependents exist than were read. */
  dependentsTruncated: boolean;
}

/** How many rows one relation lookup reads: enough for any real page, bounded for `so:libc` ones. */
const RELATION_LIMIT = 1000;

/**
 * A package's dependencies resolved the way apk resolves them within one
 * index (by name, or through another package's `provides`), and its reverse
 * dependencies. Other indexes a client also configures may satisfy what is
 * missing here, so an unresolved name is not an error.
 */
export async function resolveRelations(
  store: PackageStore,
  key: IndexKey,
  pkg: StoredPackage,
): Promise<PackageRelations> {
  const depends: ResolvedDependency[] = [];
  for (const token of pkg.depends) {
    const dep = parseDependency(token);
    depends.push({
      token,
      name: dep.name,
      conflict: dep.conflict,
      providers: dep.conflict ? [] : newestOfEach(await store.providersOf(key, dep.name, RELATION_LIMIT)),
    });
  }
  const found = await store.dependentsOf(key, [pkg.name, ...relationNames(pkg.provides)], RELATION_LIMIT);
  return {
    depends,
    dependents: newestOfEach(found.packages.filter((p) => p.name !== pkg.name)),
    dependentsTruncated: found.truncated,
  };
}

/** The newest version of each package name, ordered by name. */
function newestOfEach(packages: StoredPackage[]): StoredPackage[] {
  const newest = new Map<string, StoredPackage>();
  for (const p of packages) {
    const seen = newest.get(p.name);
    if (!seen || compareVersions(p.version, seen.version) > 0) newest.set(p.name, p);
  }
  return [...newest.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
