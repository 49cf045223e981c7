import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { migrate, openDb } from '../../src/store/db.ts';
import { PackageStore, relationNames } from '../../src/store/package-store.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { insertNew, newPackage } from '../helpers/new-package.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-relations-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Tokens of every shape apk allows in `depend =` and `provides =` (apk3 src/package.c `apk_dep_parse`). */
const DEPENDS = [
  'so:libc.musl-x86_64.so.1',
  'foo>=1.2',
  'bar<2',
  'baz~1.2',
  'qux=1.0-r0',
  '!conflicting',
  '/bin/sh',
  'pc:libfoo>=1',
  'py3.10:foo',
  'foo<3',
];
const PROVIDES = ['so:libfoo.so.2=2.1', 'cmd:foo=2.1', 'foo-virtual'];

type Row = { name: string; kind: string; package_id: number };

test('the migration that adds package_relations fills it for existing packages exactly as publishing does', async () => {
  const db = openDb(join(dir, 'reef.db'));
  try {
    migrate(db);
    const store = new PackageStore(SqliteDatabase.over(db), ['x86_64']);
    const a = await insertNew(store, {
      ...newPackage('a', '1.0-r0', 'x86_64'),
      depends: DEPENDS,
      provides: PROVIDES,
    });
    await insertNew(store, { ...newPackage('b', '1.0-r0', 'x86_64'), depends: [], provides: [] });
    const rows = () =>
      db
        .prepare('SELECT name, kind, package_id FROM package_relations ORDER BY package_id, kind, name')
        .all() as Row[];
    const published = rows();
    // What publishing records: the bare names, operators and versions cut, conflicts left out, once each.
    assert.deepEqual(
      published.filter((r) => r.kind === 'depends').map((r) => r.name),
      ['/bin/sh', 'bar', 'baz', 'foo', 'pc:libfoo', 'py3.10:foo', 'qux', 'so:libc.musl-x86_64.so.1'],
    );
    assert.deepEqual(
      published.filter((r) => r.kind === 'provides').map((r) => r.name),
      ['cmd:foo', 'foo-virtual', 'so:libfoo.so.2'],
    );
    assert.deepEqual(
      relationNames(DEPENDS).sort(),
      published.filter((r) => r.kind === 'depends').map((r) => r.name),
    );
    assert.ok(published.every((r) => r.package_id === a.id));

    // As if the packages had been published before the table existed: the migration's SQL fills it.
    db.exec('DROP TABLE package_relations');
    db.prepare('DELETE FROM schema_migrations WHERE name = ?').run('0014_package_relations.sql');
    assert.deepEqual(migrate(db).applied, ['0014_package_relations.sql']);
    assert.deepEqual(rows(), published);
  } finally {
    db.close();
  }
});
