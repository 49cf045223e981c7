import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { SbomComponent } from '../../src/sbom/types.ts';
import type { Database } from '../../src/store/database.ts';
import { migrate, openDb } from '../../src/store/db.ts';
import { PackageStore } from '../../src/store/package-store.ts';
import { SbomStore } from '../../src/store/sbom-store.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { insertNew, newPackage } from '../helpers/new-package.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-sbom-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A package's SBOM as far as the component index is concerned: its components. */
function saveComponents(sboms: SbomStore, packageId: number, components: SbomComponent[]): Promise<void> {
  return sboms.save(packageId, {
    source: 'generated',
    format: 'spdx',
    specVersion: '2.3',
    sha256: '0'.repeat(64),
    size: 1,
    components,
  });
}

/**
 * Sublinear without a stopwatch: every statement the auditor queries run is
 * an index search, never a scan of packages or components nor a sort of all
 * matches (issue 7: 1,000,000 packages). The statements are the store's own,
 * recorded as it issues them, and explained by SQLite.
 */
test('the auditor queries read index ranges: no scan of packages or components, no sort', async () => {
  const db = openDb(join(dir, 'reef.db'));
  migrate(db);
  const database = SqliteDatabase.over(db);
  const prepared: string[] = [];
  const recording = new Proxy(database, {
    get(target, prop) {
      if (prop === 'get' || prop === 'all' || prop === 'run') {
        return (sql: string, params?: unknown) => {
          prepared.push(sql);
          return (target[prop] as (sql: string, params?: unknown) => unknown).call(target, sql, params);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Database;
  const packages = new PackageStore(recording, ['x86_64']);
  const sboms = new SbomStore(recording);
  for (let i = 0; i < 20; i++) {
    const pkg = await insertNew(packages, {
      ...newPackage(`p${i}`, '1.0-r0', 'x86_64'),
      license: i % 2 ? 'MIT' : 'GPL-2.0-only',
    });
    await saveComponents(sboms, pkg.id, [
      { name: 'libc', version: '2.40', purl: `pkg:apk/wolfi/libc@2.40-r${i}`, checksums: [] },
    ]);
  }
  db.prepare('UPDATE packages SET published_at = 1').run();
  prepared.length = 0;

  const repos = ['main'];
  const byName = await sboms.findComponents({ name: 'libc' }, { repos, limit: 3 });
  await sboms.findComponents({ name: 'libc' }, { repos, limit: 3, after: byName.next });
  const byPurl = await sboms.findComponents({ purl: 'pkg:apk/wolfi/libc' }, { repos, limit: 3 });
  await sboms.findComponents({ purl: 'pkg:apk/wolfi/libc' }, { repos, limit: 3, after: byPurl.next });
  await sboms.findComponents({ purl: 'pkg:apk/wolfi/libc@2.40-r1' }, { repos, limit: 3 });
  const licenses = await sboms.publishedLicenses();
  assert.deepEqual(licenses, ['GPL-2.0-only', 'MIT']);
  const first = await sboms.findByLicense(licenses, { repos, limit: 3 });
  await sboms.findByLicense(licenses, { repos, limit: 3, after: first.next });

  const queries = [...new Set(prepared)];
  assert.ok(queries.length >= 6, `the queries were recorded: ${queries.length}`);
  for (const sql of queries) {
    const named = [...sql.matchAll(/@(\w+)/g)].map((m) => m[1]!);
    const params = named.length
      ? [Object.fromEntries(named.map((n) => [n, null]))]
      : (sql.match(/\?/g) ?? []).map(() => null);
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map(
      (r) => r.detail,
    );
    const text = plan.join('\n');
    assert.ok(!/^SCAN (packages|components|c|p)\b/m.test(text), `a table scan:\n${sql}\n${text}`);
    assert.ok(!/TEMP B-TREE/.test(text), `a sort of every match:\n${sql}\n${text}`);
    assert.match(text, /SEARCH (packages|c) USING INDEX (packages_by_license|components_by_(name|purl))/);
  }
  await database.close();
});

test('a component page stops after its row budget, short or empty, and the cursor resumes after the last row read: every match once', async () => {
  const db = openDb(join(dir, 'budget.db'));
  migrate(db);
  const database = SqliteDatabase.over(db);
  const packages = new PackageStore(database, ['x86_64']);
  const sboms = new SbomStore(database);
  // 60 packages with glibc; only every seventh at a version the query wants.
  for (let i = 0; i < 60; i++) {
    const pkg = await insertNew(packages, newPackage(`b${i}`, '1.0-r0', 'x86_64'));
    await saveComponents(sboms, pkg.id, [
      { name: 'glibc', version: i % 7 === 0 ? '9.0' : '2.40', checksums: [] },
    ]);
  }
  db.prepare('UPDATE packages SET published_at = 1').run();
  const accept = (c: { version?: string }) => c.version === '9.0';
  const query = { repos: ['main'], limit: 4, accept };
  const all = await sboms.findComponents({ name: 'glibc' }, { ...query, limit: 1000 });
  assert.equal(all.hits.length, 9);
  assert.equal(all.next, undefined);

  const seen: string[] = [];
  let after: Awaited<ReturnType<typeof sboms.findComponents>>['next'];
  let pages = 0;
  let short = 0;
  do {
    const page = await sboms.findComponents({ name: 'glibc' }, { ...query, after, maxRows: 5 });
    assert.ok(page.hits.length <= 4);
    if (page.hits.length < 4 && page.next) short++;
    seen.push(...page.hits.map((h) => h.package.name));
    after = page.next;
    pages++;
    assert.ok(pages < 100, 'paging ends');
  } while (after);
  assert.deepEqual(
    seen,
    all.hits.map((h) => h.package.name),
  );
  assert.ok(short > 0, 'some pages ended on the budget, not on the limit');
  // 60 rows at 5 per request: 12 requests read them all (one more may find the end).
  assert.ok(pages >= 12 && pages <= 13, `${pages} pages`);
  await database.close();
});
