import { parseDependency } from '../apk/dependency.ts';
import { type IndexEntry, renderIndexRecord } from '../apk/index-writer.ts';
import { compareVersions } from '../apk/version.ts';
import { AppError } from '../errors.ts';
import { type Database, type Dialect, isUniqueViolation, jsonListSql, outerFirstJoin } from './database.ts';

/** Packages marked published per statement when an index listing them is recorded. */
const PUBLISH_BATCH = 5000;

/** A package as reef keeps it: what the index needs plus where it came from. */
export interface StoredPackage extends IndexEntry {
  id: number;
  repo: string;
  libc: Libc;
  filename: string;
  sha256: string;
  datahash: string;
  pkginfo: Array<[string, string]>;
  signatures: Array<{ algorithm: string; keyName: string }>;
  uploadedAt: number;
  publishedAt: number | undefined;
}

export type Libc = 'glibc' | 'musl';

/** One package as an index build needs it: its pre-rendered record and what sorts it. */
export interface IndexEntryRow {
  id: number;
  name: string;
  version: string;
  published: boolean;
}

export interface IndexRecordRow {
  id: number;
  name: string;
  version: string;
  arch: string;
  record: string;
  published: boolean;
}

/**
 * One package added to or removed from one index: a row of index_changes
 * (migrations/0017_index_changes.sql), written in the transaction that
 * made `generation` the index's generation.
 */
export interface IndexChange {
  generation: number;
  op: 'add' | 'remove';
  packageId: number;
  /** The package's own arch (a noarch package is listed in every arch's index). */
  arch: string;
  /** Its index record as stored. */
  record: string;
}

/** What serving a package file needs, and nothing more (the download path is hot). */
export interface PackageFile {
  id: number;
  sha256: string;
  size: number;
  uploadedAt: number;
}
export type NewPackage = Omit<StoredPackage, 'id' | 'uploadedAt' | 'publishedAt'>;

export interface StoredProvenance {
  sha256: string;
  size: number;
  format: string;
  verified: boolean;
  result: Record<string, unknown>;
  createdAt: number;
}

export interface IndexKey {
  repo: string;
  libc: Libc;
  arch: string;
}

export interface IndexState extends IndexKey {
  sha256: string | undefined;
  size: number | undefined;
  packageCount: number;
  signedBy: string | undefined;
  builtAt: number | undefined;
  generation: number;
  builtGeneration: number;
}

interface PackageRow {
  id: number;
  repo: string;
  libc: Libc;
  arch: string;
  name: string;
  version: string;
  filename: string;
  sha256: string;
  size: number;
  checksum: string;
  datahash: string;
  installed_size: number;
  description: string;
  url: string;
  license: string;
  origin: string;
  maintainer: string;
  builddate: number | null;
  commit_id: string;
  provider_priority: number | null;
  depends: string;
  provides: string;
  install_if: string;
  index_record: string;
  pkginfo: string;
  signatures: string;
  uploaded_at: number;
  published_at: number | null;
}

interface IndexRow {
  repo: string;
  libc: Libc;
  arch: string;
  sha256: string | null;
  size: number | null;
  package_count: number;
  signed_by: string | null;
  built_at: number | null;
  generation: number;
  built_generation: number;
}

const list = (s: string) => (s ? s.split(' ') : []);

function toIndexEntry(r: PackageRow): IndexEntry {
  return {
    name: r.name,
    version: r.version,
    arch: r.arch,
    checksum: r.checksum,
    size: r.size,
    installedSize: r.installed_size,
    description: r.description,
    url: r.url,
    license: r.license,
    origin: r.origin,
    maintainer: r.maintainer,
    builddate: r.builddate ?? undefined,
    commit: r.commit_id,
    providerPriority: r.provider_priority ?? undefined,
    depends: list(r.depends),
    provides: list(r.provides),
    installIf: list(r.install_if),
  };
}

function toPackage(r: PackageRow): StoredPackage {
  return {
    ...toIndexEntry(r),
    id: r.id,
    repo: r.repo,
    libc: r.libc,
    filename: r.filename,
    sha256: r.sha256,
    datahash: r.datahash,
    pkginfo: JSON.parse(r.pkginfo),
    signatures: JSON.parse(r.signatures),
    uploadedAt: r.uploaded_at,
    publishedAt: r.published_at ?? undefined,
  };
}

function toIndexState(r: IndexRow): IndexState {
  return {
    repo: r.repo,
    libc: r.libc,
    arch: r.arch,
    sha256: r.sha256 ?? undefined,
    size: r.size ?? undefined,
    packageCount: r.package_count,
    signedBy: r.signed_by ?? undefined,
    builtAt: r.built_at ?? undefined,
    generation: r.generation,
    builtGeneration: r.built_generation,
  };
}

/** A deleted name, version and arch: reserved to the bytes once served there. */
export interface DeletedVersion extends IndexKey {
  name: string;
  version: string;
  sha256: string;
  checksum: string;
  deletedAt: number;
}

interface DeletedVersionRow {
  repo: string;
  libc: Libc;
  arch: string;
  name: string;
  version: string;
  sha256: string;
  checksum: string;
  deleted_at: number;
}

function toDeletedVersion(r: DeletedVersionRow): DeletedVersion {
  return {
    repo: r.repo,
    libc: r.libc,
    arch: r.arch,
    name: r.name,
    version: r.version,
    sha256: r.sha256,
    checksum: r.checksum,
    deletedAt: r.deleted_at,
  };
}

/**
 * What holds the slot a package would take (design invariant 4): a stored
 * package, or a deleted version whose bytes the slot stays reserved to.
 */
export type SlotHolder =
  | { kind: 'package'; pkg: StoredPackage }
  | { kind: 'deleted'; deleted: DeletedVersion };

export type InsertResult =
  | { outcome: 'created'; pkg: StoredPackage }
  | { outcome: 'exists'; pkg: StoredPackage }
  | { outcome: 'reserved'; deleted: DeletedVersion };

/**
 * Where a search page ends. In tiers 0 to 2 (names containing the text) the
 * last result's tier, name and id; in tier 3 (the rest, newest first) the id
 * the walk stopped at, a result's or, when the walk ran out of rows to read,
 * the last one read (see searchPage).
 */
export type SearchCursor = { tier: 0 | 1 | 2; name: string; id: number } | { tier: 3; id: number };

/**
 * Matches of the text that a page of tier 3 reads at most, kept or not by the
 * filters (~1 µs each, twice when the page ends short: ~25 ms at most for a
 * word in half of 100,000 packages). A filter that keeps few of a common word's
 * matches (a small repository, a rare arch) would otherwise read all of them
 * for one page, and better-sqlite3 holds the event loop while it reads; the
 * page ends short instead, with a cursor after the last match read.
 */
const MAX_SEARCH_ROWS = 10_000;

/**
 * The search's filters on package_search_rows `r`; the readable repositories
 * as one parameter each (a json_each list cost ~0.5 µs more per match).
 * PostgreSQL types a parameter where it first meets it, and a bare one in
 * IS NULL has none: it gets a cast.
 */
const searchFilterSql = (dialect: Dialect, repoCount: number) => {
  const optional = (name: string) =>
    dialect === 'postgres' ? `CAST(@${name} AS TEXT) IS NULL` : `@${name} IS NULL`;
  return `
  r.repo IN (${Array.from({ length: repoCount }, (_, i) => `@repo${i}`).join(', ')})
  AND (${optional('libc')} OR r.libc = @libc) AND (${optional('arch')} OR r.arch = @arch)`;
};

