import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { migrate, openDb } from '../../src/store/db.ts';

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
