import { AppError } from '../errors.ts';
import type { SbomComponent, SbomFormat } from '../sbom/types.ts';
import { type Database, jsonListSql, outerFirstJoin } from './database.ts';
import type { Libc } from './package-store.ts';

/** One package's SBOM as stored: its blob and where it came from. */
export interface StoredSbom {
  packageId: number;
  source: SbomSource;
  format: SbomFormat;
  specVersion: string;
  sha256: string;
  size: number;
  createdAt: number;
}

export type SbomSource = 'embedded' | 'uploaded' | 'generated';

export interface NewSbom {
  source: SbomSource;
  format: SbomFormat;
  specVersion: string;
  sha256: string;
  size: number;
  components: SbomComponent[];
}

/** A component found in a published package's SBOM. */
export interface ComponentHit {
  component: SbomComponent;
  package: { repo: string; libc: Libc; arch: string; name: string; version: string };
}

interface SbomRow {
  package_id: number;
  source: SbomSource;
  format: SbomFormat;
  spec_version: string;
  sha256: string;
  size: number;
  created_at: number;
}

interface ComponentRow {
  name: string;
  version: string | null;
  purl: string | null;
  license: string | null;
  supplier: string | null;
  checksums: string;
}

interface PackagedComponentRow extends ComponentRow {
  id: number;
  package_id: number;
  p_repo: string;
  p_libc: Libc;
  p_arch: string;
  p_name: string;
  p_version: string;
}

function toComponent(r: ComponentRow): SbomComponent {
  const c: SbomComponent = { name: r.name, checksums: JSON.parse(r.checksums) };
  if (r.version !== null) c.version = r.version;
  if (r.purl !== null) c.purl = r.purl;
  if (r.license !== null) c.license = r.license;
  if (r.supplier !== null) c.supplier = r.supplier;
  return c;
}

export class SbomStore {
  constructor(private readonly database: Database) {}