/** The packages rows of the page's ids `h` (id, tier), joined only once the page is chosen. */
const searchRowsSql = (page: string, order: string) => `
  SELECT p.*, h.tier AS search_tier FROM (${page}) h JOIN packages p ON p.id = h.id
  WHERE p.published_at IS NOT NULL ORDER BY ${order}`;

/**
 * The cursor condition of tiers 0 to 2 on PostgreSQL, which infers no type
 * for a parameter alone in IS NULL, in a row value or under a minus.
 */
const PG_AFTER_NAME_CURSOR = `CAST(@afterTier AS INTEGER) IS NULL
  OR (tier, name, -id) > (CAST(@afterTier AS INTEGER), CAST(@afterName AS TEXT), -CAST(@afterId AS BIGINT))`;

/**
 * Tiers 0 to 2, the packages whose name contains the text, in (tier, name,
 * newest id) order after the cursor. `hits` yields each one's id, name and
 * tier: few, as names are short, so they are ranked and sorted whole.
 */
const searchNamePageSql = (dialect: Dialect, hits: string) =>
  searchRowsSql(
    `SELECT id, name, tier FROM (${hits}) hits
     WHERE ${dialect === 'postgres' ? PG_AFTER_NAME_CURSOR : '@afterTier IS NULL OR (tier, name, -id) > (@afterTier, @afterName, -@afterId)'}
     ORDER BY tier, name, id DESC LIMIT @limit`,
    'h.tier, h.name, h.id DESC',
  );

/**
 * The queries of a search page on one engine. Named parameters: @text (as
 * typed), @prefix (`text%`, LIKE-escaped), @contains (`%text%`, escaped),
 * @match (an FTS5 phrase), the filters', the cursor's, @limit and @maxRows;
 * each engine reads those it needs.
 */
interface SearchSql {
  /** Fewer than 3 characters: names by their start. */
  names(repoCount: number): string;
  /** 3 characters or more, tiers 0 to 2: names containing the text. */
  namesIndexed(repoCount: number): string;
  /** 3 characters or more, tier 3: the other matches, newest first, at most @maxRows read. */
  rest(repoCount: number): string;
  /** Where a walk of tier 3 that read @maxRows matches stopped, or no row when they ran out first. */
  restEnd: string;
}

/**
 * SQLite: FTS5 trigram tables (migrations/0013_package_search.sql,
 * 0015_package_search_names.sql).
 *
 * Tiers 0 to 2 read names from their own trigram index, no further than the
 * names that match, whatever the descriptions hold.
 *
 * Tier 3 walks the text's matches in package_search (names, descriptions,
 * provides) below the cursor's id, newest first, which FTS5 reads in rowid
 * order without a sort, so the walk stops at the page's end; at most
 * @maxRows of them (the inner LIMIT), each kept if the filters pass and its
 * name does not match (tiers 0 to 2 have it). CROSS JOIN keeps the index
 * walk the outer loop.
 *
 * Short text reads a range of package_search_rows_by_name.
 */
const SQLITE_SEARCH: SearchSql = {
  names: (repoCount) =>
    searchNamePageSql(
      'sqlite',
      `
  SELECT r.id, r.name, CASE WHEN r.name = @text COLLATE NOCASE THEN 0 ELSE 1 END AS tier
  FROM package_search_rows r INDEXED BY package_search_rows_by_name
  WHERE r.name LIKE @prefix ESCAPE '\\' AND ${searchFilterSql('sqlite', repoCount)}`,
    ),
  namesIndexed: (repoCount) =>
    searchNamePageSql(
      'sqlite',
      `
  SELECT r.id, r.name,
    CASE WHEN r.name = @text COLLATE NOCASE THEN 0 WHEN r.name LIKE @prefix ESCAPE '\\' THEN 1 ELSE 2 END AS tier
  FROM package_search_names n CROSS JOIN package_search_rows r ON r.id = n.rowid
  WHERE package_search_names MATCH @match AND ${searchFilterSql('sqlite', repoCount)}`,
    ),
  rest: (repoCount) =>
    searchRowsSql(
      `SELECT w.id, 3 AS tier FROM (
       SELECT rowid AS id FROM package_search WHERE package_search MATCH @match AND rowid < @afterId
       ORDER BY rowid DESC LIMIT @maxRows
     ) w CROSS JOIN package_search_rows r ON r.id = w.id
     WHERE ${searchFilterSql('sqlite', repoCount)}
       AND r.id NOT IN (SELECT rowid FROM package_search_names WHERE package_search_names MATCH @match)
     ORDER BY w.id DESC LIMIT @limit`,
      'h.id DESC',
    ),
  restEnd: `
  SELECT rowid AS id FROM package_search WHERE package_search MATCH @match AND rowid < @afterId
  ORDER BY rowid DESC LIMIT 1 OFFSET @maxRows - 1`,
};

/**
 * Tier 3's matches on PostgreSQL: published packages whose description or
 * provides contain the text and whose name does not (a name match is in
 * tiers 0 to 2), found through the trigram indexes package_search_description
 * and package_search_provides. The walk and its end read the same set, so a
 * cursor from one is a place in the other.
 */
const PG_REST_MATCHES = `published_at IS NOT NULL
  AND (description ILIKE @contains OR provides ILIKE @contains) AND NOT name ILIKE @contains
  AND id < @afterId`;

/**
 * The text lowered as SQLite's NOCASE and LIKE lower it (ASCII letters only):
 * under "C", whatever the parameter's collation (migrations/postgres/0015_baseline.sql).
 */
const PG_LOWER_TEXT = 'lower(CAST(@text AS TEXT) COLLATE "C")';

/**
 * PostgreSQL: pg_trgm GIN indexes answering ILIKE (see the package search
 * part of migrations/postgres/0015_baseline.sql), in the same tiers and
 * order as SQLite's. Names are "C" text, so ILIKE on them folds ASCII only,
 * as SQLite's LIKE and NOCASE do.
 */
const PG_SEARCH: SearchSql = {
  names: (repoCount) =>
    searchNamePageSql(
      'postgres',
      `
  SELECT r.id, r.name, CASE WHEN lower(r.name) = ${PG_LOWER_TEXT} THEN 0 ELSE 1 END AS tier
  FROM package_search_rows r
  WHERE lower(r.name) LIKE lower(CAST(@prefix AS TEXT) COLLATE "C") AND ${searchFilterSql('postgres', repoCount)}`,
    ),
  namesIndexed: (repoCount) =>
    searchNamePageSql(
      'postgres',
      `
  SELECT r.id, r.name,
    CASE WHEN lower(r.name) = ${PG_LOWER_TEXT} THEN 0 WHEN r.name ILIKE @prefix THEN 1 ELSE 2 END AS tier
  FROM package_search_rows r
  WHERE r.name ILIKE @contains AND ${searchFilterSql('postgres', repoCount)}`,
    ),
  rest: (repoCount) =>
    searchRowsSql(
      `SELECT r.id, 3 AS tier FROM (
       SELECT id, repo, libc, arch FROM packages WHERE ${PG_REST_MATCHES}
       ORDER BY id DESC LIMIT @maxRows
     ) r
     WHERE ${searchFilterSql('postgres', repoCount)}
     ORDER BY r.id DESC LIMIT @limit`,
      'h.id DESC',
    ),
  restEnd: `
  SELECT id FROM packages WHERE ${PG_REST_MATCHES}
  ORDER BY id DESC LIMIT 1 OFFSET CAST(@maxRows AS BIGINT) - 1`,
};

