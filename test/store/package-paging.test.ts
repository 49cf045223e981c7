import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { migrate, openDb } from '../../src/store/db.ts';
import { type IndexKey, PackageStore } from '../../src/store/package-store.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { newPackage } from '../helpers/new-package.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-paging-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const pkg = (name: string, arch: string) => newPackage(name, '1.0-r0', arch);

test('paging by id returns every published package of an index once, noarch included, in id order', async () => {
  const db = openDb(join(dir, 'reef.db'));
  migrate(db);
  const database = SqliteDatabase.over(db);
  const store = new PackageStore(database, ['x86_64', 'aarch64']);
  const arches = ['x86_64', 'aarch64', 'noarch'];
  for (let i = 0; i < 60; i++) await store.insert(pkg(`p${i}`, arches[i % 3]!));
  await store.insert(pkg('other-repo', 'x86_64'));
  // Published: all but every 7th (an upload whose index is not written yet).
  db.prepare('UPDATE packages SET published_at = 1 WHERE id % 7 != 0').run();
  for (const arch of ['x86_64', 'aarch64', 'noarch']) {
    const key: IndexKey = { repo: 'main', libc: 'glibc', arch };
    // The oracle: the plain query the paging must agree with.
    const expected = (
      db
        .prepare(
          `SELECT id FROM packages WHERE repo = 'main' AND libc = 'glibc' AND (arch = ? OR arch = 'noarch')
           AND published_at IS NOT NULL ORDER BY id`,
        )
        .all(arch) as Array<{ id: number }>
    ).map((r) => r.id);
    assert.ok(expected.length > 10);
    for (const limit of [1, 7, 100]) {
      const seen: number[] = [];
      let after = 0;
      for (;;) {
        const page = await store.listPublished(key, limit, after);
        seen.push(...page.map((p) => p.id));
        if (page.length < limit) break;
        after = page.at(-1)!.id;
      }
      assert.deepEqual(seen, expected, `${arch}, pages of ${limit}`);
    }
  }
  await database.close();
});
