import type { Statement } from 'better-sqlite3';
import type { SbomComponent, SbomFormat } from '../sbom/types.ts';
import { type Db, statementCache } from './db.ts';
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

function toComponent(r: ComponentRow): SbomComponent {
  const c: SbomComponent = { name: r.name, checksums: JSON.parse(r.checksums) };
  if (r.version !== null) c.version = r.version;
  if (r.purl !== null) c.purl = r.purl;
  if (r.license !== null) c.license = r.license;
  if (r.supplier !== null) c.supplier = r.supplier;
  return c;
}

export class SbomStore {
  private readonly stmt: (sql: string) => Statement;

  constructor(private readonly db: Db) {
    this.stmt = statementCache(db);
  }

  /** Sets a package's SBOM and indexes its components, replacing what was there, in one transaction. */
  save(packageId: number, sbom: NewSbom, now = Date.now()): void {
    this.db.transaction(() => {
      this.stmt('DELETE FROM components WHERE package_id = ?').run(packageId);
      this.stmt(
        `INSERT INTO sboms (package_id, source, format, spec_version, sha256, size, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (package_id) DO UPDATE SET source = excluded.source, format = excluded.format,
           spec_version = excluded.spec_version, sha256 = excluded.sha256, size = excluded.size,
           created_at = excluded.created_at`,
      ).run(packageId, sbom.source, sbom.format, sbom.specVersion, sbom.sha256, sbom.size, now);
      const insert = this.stmt(
        `INSERT INTO components (package_id, name, version, purl, license, supplier, checksums)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const c of sbom.components) {
        insert.run(
          packageId,
          c.name,
          c.version ?? null,
          c.purl ?? null,
          c.license ?? null,
          c.supplier ?? null,
          JSON.stringify(c.checksums),
        );
      }
    })();
  }

  get(packageId: number): StoredSbom | undefined {
    const r = this.stmt('SELECT * FROM sboms WHERE package_id = ?').get(packageId) as SbomRow | undefined;
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

  componentsOf(packageId: number): SbomComponent[] {
    return (
      this.stmt('SELECT * FROM components WHERE package_id = ? ORDER BY name, version').all(
        packageId,
      ) as ComponentRow[]
    ).map(toComponent);
  }

  /** Components by exact name or purl (a purl without `@version` matches every version), in published packages. */
  findComponents(query: { name?: string; purl?: string }, limit: number): ComponentHit[] {
    let where: string;
    let params: unknown[];
    if (query.purl !== undefined) {
      // pkg:type/ns/name matches pkg:type/ns/name@version?qualifiers too.
      where = query.purl.includes('@') ? 'c.purl = ?' : '(c.purl = ? OR c.purl GLOB ?)';
      params = query.purl.includes('@') ? [query.purl] : [query.purl, `${globEscape(query.purl)}@*`];
    } else {
      where = 'c.name = ?';
      params = [query.name];
    }
    const rows = this.stmt(
      `SELECT c.*, p.repo AS p_repo, p.libc AS p_libc, p.arch AS p_arch, p.name AS p_name, p.version AS p_version
       FROM components c JOIN packages p ON p.id = c.package_id
       WHERE ${where} AND p.published_at IS NOT NULL
       ORDER BY p.repo, p.libc, p.arch, p.name, p.id LIMIT ?`,
    ).all(...params, limit) as Array<
      ComponentRow & { p_repo: string; p_libc: Libc; p_arch: string; p_name: string; p_version: string }
    >;
    return rows.map((r) => ({
      component: toComponent(r),
      package: { repo: r.p_repo, libc: r.p_libc, arch: r.p_arch, name: r.p_name, version: r.p_version },
    }));
  }
}

/** GLOB treats * ? [ as wildcards; a purl may contain none of them legitimately, but be exact anyway. */
function globEscape(s: string): string {
  return s.replace(/[*?[]/g, (c) => `[${c}]`);
}