/**
 * Whether two arches share an index: noarch packages are listed in every
 * arch's index, so noarch and any arch are one slot there.
 */
const SHARED_ARCH_SQL = "(? = 'noarch' OR arch = ? OR arch = 'noarch')";

const REPO_SQL = 'SELECT * FROM repos WHERE name = ?';

export class PackageStore {
  constructor(
    private readonly database: Database,
    /** Arches that get an index when a repo/libc holds only noarch packages. */
    private readonly defaultArches: string[],
  ) {}

  async getById(id: number): Promise<StoredPackage | undefined> {
    const row = await this.database.get<PackageRow>('SELECT * FROM packages WHERE id = ?', [id]);
    return row && toPackage(row);
  }

  async find(key: IndexKey, name: string, version: string): Promise<StoredPackage | undefined> {
    const row = await this.database.get<PackageRow>(
      'SELECT * FROM packages WHERE repo = ? AND libc = ? AND arch = ? AND name = ? AND version = ?',
      [key.repo, key.libc, key.arch, name, version],
    );
    return row && toPackage(row);
  }

  /** The package listed as `name`-`version` in `key`'s index: its own arch's, else a noarch one. */
  async findListed(key: IndexKey, name: string, version: string): Promise<StoredPackage | undefined> {
    // Chosen here rather than by ORDER BY, as in findPublishedFile.
    const rows = await this.database.all<PackageRow>(
      `SELECT * FROM packages WHERE repo = ? AND libc = ? AND name = ? AND version = ?
       AND (arch = ? OR arch = 'noarch')`,
      [key.repo, key.libc, name, version, key.arch],
    );
    const row = rows.find((r) => r.arch !== 'noarch') ?? rows[0];
    return row && toPackage(row);
  }

  /**
   * The package or deleted version holding the slot of `name`-`version` in
   * the indexes `key.arch` is listed in: the same name, a version apk
   * compares equal (`1.0-r0` = `01.0-r0` = `1.0-r00`, apk-tools
   * src/version.c), and an arch sharing an index with it (noarch shares
   * every arch's). An index may then never list two records a client sees
   * as the same package, and a client pinned to a version never gets other
   * bytes than the first ever served under it. A stored package wins over a
   * deleted version; an exact spelling over an equal one.
   */
  async slotHolder(key: IndexKey, name: string, version: string): Promise<SlotHolder | undefined> {
    const args = [key.repo, key.libc, name, key.arch, key.arch];
    const exactFirst = (a: { arch: string; version: string }, b: { arch: string; version: string }) =>
      Number(b.arch === key.arch && b.version === version) -
      Number(a.arch === key.arch && a.version === version);
    const rows = (
      await this.database.all<PackageRow>(
        `SELECT * FROM packages WHERE repo = ? AND libc = ? AND name = ? AND ${SHARED_ARCH_SQL}`,
        args,
      )
    )
      .filter((r) => compareVersions(r.version, version) === 0)
      .sort(exactFirst);
    if (rows[0]) return { kind: 'package', pkg: toPackage(rows[0]) };
    const deleted = (
      await this.database.all<DeletedVersionRow>(
        `SELECT * FROM deleted_versions WHERE repo = ? AND libc = ? AND name = ? AND ${SHARED_ARCH_SQL}`,
        args,
      )
    )
      .filter((r) => compareVersions(r.version, version) === 0)
      .sort(exactFirst);
    return deleted[0] && { kind: 'deleted', deleted: toDeletedVersion(deleted[0]) };
  }

  /** Deleted versions of a repository's libc, reserved to their bytes; paged by (name, version, arch). */
  async listDeletedVersions(
    repo: string,
    libc: Libc,
    limit: number,
    after?: { name: string; version: string; arch: string },
  ): Promise<DeletedVersion[]> {
    const rows = after
      ? await this.database.all<DeletedVersionRow>(
          `SELECT * FROM deleted_versions WHERE repo = ? AND libc = ? AND (name, version, arch) > (?, ?, ?)
           ORDER BY name, version, arch LIMIT ?`,
          [repo, libc, after.name, after.version, after.arch, limit],
        )
      : await this.database.all<DeletedVersionRow>(
          'SELECT * FROM deleted_versions WHERE repo = ? AND libc = ? ORDER BY name, version, arch LIMIT ?',
          [repo, libc, limit],
        );
    return rows.map(toDeletedVersion);
  }

  /** A published package file as apk requests it: under its own arch, or noarch under any arch. */
  async findPublishedFile(key: IndexKey, filename: string): Promise<PackageFile | undefined> {
    // The arch's own build before a noarch one (one slot holds at most one of them since
    // migration 0008; older data may hold both). Chosen here, not by ORDER BY: a sort makes
    // SQLite build a temp B-tree, which costs ~60 µs a query in better-sqlite3 13's SQLite
    // 3.54 (BENCHMARKS.md, "Node 24"), on the path of every package download.
    const rows = await this.database.all<{
      id: number;
      sha256: string;
      size: number;
      uploaded_at: number;
      arch: string;
    }>(
      `SELECT id, sha256, size, uploaded_at, arch FROM packages WHERE repo = ? AND libc = ? AND filename = ?
       AND published_at IS NOT NULL AND (arch = ? OR arch = 'noarch')`,
      [key.repo, key.libc, filename, key.arch],
    );
    const row = rows.find((r) => r.arch !== 'noarch') ?? rows[0];
    return row && { id: row.id, sha256: row.sha256, size: row.size, uploadedAt: row.uploaded_at };
  }

  /**
   * Inserts a package unless that name-version-arch exists; marks every index
   * that lists it dirty in the same transaction, in which `alongside` runs too
   * (so it awaits nothing but statements: no blob or network I/O).
   */
  async insert(
    pkg: NewPackage,
    now = Date.now(),
    alongside?: (created: StoredPackage) => Promise<void>,
  ): Promise<InsertResult> {
    try {
      return await this.database.transact(async (): Promise<InsertResult> => {
        // The slot's check and its insert are one decision across replicas: a second publish of
        // this name waits here until the first commits, then sees its row (slotHolder spans
        // arches and spellings of a version, which no unique key does).
        await this.database.lockForTransaction(`slot:${pkg.repo}/${pkg.libc}/${pkg.name}`);
        return (await this.heldSlot(pkg)) ?? (await this.insertRow(pkg, now, alongside));
      });
    } catch (err) {
      // A writer that took the slot without the lock (an older replica, a copy tool): its row
      // decides as the checked path would have. The transaction (or savepoint) is rolled back.
      if (!isUniqueViolation(err)) throw err;
      const held = await this.heldSlot(pkg);
      if (held === undefined) throw err;
      return held;
    }
  }

  /** What keeps `pkg` out of its slot: a stored package, or a deleted version with other bytes. */
  private async heldSlot(pkg: NewPackage): Promise<InsertResult | undefined> {
    const holder = await this.slotHolder(pkg, pkg.name, pkg.version);
    if (holder?.kind === 'package') return { outcome: 'exists', pkg: holder.pkg };
    // The identical bytes may come back (an undo); nothing else may take a deleted version's slot.
    if (holder?.kind === 'deleted' && holder.deleted.sha256 !== pkg.sha256) {
      return { outcome: 'reserved', deleted: holder.deleted };
    }
    return undefined;
  }

