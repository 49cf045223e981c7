import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { isAppError } from '../../src/errors.ts';
import { migrate, openDb, translateDbError } from '../../src/store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-db-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('migrations leave no WAL behind: their pages are checkpointed and the file cut back', () => {
  const path = join(dir, 'reef.db');
  const db = openDb(path);
  try {
    const result = migrate(db);
    assert.ok(result.applied.length > 0);
    // Every migration's pages went through the WAL; a start on a disk with little room must not keep them there.
    assert.equal(statSync(`${path}-wal`).size, 0);
    assert.ok(statSync(path).size > 0, 'the schema is in the database file');
    assert.deepEqual(migrate(db).applied, [], 'a second run applies nothing');
  } finally {
    db.close();
  }
});

test('a database that cannot be written is STORAGE_READ_ONLY, not an internal error', () => {
  const path = join(dir, 'read-only.db');
  const db = openDb(path);
  migrate(db);
  db.close();
  // A read-only connection: SQLite's own SQLITE_READONLY, as a read-only file gives.
  const ro = new Database(path, { readonly: true });
  try {
    let thrown: unknown;
    try {
      ro.prepare('INSERT INTO repos (name, created_at) VALUES (?, ?)').run('r', 0);
    } catch (err) {
      thrown = err;
    }
    assert.match(String((thrown as { code?: string }).code), /^SQLITE_READONLY/);
    const translated = translateDbError(thrown);
    assert.ok(isAppError(translated, 'STORAGE_READ_ONLY'));
    assert.equal(translated.cause, thrown);
  } finally {
    ro.close();
  }
  // What a WAL database on a read-only file system answers: its -shm cannot be made.
  assert.ok(isAppError(translateDbError({ code: 'SQLITE_CANTOPEN' }), 'STORAGE_READ_ONLY'));
  const other = new Error('x');
  assert.equal(translateDbError(other), other);
});
