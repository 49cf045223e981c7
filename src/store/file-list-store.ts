import type { TarEntryType } from '../apk/tar-reader.ts';
import type { Database } from './database.ts';

/** One entry of a package's data tar, as reef keeps it. */
export interface ListedFile {
  /** The entry's name as the archive spells it (publisher-controlled: any byte but NUL). */
  path: string;
  type: TarEntryType;
  mode: number;
  size: number;
  linkTarget?: string;
}

/** One page of a list: entries after `afterSeq`, and where the next page starts. */
export interface FileListPage {
  files: Array<ListedFile & { seq: number }>;
  /** The `seq` to pass as `afterSeq` for the next page; undefined on the last. */
  next: number | undefined;
}

interface FileRow {
  seq: number;
  path: string;
  type: TarEntryType;
  mode: number;
  size: number;
  link_target: string | null;
}

function toFile(r: FileRow): ListedFile & { seq: number } {
  const file: ListedFile & { seq: number } = {
    seq: r.seq,
    path: r.path,
    type: r.type,
    mode: r.mode,
    size: r.size,
  };
  if (r.link_target !== null) file.linkTarget = r.link_target;
  return file;
}

/** The entries each package installs (migration 0012), and whether they were recorded. */
export class FileListStore {
  constructor(private readonly database: Database) {}

  /**
   * Records a package's list. Called inside the transaction that inserts the
   * package (PackageStore.insert's `alongside`), so no package is ever
   * visible without its list; its own transaction is then a savepoint.
   */
  save(packageId: number, files: Iterable<ListedFile>, now = Date.now()): Promise<number> {
    return this.database.transact(async () => {
      let seq = 0;
      for (const f of files) {
        await this.database.run(
          `INSERT INTO package_files (package_id, seq, path, type, mode, size, link_target)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
          [packageId, seq++, f.path, f.type, f.mode, f.size, f.linkTarget ?? null],
        );
      }
      await this.database.run(
        'INSERT INTO package_file_lists (package_id, entries, recorded_at) VALUES (?, ?, ?)',
        [packageId, seq, now],
      );
      return seq;
    });
  }

  /**
   * Records the list read back from a stored package published before lists
   * were kept. Only while the package is still the one whose bytes were read
   * (a row id freed by a delete can be reused by the next insert) and has no
   * list yet; returns the list's length, or undefined when it did not record.
   */
  saveRead(packageId: number, sha256: string, files: Iterable<ListedFile>): Promise<number | undefined> {
    return this.database.transact(async () => {
      const current = await this.database.get(
        `SELECT 1 FROM packages WHERE id = ? AND sha256 = ?
         AND NOT EXISTS (SELECT 1 FROM package_file_lists WHERE package_id = ?)`,
        [packageId, sha256, packageId],
      );
      return current === undefined ? undefined : this.save(packageId, files);
    });
  }

  /** How many entries the package's list holds; undefined when no list was recorded. */
  async entryCount(packageId: number): Promise<number | undefined> {
    const row = await this.database.get<{ entries: number }>(
      'SELECT entries FROM package_file_lists WHERE package_id = ?',
      [packageId],
    );
    return row?.entries;
  }

  /**
   * Up to `limit` entries after position `afterSeq` (-1: from the start), in
   * archive order; directories left out when `withDirectories` is false.
   */
  async page(
    packageId: number,
    options: { limit: number; afterSeq?: number; withDirectories?: boolean },
  ): Promise<FileListPage> {
    const after = options.afterSeq ?? -1;
    const rows = await this.database.all<FileRow>(
      options.withDirectories === false
        ? `SELECT seq, path, type, mode, size, link_target FROM package_files
           WHERE package_id = ? AND seq > ? AND type != 'directory' ORDER BY seq LIMIT ?`
        : `SELECT seq, path, type, mode, size, link_target FROM package_files
           WHERE package_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
      [packageId, after, options.limit + 1],
    );
    const files = rows.slice(0, options.limit).map(toFile);
    return { files, next: rows.length > options.limit ? files.at(-1)!.seq : undefined };
  }
}