  /** Sets a package's SBOM and indexes its components, replacing what was there, in one transaction. */
  save(packageId: number, sbom: NewSbom, now = Date.now()): Promise<void> {
    return this.database.transact(async () => {
      await this.database.run('DELETE FROM components WHERE package_id = ?', [packageId]);
      await this.database.run(
        `INSERT INTO sboms (package_id, source, format, spec_version, sha256, size, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (package_id) DO UPDATE SET source = excluded.source, format = excluded.format,
           spec_version = excluded.spec_version, sha256 = excluded.sha256, size = excluded.size,
           created_at = excluded.created_at`,
        [packageId, sbom.source, sbom.format, sbom.specVersion, sbom.sha256, sbom.size, now],
      );
      for (const c of sbom.components) {
        await this.database.run(
          `INSERT INTO components (package_id, name, version, purl, license, supplier, checksums)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
          [
            packageId,
            c.name,
            c.version ?? null,
            c.purl ?? null,
            c.license ?? null,
            c.supplier ?? null,
            JSON.stringify(c.checksums),
          ],
        );
      }
    });
  }

  async get(packageId: number): Promise<StoredSbom | undefined> {
    const r = await this.database.get<SbomRow>('SELECT * FROM sboms WHERE package_id = ?', [packageId]);
    return (
      r && {
        packageId: r.package_id,
        source: r.source,
        format: r.format,
        specVersion: r.spec_version,
        sha256: r.sha256,
        size: r.size,
        createdAt: r.created_at,
      }
    );
  }

  async componentsOf(packageId: number): Promise<SbomComponent[]> {
    return (
      await this.database.all<ComponentRow>(
        'SELECT * FROM components WHERE package_id = ? ORDER BY name, version',
        [packageId],
      )
    ).map(toComponent);
  }

  /**
   * One page of components found by exact name or purl (a purl without `@version`
   * matches every version), in published packages of `repos`, in index order:
   * (name or purl, package id, component id). Rows that `accept` refuses (a
   * version constraint) are skipped and reading goes on, so a page is only short
   * when the matches have run out. Each range is walked in the order of its
   * index (components_by_name / components_by_purl), so a page costs what it
   * reads, not what matches in total. A range is read in batches, each
   * resuming after the last row read: a batch is what the page still needs
   * if every row is accepted, and grows while `accept` refuses rows.
   */
  async findComponents(
    query: { name?: string; purl?: string },
    page: {
      repos: readonly string[];
      limit: number;
      after?: ComponentCursor;
      /** Decides on version and purl alone, before the rest of the row is decoded. */
      accept?: (component: Pick<SbomComponent, 'version' | 'purl'>) => boolean;
      /**
       * Rows read at most (matching `accept` or not) before the page ends, short, with
       * a cursor after the last row read: one request never holds the server for long.
       */
      maxRows?: number;
    },
  ): Promise<{ hits: ComponentHit[]; next: ComponentCursor | undefined }> {
    const maxRows = page.maxRows ?? MAX_COMPONENT_ROWS;
    const ranges = componentRanges(query);
    let first = 0;
    if (page.after !== undefined) {
      const key = page.after.key;
      first = ranges.findIndex((r) => (r.kind === 'equal' ? key === r.value : key.startsWith(r.prefix)));
      if (first < 0) throw new AppError('BAD_REQUEST', 'the cursor `after` belongs to another query');
    }
    const repos = JSON.stringify(page.repos);
    const found: Array<{ hit: ComponentHit; cursor: ComponentCursor }> = [];
    let read = 0;
    let lastRead: ComponentCursor | undefined;
    for (let i = first; i < ranges.length && found.length <= page.limit && read < maxRows; i++) {
      const range = ranges[i]!;
      const column = range.column;
      let after = i === first ? page.after : undefined;
      let batch = 0;
      for (let done = false; !done; ) {
        batch = Math.min(maxRows - read, Math.max(page.limit + 1 - found.length, batch * 4));
        const rows = await this.componentRows(range, after, repos, batch);
        done = rows.length < batch;
        for (const row of rows) {
          read++;
          lastRead = { key: row[column]!, packageId: row.package_id, id: row.id };
          if (
            page.accept &&
            !page.accept({ version: row.version ?? undefined, purl: row.purl ?? undefined })
          ) {
            if (read >= maxRows) {
              done = true;
              break;
            }
            continue;
          }
          const component = toComponent(row);
          found.push({
            hit: {
              component,
              package: {
                repo: row.p_repo,
                libc: row.p_libc,
                arch: row.p_arch,
                name: row.p_name,
                version: row.p_version,
              },
            },
            cursor: lastRead,
          });
          if (found.length > page.limit || read >= maxRows) {
            done = true;
            break;
          }
        }
        after = lastRead;
      }
    }
    if (found.length > page.limit) {
      const kept = found.slice(0, page.limit);
      return { hits: kept.map((f) => f.hit), next: kept.at(-1)!.cursor };
    }
    // Out of budget: a short page (maybe empty), resumed after the last row read.
    return { hits: found.map((f) => f.hit), next: read >= maxRows ? lastRead : undefined };
  }

  /** Up to `limit` rows of one range after `after`, in the order of its index. */
  private componentRows(
    range: ComponentRange,
    after: ComponentCursor | undefined,
    repos: string,
    limit: number,
  ): Promise<PackagedComponentRow[]> {
    const column = range.column;
    // CROSS JOIN keeps components as the outer loop: the index order is the page order.
    const select = `SELECT c.*, p.repo AS p_repo, p.libc AS p_libc, p.arch AS p_arch, p.name AS p_name,
         p.version AS p_version
       FROM components c ${outerFirstJoin(this.database.dialect)} packages p ON p.id = c.package_id`;
    const visible = `p.published_at IS NOT NULL AND p.repo IN (${jsonListSql(this.database.dialect, '?')})`;
    return range.kind === 'equal'
      ? this.database.all<PackagedComponentRow>(
          `${select} WHERE c.${column} = ? AND (c.package_id, c.id) > (?, ?) AND ${visible}
           ORDER BY c.package_id, c.id LIMIT ?`,
          [range.value, after?.packageId ?? 0, after?.id ?? 0, repos, limit],
        )
      : this.database.all<PackagedComponentRow>(
          `${select} WHERE (c.${column}, c.package_id, c.id) > (?, ?, ?) AND c.${column} < ? AND ${visible}
           ORDER BY c.${column}, c.package_id, c.id LIMIT ?`,
          [after?.key ?? range.prefix, after?.packageId ?? 0, after?.id ?? 0, range.end, repos, limit],
        );
  }

  /**
   * Every distinct declared licence of a published package, in SQLite's order.
   * A skip scan of packages_by_license: one index seek per distinct licence
   * (hundreds), not a read of every package (a million).
   */
  async publishedLicenses(): Promise<string[]> {
    return (
      await this.database.all<{ license: string }>(
        `WITH RECURSIVE l(license) AS (
           SELECT MIN(license) FROM packages WHERE published_at IS NOT NULL
           UNION ALL
           SELECT (SELECT MIN(license) FROM packages WHERE published_at IS NOT NULL AND license > l.license)
           FROM l WHERE l.license IS NOT NULL
         )
         SELECT license FROM l WHERE license IS NOT NULL`,
      )
    ).map((r) => r.license);
  }

  /**
   * One page of the published packages of `repos` whose declared licence is one
   * of `licenses`, in (licence, id) order: the rest of the cursor's licence,
   * then the licences after it, each a range of packages_by_license.
   */
  async findByLicense(
    licenses: readonly string[],
    page: { repos: readonly string[]; limit: number; after?: LicenseCursor },
  ): Promise<{ packages: LicensedPackage[]; next: LicenseCursor | undefined }> {
    const columns = 'id, repo, libc, arch, name, version, license';
    // PostgreSQL infers no type for a parameter first met alone in IS NULL.
    const after = this.database.dialect === 'postgres' ? 'CAST(@after AS TEXT) IS NULL' : '@after IS NULL';
    const visible = `published_at IS NOT NULL AND repo IN (${jsonListSql(this.database.dialect, '@repos')})`;
    const repos = JSON.stringify(page.repos);
    const rows: Array<LicensedPackage & { id: number }> = [];
    if (page.after !== undefined) {
      rows.push(
        ...(await this.database.all<(typeof rows)[number]>(
          `SELECT ${columns} FROM packages WHERE license = @license AND id > @id AND ${visible}
           ORDER BY id LIMIT @limit`,
          { license: page.after.license, id: page.after.id, repos, limit: page.limit + 1 },
        )),
      );
    }
    if (rows.length <= page.limit) {
      // A row-value bound (license, id) > (?, ?) would be a filter here, not a seek:
      // the licences after the cursor's are chosen before the IN list is walked.
      rows.push(
        ...(await this.database.all<(typeof rows)[number]>(
          `SELECT ${columns} FROM packages
           WHERE license IN (${jsonListSql(this.database.dialect, '@licenses')} WHERE ${after} OR value > @after)
             AND ${visible}
           ORDER BY license, id LIMIT @limit`,
          {
            licenses: JSON.stringify(licenses),
            after: page.after?.license ?? null,
            repos,
            limit: page.limit + 1 - rows.length,
          },
        )),
      );
    }
    const kept = rows.slice(0, page.limit);
    const last = kept.at(-1);
    return {
      packages: kept.map(({ id: _, ...p }) => p),
      next: rows.length > page.limit && last ? { license: last.license, id: last.id } : undefined,
    };
  }
}

/** Where a page of components ended: the index key of its last row. */
/**
 * Component rows one request reads at most (~0.2 s). A version range that
 * matches little of a component most packages have (glibc) would otherwise
 * read all of its rows in one go (810,000 rows, 8 s, at a million packages),
 * and better-sqlite3 holds the event loop while it reads.
 */
const MAX_COMPONENT_ROWS = 20_000;

export interface ComponentCursor {
  /** The name or purl of the last row, whichever the query searched by. */
  key: string;
  packageId: number;
  id: number;
}

/** Where a page of licensed packages ended. */
export interface LicenseCursor {
  license: string;
  id: number;
}

/** A published package and its declared licence (`L:`). */
export interface LicensedPackage {
  repo: string;
  libc: Libc;
  arch: string;
  name: string;
  version: string;
  license: string;
}

type ComponentRange =
  | { kind: 'equal'; column: 'name' | 'purl'; value: string }
  /** Every value starting with `prefix`: the index range [prefix, end). */
  | { kind: 'prefix'; column: 'purl'; prefix: string; end: string };

/**
 * The index ranges a query reads, in key order. A purl without a version is
 * itself, then pkg:type/ns/name@… (`@` is percent-encoded anywhere else in a
 * purl, so it ends the name); the second range is a prefix range rather than
 * a GLOB so that pkg:…/glibc-dev@… is never read for pkg:…/glibc.
 */
function componentRanges(query: { name?: string; purl?: string }): ComponentRange[] {
  if (query.purl === undefined) return [{ kind: 'equal', column: 'name', value: query.name ?? '' }];
  if (query.purl.includes('@')) return [{ kind: 'equal', column: 'purl', value: query.purl }];
  // Under SQLite's BINARY order, the strings starting with `X@` are exactly those in [`X@`, `XA`).
  return [
    { kind: 'equal', column: 'purl', value: query.purl },
    { kind: 'prefix', column: 'purl', prefix: `${query.purl}@`, end: `${query.purl}A` },
  ];
}