  private async insertRow(
    pkg: NewPackage,
    now: number,
    alongside: ((created: StoredPackage) => Promise<void>) | undefined,
  ): Promise<InsertResult> {
    await this.database.run('INSERT INTO repos (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING', [
      pkg.repo,
      now,
    ]);
    const row = (await this.database.get<PackageRow>(
      `INSERT INTO packages (repo, libc, arch, name, version, filename, sha256, size, checksum, datahash,
           installed_size, description, url, license, origin, maintainer, builddate, commit_id, provider_priority,
           depends, provides, install_if, index_record, pkginfo, signatures, uploaded_at)
         VALUES (@repo, @libc, @arch, @name, @version, @filename, @sha256, @size, @checksum, @datahash,
           @installedSize, @description, @url, @license, @origin, @maintainer, @builddate, @commit, @providerPriority,
           @depends, @provides, @installIf, @indexRecord, @pkginfo, @signatures, @uploadedAt)
         RETURNING *`,
      {
        ...pkg,
        builddate: pkg.builddate ?? null,
        providerPriority: pkg.providerPriority ?? null,
        depends: pkg.depends.join(' '),
        provides: pkg.provides.join(' '),
        installIf: pkg.installIf.join(' '),
        indexRecord: renderIndexRecord(pkg, pkg.arch),
        pkginfo: JSON.stringify(pkg.pkginfo),
        signatures: JSON.stringify(pkg.signatures),
        uploadedAt: now,
      },
    ))!;
    for (const [kind, tokens] of [
      ['depends', pkg.depends],
      ['provides', pkg.provides],
    ] as const) {
      for (const name of relationNames(tokens)) {
        await this.database.run(
          'INSERT INTO package_relations (name, kind, package_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
          [name, kind, row.id],
        );
      }
    }
    await this.markDirty(await this.indexesListing(pkg), 'add', row);
    const created = toPackage(row);
    // What belongs to the package (its SBOM) commits with it, or not at all.
    await alongside?.(created);
    return { outcome: 'created', pkg: created };
  }

  /** Removes a package; returns it and the indexes to rebuild (dirty already), or undefined. */
  remove(
    key: IndexKey,
    name: string,
    version: string,
    now = Date.now(),
  ): Promise<{ pkg: StoredPackage; indexes: IndexKey[]; blobs: string[] } | undefined> {
    return this.removeWhere(
      'SELECT * FROM packages WHERE repo = ? AND libc = ? AND arch = ? AND name = ? AND version = ?',
      [key.repo, key.libc, key.arch, name, version],
      now,
    );
  }

  /**
   * Takes back a package no index has listed yet (a publish whose index could
   * not be written): no version is reserved, since no client saw it.
   * `published` when an index listed it meanwhile; undefined when it is gone.
   */
  async removeUnpublished(
    id: number,
  ): Promise<{ pkg: StoredPackage; indexes: IndexKey[]; blobs: string[] } | 'published' | undefined> {
    const row = await this.database.get<{ published_at: number | null }>(
      'SELECT published_at FROM packages WHERE id = ?',
      [id],
    );
    if (row?.published_at != null) return 'published';
    const removed = await this.removeWhere(
      'SELECT * FROM packages WHERE id = ? AND published_at IS NULL',
      [id],
      undefined,
    );
    if (removed || !row) return removed;
    // Listed between the two reads.
    return 'published';
  }

