import type { Statement } from 'better-sqlite3';
import type { Advisory, AdvisoryDocument } from '../advisory/document.ts';
import { AppError } from '../errors.ts';
import type { Database } from './database.ts';
import { type Db, statementCache, writingDb } from './db.ts';
import { sqliteOf } from './sqlite-database.ts';

/** A package's advisories as stored, with when they last changed. */
export interface StoredAdvisories extends AdvisoryDocument {
  repo: string;
  updatedAt: number;
}

interface AdvisoryRow {
  repo: string;
  origin: string;
  advisory_id: string;
  aliases: string;
  events: string;
  updated_at: number;
}

function toAdvisory(r: AdvisoryRow): Advisory {
  const aliases = JSON.parse(r.aliases) as string[];
  return { id: r.advisory_id, ...(aliases.length > 0 ? { aliases } : {}), events: JSON.parse(r.events) };
}

/** Rows of one origin (ordered by position) grouped back into documents. */
function toDocuments(rows: AdvisoryRow[]): StoredAdvisories[] {
  const docs: StoredAdvisories[] = [];
  for (const r of rows) {
    let doc = docs.at(-1);
    if (!doc || doc.package !== r.origin || doc.repo !== r.repo) {
      doc = { repo: r.repo, package: r.origin, advisories: [], updatedAt: 0 };
      docs.push(doc);
    }
    doc.advisories.push(toAdvisory(r));
    doc.updatedAt = Math.max(doc.updatedAt, r.updated_at);
  }
  return docs;
}

export class AdvisoryStore {
  private readonly stmt: (sql: string) => Statement;

  private readonly db: Db;

  constructor(private readonly database: Database) {
    this.db = sqliteOf(database);
    this.stmt = statementCache(this.db);
  }

  /** The repository's advisory generation, which grows with every change (feed caches compare it), and when it last changed. */
  generation(repo: string): { generation: number; changedAt: number } {
    const r = this.stmt('SELECT generation, changed_at FROM advisory_generations WHERE repo = ?').get(repo) as
      | { generation: number; changed_at: number }
      | undefined;
    return { generation: r?.generation ?? 0, changedAt: r?.changed_at ?? 0 };
  }

  get(repo: string, origin: string): StoredAdvisories | undefined {
    return toDocuments(
      this.stmt('SELECT * FROM advisories WHERE repo = ? AND origin = ? ORDER BY position').all(
        repo,
        origin,
      ) as AdvisoryRow[],
    )[0];
  }

  /** Every package's advisories in a repository, by package name (a feed build reads them all). */
  all(repo: string): StoredAdvisories[] {
    return toDocuments(
      this.stmt('SELECT * FROM advisories WHERE repo = ? ORDER BY origin, position').all(
        repo,
      ) as AdvisoryRow[],
    );
  }

  /** Packages with advisories, by name, paged: name and advisory count. */
  listPackages(
    repo: string,
    limit: number,
    after = '',
  ): Array<{ package: string; advisories: number; updatedAt: number }> {
    return (
      this.stmt(
        `SELECT origin, COUNT(*) AS n, MAX(updated_at) AS updated_at FROM advisories
         WHERE repo = ? AND origin > ? GROUP BY origin ORDER BY origin LIMIT ?`,
      ).all(repo, after, limit) as Array<{ origin: string; n: number; updated_at: number }>
    ).map((r) => ({ package: r.origin, advisories: r.n, updatedAt: r.updated_at }));
  }

  /**
   * Replaces the advisories of each document's package, all in one
   * transaction (an import is all or nothing), and bumps the repository's
   * generation once. An advisory id another package of the repository holds
   * is refused (ADVISORY_ID_TAKEN). Returns, per package, the ids added,
   * changed and removed.
   */
  replace(
    repo: string,
    docs: AdvisoryDocument[],
    now = Date.now(),
  ): Array<{ package: string; added: string[]; changed: string[]; removed: string[] }> {
    return writingDb(() =>
      this.db.transaction(() => {
        const results = docs.map((doc) => this.replaceOne(repo, doc, now));
        if (results.some((r) => r.added.length + r.changed.length + r.removed.length > 0)) {
          this.stmt(
            `INSERT INTO advisory_generations (repo, generation, changed_at) VALUES (?, 1, ?)
             ON CONFLICT (repo) DO UPDATE SET generation = generation + 1, changed_at = excluded.changed_at`,
          ).run(repo, now);
        }
        return results;
      })(),
    );
  }

  private replaceOne(repo: string, doc: AdvisoryDocument, now: number) {
    const before = new Map(
      (
        this.stmt('SELECT * FROM advisories WHERE repo = ? AND origin = ?').all(
          repo,
          doc.package,
        ) as AdvisoryRow[]
      ).map((r) => [r.advisory_id, r]),
    );
    const added: string[] = [];
    const changed: string[] = [];
    const insert = this.stmt(
      `INSERT INTO advisories (repo, origin, advisory_id, aliases, events, position, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertAlias = this.stmt('INSERT INTO advisory_aliases (advisory, alias) VALUES (?, ?)');
    this.stmt('DELETE FROM advisories WHERE repo = ? AND origin = ?').run(repo, doc.package);
    doc.advisories.forEach((advisory, position) => {
      const aliases = JSON.stringify(advisory.aliases ?? []);
      const events = JSON.stringify(advisory.events);
      const old = before.get(advisory.id);
      const same = old !== undefined && old.aliases === aliases && old.events === events;
      if (!old) added.push(advisory.id);
      else if (!same) changed.push(advisory.id);
      const holder = this.stmt('SELECT origin FROM advisories WHERE repo = ? AND advisory_id = ?').get(
        repo,
        advisory.id,
      ) as { origin: string } | undefined;
      if (holder) {
        throw new AppError(
          'ADVISORY_ID_TAKEN',
          `advisory ${advisory.id} belongs to package ${holder.origin} in ${repo}; an id names one advisory of one package`,
          { details: { id: advisory.id, package: holder.origin } },
        );
      }
      const { lastInsertRowid } = insert.run(
        repo,
        doc.package,
        advisory.id,
        aliases,
        events,
        position,
        same ? old.updated_at : now,
      );
      for (const alias of new Set([advisory.id, ...(advisory.aliases ?? [])]))
        insertAlias.run(lastInsertRowid, alias);
    });
    const removed = [...before.keys()].filter((id) => !doc.advisories.some((a) => a.id === id));
    return { package: doc.package, added, changed, removed };
  }
}
