import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Database } from '../../src/store/database.ts';
import { migrate, openDb } from '../../src/store/db.ts';
import { PackageStore, type SearchCursor, type StoredPackage } from '../../src/store/package-store.ts';
import { PostgresDatabase } from '../../src/store/postgres-database.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { insertNew, newPackage } from '../helpers/new-package.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';
import { prng } from '../helpers/prng.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-search-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MIGRATIONS = fileURLToPath(new URL('../../migrations/', import.meta.url));

function openStore(name: string) {
  const db = openDb(join(dir, name));
  migrate(db, MIGRATIONS);
  const database = SqliteDatabase.over(db);
  return { db, database, store: new PackageStore(database, ['x86_64']) };
}

/**
 * Search runs on each engine's own indexes (SQLite's FTS5 tables,
 * PostgreSQL's trigram indexes); the same oracle judges both.
 */
const engines: Array<{
  name: string;
  skip: string | false;
  open(name: string): Promise<{ database: Database; store: PackageStore; close(): Promise<void> }>;
}> = [
  {
    name: 'sqlite',
    skip: false,
    async open(name) {
      const { database, store } = openStore(name);
      return { database, store, close: () => database.close() };
    },
  },
  {
    name: 'postgres',
    skip: needsPg.skip,
    async open(name) {
      const url = await freshDatabase(`reef-search-${name}`);
      const database = new PostgresDatabase(url);
      await database.migrate();
      return {
        database,
        store: new PackageStore(database, ['x86_64']),
        async close() {
          await database.close();
          await dropDatabase(url);
        },
      };
    },
  },
];

/** The first page of a search, as the web interface asks for it. */
async function search(store: PackageStore, text: string, repos: string[], filter: object, limit: number) {
  return (await store.searchPage(text, repos, filter, { limit })).packages;
}

/** Every page of a search, `limit` at a time, through the cursors. */
async function allPages(
  store: PackageStore,
  text: string,
  repos: string[],
  limit: number,
  filter = {},
  maxRows?: number,
) {
  const seen: StoredPackage[] = [];
  let after: SearchCursor | undefined;
  do {
    const page = await store.searchPage(text, repos, filter, { limit, after, maxRows });
    assert.ok(page.packages.length <= limit);
    seen.push(...page.packages);
    after = page.next;
  } while (after);
  return seen.map((p) => p.id);
}

/**
 * The independent oracle: what search must answer, computed in JavaScript
 * over the published rows (ASCII data, so lower-casing is SQLite's NOCASE).
 */