  /** Deletes the row `select` finds and marks its indexes dirty; `reservedAt` keeps its slot for its bytes. */
  private removeWhere(
    select: string,
    args: unknown[],
    reservedAt: number | undefined,
  ): Promise<{ pkg: StoredPackage; indexes: IndexKey[]; blobs: string[] } | undefined> {
    return this.database.transact(async () => {
      const row = await this.database.get<PackageRow>(select, args);
      if (!row) return undefined;
      const pkg = toPackage(row);
      // Its SBOM and attestation blobs may be collected with the package's own.
      const related = await this.database.all<{ sha256: string }>(
        `SELECT sha256 FROM sboms WHERE package_id = ? UNION SELECT sha256 FROM attestations WHERE package_id = ?
         UNION SELECT sha256 FROM publisher_provenance WHERE package_id = ?`,
        [pkg.id, pkg.id, pkg.id],
      );
      const before = await this.indexesListing(pkg);
      // The package's SBOM, components and attestation go with it (ON DELETE CASCADE).
      await this.database.run('DELETE FROM packages WHERE id = ?', [pkg.id]);
      if (reservedAt !== undefined) {
        // Its slot stays reserved to these bytes (the first delete's time is kept).
        await this.database.run(
          `INSERT INTO deleted_versions (repo, libc, arch, name, version, sha256, checksum, deleted_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
          [pkg.repo, pkg.libc, pkg.arch, pkg.name, pkg.version, pkg.sha256, pkg.checksum, reservedAt],
        );
      }
      const after = await this.indexesListing(pkg);
      const indexes = uniqueKeys([...before, ...after]);
      await this.markDirty(indexes, 'remove', row);
      return { pkg, indexes, blobs: [pkg.sha256, ...related.map((r) => r.sha256)] };
    });
  }

  /** The indexes a package appears in: its arch, or for noarch every arch of its repo/libc. */
  async indexesListing(pkg: IndexKey): Promise<IndexKey[]> {
    const base = { repo: pkg.repo, libc: pkg.libc };
    if (pkg.arch !== 'noarch') return [{ ...base, arch: pkg.arch }];
    return (await this.archesOf(pkg.repo, pkg.libc)).map((arch) => ({ ...base, arch }));
  }

  /**
   * Arches with an index: every index that ever existed (one emptied by
   * deletes stays, signed, so configured clients keep updating), those with
   * arch-specific packages, plus the defaults when noarch ones exist.
   */
  async archesOf(repo: string, libc: Libc): Promise<string[]> {
    const rows = await this.database.all<{ arch: string }>(
      `SELECT DISTINCT arch FROM packages WHERE repo = ? AND libc = ?
       UNION SELECT arch FROM indexes WHERE repo = ? AND libc = ?`,
      [repo, libc, repo, libc],
    );
    const arches = new Set(rows.map((r) => r.arch));
    if (arches.delete('noarch')) for (const a of this.defaultArches) arches.add(a);
    return [...arches].sort();
  }

  /**
   * Moves each index to its next generation and records what that
   * generation changed (index_changes), in the caller's transaction: any
   * process can then build the index's delta from the database.
   */
  private async markDirty(keys: IndexKey[], op: IndexChange['op'], pkg: PackageRow): Promise<void> {
    for (const k of keys) {
      const { generation } = (await this.database.get<{ generation: number }>(
        `INSERT INTO indexes (repo, libc, arch) VALUES (?, ?, ?)
         ON CONFLICT (repo, libc, arch) DO UPDATE SET generation = indexes.generation + 1 RETURNING generation`,
        [k.repo, k.libc, k.arch],
      ))!;
      await this.database.run(
        `INSERT INTO index_changes (repo, libc, arch, generation, op, package_id, package_arch, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [k.repo, k.libc, k.arch, generation, op, pkg.id, pkg.arch, pkg.index_record],
      );
    }
  }

  /**
   * An index's state and the changes since its last recorded build, read
   * together (one snapshot). `changes` leads without a gap from
   * built_generation to generation, in generation order; undefined when a
   * generation has no row (made before index_changes existed) or when
   * there are more than `limit` (a bulk import: a full build reads less).
   */
  indexChangesSinceBuild(
    key: IndexKey,
    limit: number,
  ): Promise<{ state: IndexState | undefined; changes: IndexChange[] | undefined }> {
    return this.database.read(async () => {
      const state = await this.getIndex(key);
      if (!state) return { state, changes: undefined };
      const from = state.builtGeneration;
      const to = state.generation;
      if (to - from > limit) return { state, changes: undefined };
      const rows = await this.database.all<{
        generation: number;
        op: IndexChange['op'];
        package_id: number;
        package_arch: string;
        record: string;
      }>(
        `SELECT generation, op, package_id, package_arch, record FROM index_changes
         WHERE repo = ? AND libc = ? AND arch = ? AND generation > ? AND generation <= ? ORDER BY generation`,
        [key.repo, key.libc, key.arch, from, to],
      );
      const complete = rows.length === to - from && rows.every((r, i) => r.generation === from + 1 + i);
      const changes = rows.map(
        (r): IndexChange => ({
          generation: r.generation,
          op: r.op,
          packageId: r.package_id,
          arch: r.package_arch,
          record: r.record,
        }),
      );
      return { state, changes: complete ? changes : undefined };
    });
  }

  /** Published packages of an index, by name then id, paged by `after` (an id). */
  async listPublished(key: IndexKey, limit: number, afterId = 0): Promise<StoredPackage[]> {
    // Two id-ordered range scans merged (packages_by_index_id), not a sort of the whole index per page.
    const rows =
      key.arch === 'noarch'
        ? await this.database.all<PackageRow>(
            `SELECT * FROM packages WHERE repo = ? AND libc = ? AND arch = 'noarch'
               AND published_at IS NOT NULL AND id > ? ORDER BY id LIMIT ?`,
            [key.repo, key.libc, afterId, limit],
          )
        : await this.database.all<PackageRow>(
            `SELECT * FROM packages WHERE repo = ? AND libc = ? AND arch = ? AND published_at IS NOT NULL AND id > ?
             UNION ALL
             SELECT * FROM packages WHERE repo = ? AND libc = ? AND arch = 'noarch' AND published_at IS NOT NULL AND id > ?
             ORDER BY id LIMIT ?`,
            [key.repo, key.libc, key.arch, afterId, key.repo, key.libc, afterId, limit],
          );
    return rows.map(toPackage);
  }

  /**
   * What an index lists, without the records' text: a full build sorts
   * these, then reads the records a run at a time (indexRecords), so it
   * never holds every record of a large index at once.
   */
  indexEntries(key: IndexKey): Promise<{ entries: IndexEntryRow[]; generation: number }> {
    return this.database.read(async () => {
      const rows = await this.database.all<{
        id: number;
        name: string;
        version: string;
        published_at: number | null;
      }>(
        `SELECT id, name, version, published_at FROM packages
         WHERE repo = ? AND libc = ? AND (arch = ? OR arch = 'noarch')`,
        [key.repo, key.libc, key.arch],
      );
      const entries = rows.map((r) => ({
        id: r.id,
        name: r.name,
        version: r.version,
        published: r.published_at !== null,
      }));
      return { entries, generation: (await this.getIndex(key))?.generation ?? 0 };
    });
  }

  /**
   * The index records of these packages, in no particular order; a package
   * deleted since is missing. A package's record never changes once stored.
   */
  indexRecords(ids: number[]): Promise<Array<{ id: number; arch: string; record: string }>> {
    return this.database.all<{ id: number; arch: string; record: string }>(
      `SELECT id, arch, index_record AS record FROM packages WHERE id IN (${jsonListSql(this.database.dialect, '?', 'bigint')})`,
      [JSON.stringify(ids)],
    );
  }

  /**
   * Every record `key` lists (only the index columns, one query) and the
   * generation they represent, read atomically: what a build from scratch
   * renders, held all at once. The indexer reads indexEntries and
   * indexRecords instead; tests and the one-pass benchmark baseline use this.
   */
  snapshotForIndex(key: IndexKey): Promise<{ records: IndexRecordRow[]; generation: number }> {
    return this.database.read(async () => {
      const rows = await this.database.all<{
        id: number;
        name: string;
        version: string;
        arch: string;
        index_record: string;
        published_at: number | null;
      }>(
        `SELECT id, name, version, arch, index_record, published_at FROM packages
         WHERE repo = ? AND libc = ? AND (arch = ? OR arch = 'noarch')`,
        [key.repo, key.libc, key.arch],
      );
      const records = rows.map((r) => ({
        id: r.id,
        name: r.name,
        version: r.version,
        arch: r.arch,
        record: r.index_record,
        published: r.published_at !== null,
      }));
      return { records, generation: (await this.getIndex(key))?.generation ?? 0 };
    });
  }

  /**
   * Published packages whose name, description or provides (`so:…`, `cmd:…`)
   * contain `text` (case-insensitive), in `repos`. Ranked in tiers: the exact
   * name, names starting with the text, names containing it, by name (then
   * newest upload) within each; then the packages whose description or
   * provides contain it, newest first. Name order rather than bm25 for names:
   * it is stable while packages come and go, so a page's cursor stays
   * meaningful, and a bm25 score of trigrams says little about short fields
   * like these. Newest first for the rest: they can be half of all packages
   * (a word like "library"), and this is the order the index reads them in,
   * so a page costs its own rows, not a sort of every match.
   *
   * Text of 3 characters or more is looked up in the trigram indexes
   * (migrations/0013_package_search.sql, 0015_package_search_names.sql); shorter
   * text matches names only, by their start (a one- or two-letter substring is
   * in most packages, and a trigram index cannot find it); no text at all
   * lists every package by name.
   *
   * A page may end short with a cursor when the filters keep few of the
   * matches (`maxRows`, default MAX_SEARCH_ROWS): the caller asks again from it.
   *
   * A page's queries read one snapshot: other requests run while each is
   * awaited, and a publish between them would move a short page's cursor.
   */
  async searchPage(
    text: string,
    repos: readonly string[],
    filter: { libc?: string; arch?: string },
    page: { limit: number; after?: SearchCursor; maxRows?: number },
  ): Promise<{ packages: StoredPackage[]; next: SearchCursor | undefined }> {
    if (repos.length === 0) return { packages: [], next: undefined };
    // A NUL cannot be in a stored field, and ends an FTS5 string early (a syntax error).
    const needle = text.replaceAll('\0', '');
    const escaped = needle.replace(/[\\%_]/g, (c) => `\\${c}`);
    const after = page.after;
    // SECURITY: user text as one FTS5 string, `"` doubled: every character of it is literal,
    // never an operator, column filter or prefix query (sqlite.org/fts5.html, "FTS5 Strings").
    const phrase = `"${needle.replaceAll('"', '""')}"`;
    const args: Record<string, string | number | null> = {
      text: needle,
      prefix: `${escaped}%`,
      contains: `%${escaped}%`,
      match: phrase,
      libc: filter.libc ?? null,
      arch: filter.arch ?? null,
    };
    repos.forEach((repo, i) => {
      args[`repo${i}`] = repo;
    });
    const indexed = [...needle].length >= 3;
    type Row = PackageRow & { search_tier: number };
    const cursorOf = (row: Row): SearchCursor =>
      row.search_tier === 3
        ? { tier: 3, id: row.id }
        : { tier: row.search_tier as 0 | 1 | 2, name: row.name, id: row.id };
    const search = this.database.dialect === 'postgres' ? PG_SEARCH : SQLITE_SEARCH;
    return this.database.read(async () => {
      const found: Row[] = [];
      if (after === undefined || after.tier !== 3) {
        const sql = indexed ? search.namesIndexed(repos.length) : search.names(repos.length);
        found.push(
          ...(await this.database.all<Row>(sql, {
            ...args,
            afterTier: after?.tier ?? null,
            afterName: after?.name ?? null,
            afterId: after?.id ?? null,
            limit: page.limit + 1,
          })),
        );
      }
      if (indexed && found.length <= page.limit) {
        const rest = {
          match: phrase,
          contains: args.contains!,
          afterId: after?.tier === 3 ? after.id : Number.MAX_SAFE_INTEGER,
          maxRows: page.maxRows ?? MAX_SEARCH_ROWS,
        };
        found.push(
          ...(await this.database.all<Row>(search.rest(repos.length), {
            ...args,
            ...rest,
            limit: page.limit + 1 - found.length,
          })),
        );
        if (found.length <= page.limit) {
          // A short page: the matches ran out, or the walk read maxRows of them first.
          const end = await this.database.get<{ id: number }>(search.restEnd, rest);
          return { packages: found.map(toPackage), next: end && { tier: 3 as const, id: end.id } };
        }
      }
      const packages = found.slice(0, page.limit);
      return {
        packages: packages.map(toPackage),
        next: found.length > page.limit ? cursorOf(packages.at(-1)!) : undefined,
      };
    });
  }

  /** Every version of a package name in one index (its arch and noarch), newest upload first. */
  async versionsOf(key: IndexKey, name: string): Promise<StoredPackage[]> {
    const rows = await this.database.all<PackageRow>(
      `SELECT * FROM packages WHERE repo = ? AND libc = ? AND name = ? AND (arch = ? OR arch = 'noarch')
       AND published_at IS NOT NULL ORDER BY uploaded_at DESC, id DESC LIMIT 200`,
      [key.repo, key.libc, name, key.arch],
    );
    return rows.map(toPackage);
  }

  /**
   * Published packages of one index (its arch and noarch) named `name` or
   * providing it: what apk may install for a dependency on `name`.
   */
  async providersOf(key: IndexKey, name: string, limit: number): Promise<StoredPackage[]> {
    const rows = await this.database.all<PackageRow>(
      `SELECT * FROM packages WHERE id IN (
         SELECT id FROM packages WHERE repo = ? AND libc = ? AND name = ? AND (arch = ? OR arch = 'noarch')
         UNION
         SELECT package_id FROM package_relations WHERE name = ? AND kind = 'provides')
       AND repo = ? AND libc = ? AND (arch = ? OR arch = 'noarch') AND published_at IS NOT NULL
       LIMIT ?`,
      [key.repo, key.libc, name, key.arch, name, key.repo, key.libc, key.arch, limit],
    );
    return rows.map(toPackage);
  }

  /**
   * Published packages of one index (its arch and noarch) that depend on any
   * of `names` (a package's name and what it provides), at most `limit`.
   */
  async dependentsOf(
    key: IndexKey,
    names: readonly string[],
    limit: number,
  ): Promise<{ packages: StoredPackage[]; truncated: boolean }> {
    const seen = new Set<number>();
    const rows = await this.database.all<PackageRow>(
      // Driven from the relation rows without a sort, so the scan stops at the limit.
      // CROSS JOIN keeps package_relations the outer loop (sqlite.org/optoverview.html, "Manual
      // Control Of Query Plans Using CROSS JOIN"): driven from the packages side, the planner
      // scanned the whole index's packages (28 ms at 100,000).
      `SELECT p.* FROM package_relations r ${outerFirstJoin(this.database.dialect)} packages p ON p.id = r.package_id
       WHERE r.name IN (${jsonListSql(this.database.dialect, '?')}) AND r.kind = 'depends'
       AND p.repo = ? AND p.libc = ? AND (p.arch = ? OR p.arch = 'noarch') AND p.published_at IS NOT NULL
       LIMIT ?`,
      [JSON.stringify(names), key.repo, key.libc, key.arch, limit],
    );
    return {
      // A package depending on two of the names comes twice.
      packages: rows.filter((row) => !seen.has(row.id) && seen.add(row.id)).map(toPackage),
      // Counted before duplicates go: the rows read reached the limit, so more may exist.
      truncated: rows.length === limit,
    };
  }

  /** Published packages built from source package `origin`, in `repos`, paged by id. */
  async byOrigin(
    origin: string,
    repos: readonly string[],
    limit: number,
    afterId = 0,
  ): Promise<StoredPackage[]> {
    const rows = await this.database.all<PackageRow>(
      `SELECT * FROM packages WHERE origin = ? AND id > ? AND published_at IS NOT NULL
       AND repo IN (${jsonListSql(this.database.dialect, '?')}) ORDER BY id LIMIT ?`,
      [origin, afterId, JSON.stringify(repos), limit],
    );
    return rows.map(toPackage);
  }

  /** Published packages of a whole repository (every libc and arch), paged by id. */
  async listPublishedInRepo(repo: string, limit: number, afterId = 0): Promise<StoredPackage[]> {
    const rows = await this.database.all<PackageRow>(
      'SELECT * FROM packages WHERE repo = ? AND published_at IS NOT NULL AND id > ? ORDER BY id LIMIT ?',
      [repo, afterId, limit],
    );
    return rows.map(toPackage);
  }

  /**
   * Records a freshly written index and marks the packages it lists as
   * published, in one transaction: from the commit on, clients get the new
   * index and may fetch those packages. An index listing nothing is written
   * and recorded like any other (never removed: clients configured for it
   * would fail `apk update`). The index it replaces is listed for
   * collection (superseded_index_blobs) in the same transaction. Returns
   * false when a build of a newer generation was recorded first.
   */
  recordIndex(
    key: IndexKey,
    generation: number,
    index: {
      sha256: string;
      size: number;
      packageCount: number;
      /** Listed packages not yet marked published (usually the few just uploaded). */
      newIds: number[];
      signedBy: string;
      builtAt: number;
    },
  ): Promise<boolean> {
    return this.database.transact(async () => {
      const previous = await this.getIndex(key);
      // A build of an older generation (another process's, finishing late) must not replace a newer one.
      const applied = await this.database.run(
        `UPDATE indexes SET sha256 = @sha256, size = @size, package_count = @count, signed_by = @signedBy,
           built_at = @builtAt, built_generation = @generation
         WHERE repo = @repo AND libc = @libc AND arch = @arch AND built_generation <= @generation`,
        {
          repo: key.repo,
          libc: key.libc,
          arch: key.arch,
          sha256: index.sha256,
          size: index.size,
          signedBy: index.signedBy,
          builtAt: index.builtAt,
          count: index.packageCount,
          generation,
        },
      );
      if (applied === 0) return false;
      // The index it replaces may be streaming to a client of any replica: collected after a grace.
      if (previous?.sha256 && previous.sha256 !== index.sha256) {
        // After a collection deciding on these bytes, which must see that no index names them now.
        await this.database.lockForTransaction(`index-blob:${previous.sha256}`);
        await this.database.run(
          `INSERT INTO superseded_index_blobs (sha256, superseded_at) VALUES (?, ?)
           ON CONFLICT (sha256) DO UPDATE SET superseded_at = excluded.superseded_at
           WHERE superseded_index_blobs.deleting = 0`,
          [previous.sha256, index.builtAt],
        );
      }
      // What this build shows is no longer a change to apply.
      await this.database.run(
        'DELETE FROM index_changes WHERE repo = ? AND libc = ? AND arch = ? AND generation <= ?',
        [key.repo, key.libc, key.arch, generation],
      );
      // A list per statement: a full build of 100,000 new packages is 20 statements, not 100,000.
      for (let from = 0; from < index.newIds.length; from += PUBLISH_BATCH) {
        await this.database.run(
          `UPDATE packages SET published_at = ?
           WHERE id IN (${jsonListSql(this.database.dialect, '?', 'bigint')}) AND published_at IS NULL`,
          [index.builtAt, JSON.stringify(index.newIds.slice(from, from + PUBLISH_BATCH))],
        );
      }
      return true;
    });
  }

  /**
   * Runs `fn` holding the lock of one index (database.exclusive): one
   * builder per index across every process on the database.
   */
  lockIndex<T>(key: IndexKey, fn: () => Promise<T>): Promise<T> {
    return this.database.exclusive(`index:${key.repo}/${key.libc}/${key.arch}`, fn);
  }

  async getIndex(key: IndexKey): Promise<IndexState | undefined> {
    const row = await this.database.get<IndexRow>(
      'SELECT * FROM indexes WHERE repo = ? AND libc = ? AND arch = ?',
      [key.repo, key.libc, key.arch],
    );
    return row && toIndexState(row);
  }

  async listIndexes(): Promise<IndexState[]> {
    return (await this.database.all<IndexRow>('SELECT * FROM indexes ORDER BY repo, libc, arch')).map(
      toIndexState,
    );
  }

  /**
   * Whether any package, SBOM, attestation or index still uses these bytes,
   * or an index blob awaits its grace under them (blob collection asks).
   */
  async isBlobReferenced(sha256: string): Promise<boolean> {
    return (
      (await this.isNamedByRow(sha256)) ||
      (await this.database.get('SELECT 1 FROM superseded_index_blobs WHERE sha256 = ?', [sha256])) !==
        undefined
    );
  }

  /** Whether a package, SBOM, attestation, publisher provenance or index row names these bytes. */
  private async isNamedByRow(sha256: string): Promise<boolean> {
    return (
      (await this.database.get(
        `SELECT 1 FROM packages WHERE sha256 = ? UNION ALL SELECT 1 FROM sboms WHERE sha256 = ?
         UNION ALL SELECT 1 FROM attestations WHERE sha256 = ?
         UNION ALL SELECT 1 FROM publisher_provenance WHERE sha256 = ?
         UNION ALL SELECT 1 FROM indexes WHERE sha256 = ? LIMIT 1`,
        [sha256, sha256, sha256, sha256, sha256],
      )) !== undefined
    );
  }

  /**
   * Before an index blob is written: lists it among the blobs to collect
   * (superseded_index_blobs, dated now), so whatever becomes of the build
   * its bytes are collected after the grace unless an index row names them
   * by then. False while a collection of the same bytes is deleting them:
   * the caller waits and asks again, then writes them anew.
   */
  reserveIndexBlob(sha256: string, now: number): Promise<boolean> {
    return this.database.transact(async () => {
      // One decision at a time per blob: a collection's claim (claimIndexBlob) or this.
      await this.database.lockForTransaction(`index-blob:${sha256}`);
      const row = await this.database.get<{ deleting: number }>(
        'SELECT deleting FROM superseded_index_blobs WHERE sha256 = ?',
        [sha256],
      );
      if (row && Number(row.deleting) !== 0) return false;
      await this.database.run(
        `INSERT INTO superseded_index_blobs (sha256, superseded_at) VALUES (?, ?)
         ON CONFLICT (sha256) DO UPDATE SET superseded_at = excluded.superseded_at`,
        [sha256, now],
      );
      return true;
    });
  }

  /** Index blobs listed for collection: those past `before`, and those whose deletion began. */
  async indexBlobsToCollect(before: number): Promise<Array<{ sha256: string; deleting: boolean }>> {
    return (
      await this.database.all<{ sha256: string; deleting: number }>(
        `SELECT sha256, deleting FROM superseded_index_blobs WHERE superseded_at <= ? OR deleting <> 0
         ORDER BY sha256`,
        [before],
      )
    ).map((r) => ({ sha256: r.sha256, deleting: Number(r.deleting) !== 0 }));
  }

  /**
   * Decides the fate of an index blob listed since before `before`: 'kept'
   * when a row names its bytes (its listing is dropped: they are in use),
   * 'delete' when nothing does (marked deleting, so no build takes the
   * bytes meanwhile), 'skip' when it was listed again since (a build wrote
   * it again) or is gone.
   */
  claimIndexBlob(sha256: string, before: number): Promise<'kept' | 'delete' | 'skip'> {
    return this.database.transact(async () => {
      await this.database.lockForTransaction(`index-blob:${sha256}`);
      const row = await this.database.get<{ superseded_at: number; deleting: number }>(
        'SELECT superseded_at, deleting FROM superseded_index_blobs WHERE sha256 = ?',
        [sha256],
      );
      if (!row) return 'skip';
      if (Number(row.deleting) !== 0) return 'delete';
      if (Number(row.superseded_at) > before) return 'skip';
      if (await this.isNamedByRow(sha256)) {
        await this.database.run('DELETE FROM superseded_index_blobs WHERE sha256 = ?', [sha256]);
        return 'kept';
      }
      await this.database.run('UPDATE superseded_index_blobs SET deleting = 1 WHERE sha256 = ?', [sha256]);
      return 'delete';
    });
  }

  /** After its blob was deleted: the listing of a claimed index blob goes too. */
  async forgetIndexBlob(sha256: string): Promise<void> {
    await this.database.run('DELETE FROM superseded_index_blobs WHERE sha256 = ? AND deleting <> 0', [
      sha256,
    ]);
  }

  /** The attestation keys that signed the stored attestations (a start must still have one of them). */
  async attestationKeyNames(): Promise<string[]> {
    return (
      await this.database.all<{ key_name: string }>(
        'SELECT DISTINCT key_name FROM attestations ORDER BY key_name',
      )
    ).map((r) => r.key_name);
  }

  /** reef's attestation of a package's publish, if any. */
  async getAttestation(
    packageId: number,
  ): Promise<{ sha256: string; size: number; keyName: string; createdAt: number } | undefined> {
    const r = await this.database.get<{ sha256: string; size: number; key_name: string; created_at: number }>(
      'SELECT * FROM attestations WHERE package_id = ?',
      [packageId],
    );
    return r && { sha256: r.sha256, size: r.size, keyName: r.key_name, createdAt: r.created_at };
  }

  async saveAttestation(
    packageId: number,
    a: { sha256: string; size: number; keyName: string },
    now = Date.now(),
  ): Promise<void> {
    await this.database.run(
      'INSERT INTO attestations (package_id, sha256, size, key_name, created_at) VALUES (?, ?, ?, ?, ?)',
      [packageId, a.sha256, a.size, a.keyName, now],
    );
  }

  /**
   * Replaces reef's attestation (re-issued when publisher provenance arrives
   * later); returns the old blob. Its three statements belong in the caller's
   * transaction.
   */
  async replaceAttestation(
    packageId: number,
    a: { sha256: string; size: number; keyName: string },
  ): Promise<string | undefined> {
    const old = await this.getAttestation(packageId);
    await this.database.run('DELETE FROM attestations WHERE package_id = ?', [packageId]);
    await this.saveAttestation(packageId, a);
    return old?.sha256;
  }

  /** The publisher's provenance of a package, if one was sent. */
  async getProvenance(packageId: number): Promise<StoredProvenance | undefined> {
    const r = await this.database.get<{
      sha256: string;
      size: number;
      format: string;
      verified: number;
      result: string;
      created_at: number;
    }>('SELECT * FROM publisher_provenance WHERE package_id = ?', [packageId]);
    return (
      r && {
        sha256: r.sha256,
        size: r.size,
        format: r.format,
        verified: r.verified === 1,
        result: JSON.parse(r.result),
        createdAt: r.created_at,
      }
    );
  }

  async saveProvenance(
    packageId: number,
    p: { sha256: string; size: number; format: string; verified: boolean; result: unknown },
    now = Date.now(),
  ): Promise<void> {
    await this.database.run(
      `INSERT INTO publisher_provenance (package_id, sha256, size, format, verified, result, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [packageId, p.sha256, p.size, p.format, p.verified ? 1 : 0, JSON.stringify(p.result), now],
    );
  }

  /**
   * Packages whose publisher provenance is stored as unverified, by id, paged
   * (an admin re-evaluates them after a verifier upgrade or a policy change).
   */
  async listUnverifiedProvenance(
    repo: string | undefined,
    limit: number,
    afterId = 0,
  ): Promise<Array<{ pkg: StoredPackage; provenance: StoredProvenance }>> {
    const rows = await this.database.all<
      PackageRow & {
        pp_sha256: string;
        pp_size: number;
        pp_format: string;
        pp_result: string;
        pp_created_at: number;
      }
    >(
      `SELECT p.*, pp.sha256 AS pp_sha256, pp.size AS pp_size, pp.format AS pp_format,
              pp.result AS pp_result, pp.created_at AS pp_created_at
       FROM publisher_provenance pp JOIN packages p ON p.id = pp.package_id
       WHERE pp.verified = 0 AND p.id > @afterId AND (CAST(@repo AS TEXT) IS NULL OR p.repo = @repo)
       ORDER BY p.id LIMIT @limit`,
      { afterId, repo: repo ?? null, limit },
    );
    return rows.map((r) => ({
      pkg: toPackage(r),
      provenance: {
        sha256: r.pp_sha256,
        size: r.pp_size,
        format: r.pp_format,
        verified: false,
        result: JSON.parse(r.pp_result),
        createdAt: r.pp_created_at,
      },
    }));
  }

  /**
   * Marks a package's publisher provenance verified with its new result;
   * false when that document is no longer the package's, or is verified already.
   */
  async markProvenanceVerified(packageId: number, sha256: string, result: unknown): Promise<boolean> {
    return (
      (await this.database.run(
        'UPDATE publisher_provenance SET verified = 1, result = ? WHERE package_id = ? AND sha256 = ? AND verified = 0',
        [JSON.stringify(result), packageId, sha256],
      )) === 1
    );
  }

  /**
   * Runs `fn` in one transaction (several store writes that must land
   * together); `fn` awaits nothing but statements.
   */
  transaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.database.transact(fn);
  }

  /** Runs `fn` in one read-only transaction: every read in it sees the same committed state. */
  snapshot<T>(fn: () => Promise<T>): Promise<T> {
    return this.database.read(fn);
  }

  /** Packages and bytes stored per repository (metrics; one query per scrape). */
  async usageByRepo(): Promise<Array<{ repo: string; packages: number; bytes: number }>> {
    return this.database.all<{ repo: string; packages: number; bytes: number }>(
      'SELECT repo, COUNT(*) AS packages, COALESCE(SUM(size), 0) AS bytes FROM packages GROUP BY repo ORDER BY repo',
    );
  }

  async listRepos(): Promise<RepoInfo[]> {
    return (await this.database.all<RepoRow>('SELECT * FROM repos ORDER BY name')).map(toRepo);
  }

  /** The repository, or REPO_NOT_FOUND. */
  async requireRepo(name: string): Promise<RepoInfo> {
    const repo = await this.getRepo(name);
    if (!repo) throw new AppError('REPO_NOT_FOUND', `no repository named '${name}'`);
    return repo;
  }

  async getRepo(name: string): Promise<RepoInfo | undefined> {
    const row = await this.database.get<RepoRow>(REPO_SQL, [name]);
    return row && toRepo(row);
  }

  /** Creates the repo if needed and applies the given settings (undefined = leave as is). */
  saveRepo(
    name: string,
    settings: { private?: boolean; maxUploadBytes?: number | null; distro?: RepoDistro | null },
    now = Date.now(),
  ): Promise<RepoInfo> {
    return this.database.transact(async () => {
      await this.database.run('INSERT INTO repos (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING', [
        name,
        now,
      ]);
      if (settings.private !== undefined) {
        await this.database.run('UPDATE repos SET private = ? WHERE name = ?', [
          settings.private ? 1 : 0,
          name,
        ]);
      }
      if (settings.maxUploadBytes !== undefined) {
        await this.database.run('UPDATE repos SET max_upload_bytes = ? WHERE name = ?', [
          settings.maxUploadBytes,
          name,
        ]);
      }
      if (settings.distro !== undefined) {
        await this.database.run('UPDATE repos SET distro_id = ?, distro_version = ? WHERE name = ?', [
          settings.distro?.id ?? null,
          settings.distro?.version ?? null,
          name,
        ]);
      }
      // Read in this transaction: what it just saved.
      return (await this.getRepo(name))!;
    });
  }
}

export interface RepoInfo {
  name: string;
  private: boolean;
  /** Overrides REEF_MAX_UPLOAD_BYTES for this repo when set. */
  maxUploadBytes: number | undefined;
  /** The vendor its packages' purls name; unset: the repository's name. */
  distro: RepoDistro | undefined;
  createdAt: number;
}

/**
 * A distribution as os-release names it (`ID`, `VERSION_ID`): the namespace
 * of an apk purl is `id`, its `distro` qualifier `id-version` (or `id`).
 */
export interface RepoDistro {
  id: string;
  version?: string;
}

interface RepoRow {
  name: string;
  private: number;
  max_upload_bytes: number | null;
  distro_id: string | null;
  distro_version: string | null;
  created_at: number;
}

function toRepo(r: RepoRow): RepoInfo {
  return {
    name: r.name,
    private: r.private === 1,
    maxUploadBytes: r.max_upload_bytes ?? undefined,
    distro:
      r.distro_id === null
        ? undefined
        : { id: r.distro_id, ...(r.distro_version === null ? {} : { version: r.distro_version }) },
    createdAt: r.created_at,
  };
}

export function uniqueKeys(keys: IndexKey[]): IndexKey[] {
  const seen = new Map<string, IndexKey>();
  for (const k of keys) seen.set(`${k.repo}\0${k.libc}\0${k.arch}`, k);
  return [...seen.values()];
}

/** The bare names of dependency tokens (operators and versions cut, conflicts left out). */
export function relationNames(tokens: readonly string[]): string[] {
  const names = new Set<string>();
  for (const token of tokens) {
    const dep = parseDependency(token);
    if (!dep.conflict) names.add(dep.name);
  }
  return [...names];
}
