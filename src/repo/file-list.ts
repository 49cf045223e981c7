import { LRUCache } from 'lru-cache';
import { type ApkFile, type ApkPackage, readApk } from '../apk/read-apk.ts';
import { AppError } from '../errors.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { FileListPage, FileListStore, ListedFile } from '../store/file-list-store.ts';
import type { PackageStore, StoredPackage } from '../store/package-store.ts';
import type { KeyedLock } from './publish.ts';

/**
 * Which files a package installs: the entries of its data tar, recorded at
 * publish. Packages published before reef kept lists get theirs read from
 * the stored .apk the first time someone asks.
 */

export interface FileListDeps {
  store: PackageStore;
  fileLists: FileListStore;
  blobs: BlobStore;
  locks: KeyedLock;
}

/** The data entries readApk reports, as kept (uid, gid, mtime and SHA-1 are not). */
export function* listedFiles(files: Iterable<ApkFile>): Generator<ListedFile> {
  for (const f of files) {
    const file: ListedFile = { path: f.name, type: f.type, mode: f.mode, size: f.size };
    if (f.linkTarget !== undefined) file.linkTarget = f.linkTarget;
    yield file;
  }
}

/** One key for every read of a stored package's list: they run one at a time. */
const READ_LOCK = 'file-list:read';

/**
 * Makes sure the package's list is recorded and returns its length. A
 * package published before lists were kept has its stored .apk read through
 * readApk, the parser and limits every upload passes, and the list stored
 * once, only if the bytes read are the package's (their SHA-256). Reads run
 * one at a time: each holds a whole list in memory (at most the parser's
 * 500,000 entries) and an embedded SBOM (at most 16 MiB), so however many
 * requests ask at once, memory holds one package's.
 */
export async function ensureFileList(deps: FileListDeps, pkg: StoredPackage): Promise<number> {
  const recorded = await deps.fileLists.entryCount(pkg.id);
  if (recorded !== undefined) return recorded;
  // Keyed by the stored bytes' version too: a blob restored from a backup is read again at once.
  const failureKey = `${pkg.sha256} ${(await deps.blobs.version(pkg.sha256)) ?? ''}`;
  const failed = failures.get(failureKey);
  if (failed) throw failed;
  return deps.locks.run(READ_LOCK, async () => {
    // Read by a request that held the lock before this one.
    const meanwhile = await deps.fileLists.entryCount(pkg.id);
    if (meanwhile !== undefined) return meanwhile;
    const again = failures.get(failureKey);
    if (again) throw again;
    let files: ApkFile[];
    try {
      ({ files } = await readStoredApk(deps, pkg));
    } catch (err) {
      if (err instanceof AppError && err.code !== 'PACKAGE_NOT_FOUND') failures.set(failureKey, err);
      throw err;
    }
    const entries = await deps.fileLists.saveRead(pkg.id, pkg.sha256, listedFiles(files));
    // Deleted while it was read; its id may since name another package, whose list this is not.
    if (entries === undefined) throw packageGone(pkg);
    return entries;
  });
}

/**
 * Stored packages (by SHA-256 and version of the stored bytes) whose list
 * could not be read, for a while: a package today's parser refuses, or
 * corrupt bytes, would otherwise be read whole again at every view of its
 * page (a crawler's worth of gigabytes from an object store).
 */
const failures = new LRUCache<string, AppError>({ max: 10_000, ttl: 15 * 60_000 });

/** One page of the package's list (recorded first if need be), and the list's length. */
export async function readFileList(
  deps: FileListDeps,
  pkg: StoredPackage,
  options: { limit: number; afterSeq?: number; withDirectories?: boolean },
): Promise<{ total: number; page: FileListPage }> {
  const total = await ensureFileList(deps, pkg);
  return { total, page: await deps.fileLists.page(pkg.id, options) };
}

async function readStoredApk(deps: FileListDeps, pkg: StoredPackage): Promise<ApkPackage> {
  let apk: ApkPackage;
  try {
    // SECURITY: the stored bytes were a publisher's; they are read as an upload is, streamed
    // and bounded, and never past the size recorded for them.
    apk = await readApk(deps.blobs.read(pkg.sha256), {
      limits: { maxCompressedBytes: pkg.size },
    });
  } catch (err) {
    if ((await deps.store.getById(pkg.id))?.sha256 !== pkg.sha256) throw packageGone(pkg);
    // Accepted when published, refused by today's parser (a rule added since) or unreadable.
    throw new AppError(
      'PACKAGE_FILES_UNREADABLE',
      `the file list of ${pkg.filename} could not be read from the stored package`,
      { cause: err },
    );
  }
  if (apk.sha256 !== pkg.sha256) {
    throw new AppError(
      'STORAGE_CORRUPT',
      `the stored bytes of ${pkg.filename} have SHA-256 ${apk.sha256}, not ${pkg.sha256}`,
    );
  }
  return apk;
}

const packageGone = (pkg: StoredPackage) =>
  new AppError(
    'PACKAGE_NOT_FOUND',
    `${pkg.name}-${pkg.version} (${pkg.arch}) is not in ${pkg.repo}/${pkg.libc} any more`,
  );
