import type { Advisory, AdvisoryDocument } from '../advisory/document.ts';
import { AppError } from '../errors.ts';
import type { Database } from './database.ts';

/** A package's advisories as stored, with when they last changed. */
export interface StoredAdvisories extends AdvisoryDocument {
  repo: string;
  updatedAt: number;
}

/** A repository's advisory generation and when it began. */
export interface AdvisoryGeneration {
  generation: number;
  changedAt: number;
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
  constructor(private readonly database: Database) {}

  /** The repository's advisory generation, which grows with every change (feed caches compare it), and when it last changed. */
  async generation(repo: string): Promise<AdvisoryGeneration> {
    const r = await this.database.get<{ generation: number; changed_at: number }>(
      'SELECT generation, changed_at FROM advisory_generations WHERE repo = ?',
      [repo],
    );
    return { generation: r?.generation ?? 0, changedAt: r?.changed_at ?? 0 };
  }

  async get(repo: string, origin: string): Promise<StoredAdvisories | undefined> {
    return toDocuments(
      await this.database.all<AdvisoryRow>(
        'SELECT * FROM advisories WHERE repo = ? AND origin = ? ORDER BY position',
        [repo, origin],
      ),
    )[0];
  }

  /** Every package's advisories in a repository, by package name (a feed build reads them all). */
  async all(repo: string): Promise<StoredAdvisories[]> {
    return toDocuments(
      await this.database.all<AdvisoryRow>(
        'SELECT * FROM advisories WHERE repo = ? ORDER BY origin, position',
        [repo],
      ),
    );
  }

  /** A package's advisories and the generation they belong to, read in one snapshot. */
  async getAt(
    repo: string,
    origin: string,
  ): Promise<{ doc: StoredAdvisories | undefined; at: AdvisoryGeneration }> {
    return this.database.read(async () => ({
      doc: await this.get(repo, origin),
      at: await this.generation(repo),
    }));
  }

  /** Every advisory of a repository and the generation they make up, read in one snapshot. */
  async allAt(repo: string): Promise<{ docs: StoredAdvisories[]; at: AdvisoryGeneration }> {
    return this.database.read(async () => ({ docs: await this.all(repo), at: await this.generation(repo) }));
  }

  /** Packages with advisories, by name, paged: name and advisory count. */
  async listPackages(
    repo: string,
    limit: number,
    after = '',
  ): Promise<Array<{ package: string; advisories: number; updatedAt: number }>> {
    const rows = await this.database.all<{ origin: string; n: number; updated_at: number }>(
      `SELECT origin, COUNT(*) AS n, MAX(updated_at) AS updated_at FROM advisories
       WHERE repo = ? AND origin > ? GROUP BY origin ORDER BY origin LIMIT ?`,
      [repo, after, limit],
    );
    return rows.map((r) => ({ package: r.origin, advisories: r.n, updatedAt: r.updated_at }));
  }

  /**
   * Replaces the advisories of each document's package, all in one
   * transaction (an import is all or nothing), and bumps the repository's
   * generation once. An advisory id another package of the repository holds
   * is refused (ADVISORY_ID_TAKEN). Returns, per package, the ids added,
   * changed and removed.
   */
  async replace(
    repo: string,
    docs: AdvisoryDocument[],
    now = Date.now(),
  ): Promise<Array<{ package: string; added: string[]; changed: string[]; removed: string[] }>> {
    return this.database.transact(async () => {
      // What is added, changed or taken is decided on what this transaction read: one
      // import per repository at a time, across replicas.
      await this.database.lockForTransaction(`advisories:${repo}`);
      const results: Array<{ package: string; added: string[]; changed: string[]; removed: string[] }> = [];
      for (const doc of docs) results.push(await this.replaceOne(repo, doc, now));
      if (results.some((r) => r.added.length + r.changed.length + r.removed.length > 0)) {
        await this.database.run(
          `INSERT INTO advisory_generations (repo, generation, changed_at) VALUES (?, 1, ?)
           ON CONFLICT (repo) DO UPDATE SET generation = advisory_generations.generation + 1,
             changed_at = excluded.changed_at`,
          [repo, now],
        );
      }
      return results;
    });
  }

  private async replaceOne(repo: string, doc: AdvisoryDocument, now: number) {
    const before = new Map(
      (
        await this.database.all<AdvisoryRow>('SELECT * FROM advisories WHERE repo = ? AND origin = ?', [
          repo,
          doc.package,
        ])
      ).map((r) => [r.advisory_id, r]),
    );
    const added: string[] = [];
    const changed: string[] = [];
    await this.database.run('DELETE FROM advisories WHERE repo = ? AND origin = ?', [repo, doc.package]);
    for (const [position, advisory] of doc.advisories.entries()) {
      const aliases = JSON.stringify(advisory.aliases ?? []);
      const events = JSON.stringify(advisory.events);
      const old = before.get(advisory.id);
      const same = old !== undefined && old.aliases === aliases && old.events === events;
      if (!old) added.push(advisory.id);
      else if (!same) changed.push(advisory.id);
      const holder = await this.database.get<{ origin: string }>(
        'SELECT origin FROM advisories WHERE repo = ? AND advisory_id = ?',
        [repo, advisory.id],
      );
      if (holder) {
        throw new AppError(
          'ADVISORY_ID_TAKEN',
          `advisory ${advisory.id} belongs to package ${holder.origin} in ${repo}; an id names one advisory of one package`,
          { details: { id: advisory.id, package: holder.origin } },
        );
      }
      const inserted = await this.database.get<{ id: number }>(
        `INSERT INTO advisories (repo, origin, advisory_id, aliases, events, position, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
        [repo, doc.package, advisory.id, aliases, events, position, same ? old.updated_at : now],
      );
      for (const alias of new Set([advisory.id, ...(advisory.aliases ?? [])])) {
        await this.database.run('INSERT INTO advisory_aliases (advisory, alias) VALUES (?, ?)', [
          inserted!.id,
          alias,
        ]);
      }
    }
    const removed = [...before.keys()].filter((id) => !doc.advisories.some((a) => a.id === id));
    return { package: doc.package, added, changed, removed };
  }
}