function expected(
  rows: StoredPackage[],
  text: string,
  repos: string[],
  filter: { libc?: string; arch?: string },
) {
  const t = text.toLowerCase();
  const hits = rows.flatMap((p) => {
    if (p.publishedAt === undefined || !repos.includes(p.repo)) return [];
    if ((filter.libc && p.libc !== filter.libc) || (filter.arch && p.arch !== filter.arch)) return [];
    const name = p.name.toLowerCase();
    let tier: number;
    if (name === t) tier = 0;
    else if (name.startsWith(t)) tier = 1;
    else if ([...t].length < 3) return [];
    else if (name.includes(t)) tier = 2;
    else if (p.description.toLowerCase().includes(t) || p.provides.join(' ').toLowerCase().includes(t))
      tier = 3;
    else return [];
    return [{ tier, name: p.name, id: p.id }];
  });
  // Names by name, then newest; the rest (tier 3) newest first.
  hits.sort(
    (a, b) =>
      a.tier - b.tier || (a.tier < 3 && (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) || b.id - a.id,
  );
  return hits.map((h) => h.id);
}

for (const engine of engines) {
  describe(`package search: ${engine.name}`, { skip: engine.skip }, () => {
    test('search agrees with an oracle: tiers, their order, filters, only published, every page size', async () => {
      const { database, store, close } = await engine.open('oracle');
      const random = prng(5);
      const letters = 'abcAB-:.';
      const word = (n: number) =>
        Array.from({ length: n }, () => letters[Math.floor(random() * letters.length)]).join('');
      for (let i = 0; i < 300; i++) {
        const pkg = newPackage(
          `${word(1 + Math.floor(random() * 5))}${i % 4 === 0 ? '' : i}`,
          `1.${i}-r0`,
          random() < 0.5 ? 'x86_64' : 'aarch64',
        );
        await insertNew(store, {
          ...pkg,
          repo: ['main', 'other', 'private'][i % 3]!,
          libc: random() < 0.5 ? 'glibc' : 'musl',
          description: `${word(6)} ${word(4)}`,
          provides: random() < 0.5 ? [`so:${word(4)}.so.1`, `cmd:${word(3)}`] : [],
        });
      }
      // Published: all but every 5th (uploads whose index is not written yet).
      await database.run('UPDATE packages SET published_at = 1 WHERE id % 5 != 0');
      const rows: StoredPackage[] = [];
      for (const r of await database.all<{ id: number }>('SELECT id FROM packages')) {
        rows.push((await store.getById(r.id))!);
      }
      const queries = [
        '',
        'a',
        'A',
        'b-',
        'ab',
        'abc',
        'aB:',
        'so:',
        '.so.1',
        'cmd:a',
        'a b',
        'ba-a',
        'zzz',
        '"a',
        'a*',
      ];
      for (let i = 0; i < 40; i++) {
        const p = rows[Math.floor(random() * rows.length)]!;
        const source = [p.name, p.description, p.provides.join(' ')][i % 3]!;
        const start = Math.floor(random() * source.length);
        queries.push(source.slice(start, start + 1 + Math.floor(random() * 5)));
      }
      const filters = [{}, { libc: 'musl' }, { arch: 'aarch64' }, { libc: 'glibc', arch: 'x86_64' }];
      for (const text of queries) {
        for (const filter of filters) {
          const repos = ['main', 'other'];
          const want = expected(rows, text, repos, filter);
          for (const limit of [1, 4, 1000]) {
            assert.deepEqual(
              await allPages(store, text, repos, limit, filter),
              want,
              `"${text}" ${JSON.stringify(filter)} /${limit}`,
            );
          }
          // A walk of tier 3 cut short after a few matches read: short pages, the same results.
          for (const maxRows of [1, 3]) {
            assert.deepEqual(
              await allPages(store, text, repos, 4, filter, maxRows),
              want,
              `"${text}" ${JSON.stringify(filter)} /4, ${maxRows} rows read at most`,
            );
          }
        }
      }
      await close();
    });

    test('unpublished and deleted packages are not found; the index follows publish and delete', async () => {
      const { database, store, close } = await engine.open('sync');
      const pkg = await insertNew(store, {
        ...newPackage('pending-tool', '1.0-r0', 'x86_64'),
        provides: ['cmd:pending'],
      });
      const find = async (text: string) => (await search(store, text, ['main'], {}, 10)).map((p) => p.name);
      assert.deepEqual(await find('pending'), [], 'uploaded, no index lists it yet');
      assert.deepEqual(await find('pe'), []);
      assert.ok(
        await store.recordIndex({ repo: 'main', libc: 'glibc', arch: 'x86_64' }, 1, {
          sha256: 'a'.repeat(64),
          size: 1,
          packageCount: 1,
          newIds: [pkg.id],
          signedBy: 'k',
          builtAt: Date.now(),
        }),
      );
      assert.deepEqual(await find('cmd:pending'), ['pending-tool']);
      assert.deepEqual(await find('pe'), ['pending-tool']);
      // A write that rolls back takes its index change with it.
      await assert.rejects(
        store.transaction(async () => {
          await store.remove({ repo: 'main', libc: 'glibc', arch: 'x86_64' }, 'pending-tool', '1.0-r0');
          throw new Error('rolled back');
        }),
      );
      assert.deepEqual(await find('pending'), ['pending-tool']);
      await store.remove({ repo: 'main', libc: 'glibc', arch: 'x86_64' }, 'pending-tool', '1.0-r0');
      assert.deepEqual(await find('pending'), []);
      assert.deepEqual(await find('pe'), []);
      assert.equal(
        (await database.get<{ n: number }>('SELECT count(*) AS n FROM package_search_rows'))?.n,
        0,
      );
      if (database.dialect === 'sqlite') {
        for (const table of ['package_search', 'package_search_names']) {
          assert.equal((await database.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))?.n, 0);
        }
      }
      await close();
    });

    test('hostile text never reaches the database as syntax', async () => {
      const { database, store, close } = await engine.open('hostile');
      await insertNew(store, newPackage('tool', '1.0-r0', 'x86_64'));
      await database.run('UPDATE packages SET published_at = 1');
      const random = prng(9);
      const alphabet = [
        '"',
        '*',
        '^',
        ':',
        '-',
        '+',
        '(',
        ')',
        '{',
        '}',
        ' ',
        'OR',
        'NEAR',
        'AND',
        'NOT',
        '\0',
        '\\',
        '%',
        '_',
        "'",
        'a',
        'ü',
        '😀',
      ];
      for (let i = 0; i < 2000; i++) {
        const text = Array.from(
          { length: 1 + Math.floor(random() * 8) },
          () => alphabet[Math.floor(random() * alphabet.length)],
        ).join('');
        await assert.doesNotReject(() => search(store, text, ['main'], {}, 10), JSON.stringify(text));
      }
      await close();
    });
  });
}

test('the migrations index the packages published before them', async () => {
  const { db, database, store } = openStore('upgrade.db');
  const tool = await insertNew(store, {
    ...newPackage('old-tool', '1.0-r0', 'x86_64'),
    provides: ['so:libold.so.2'],
  });
  await insertNew(store, newPackage('old-pending', '1.0-r0', 'x86_64'));
  db.prepare("UPDATE packages SET published_at = 1 WHERE name = 'old-tool'").run();
  // As if the packages had been published before the search tables existed: the migrations' SQL fills them.
  db.exec(`DROP TABLE package_search_names; DROP TABLE package_search; DROP TABLE package_search_rows;
    DROP TRIGGER package_search_insert; DROP TRIGGER package_search_update; DROP TRIGGER package_search_delete`);
  db.prepare('DELETE FROM schema_migrations WHERE name IN (?, ?)').run(
    '0013_package_search.sql',
    '0015_package_search_names.sql',
  );
  assert.deepEqual(migrate(db).applied, ['0013_package_search.sql', '0015_package_search_names.sql']);
  const upgradedDatabase = SqliteDatabase.over(db);
  const upgraded = new PackageStore(upgradedDatabase, ['x86_64']);
  assert.deepEqual(
    (await search(upgraded, 'libold', ['main'], {}, 10)).map((p) => p.name),
    ['old-tool'],
  );
  assert.deepEqual(
    (await search(upgraded, 'old', ['main'], {}, 10)).map((p) => p.name),
    ['old-tool'],
  );
  // The name is in the names index (0015), so it ranks as a name, not as tier 3.
  assert.deepEqual(
    db.prepare(`SELECT rowid AS id FROM package_search_names WHERE package_search_names MATCH '"old"'`).all(),
    [{ id: tool.id }],
  );
  await upgradedDatabase.close();
  await database.close();
});
