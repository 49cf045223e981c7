import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { AuditLog } from '../../src/repo/audit.ts';
import { TokenService } from '../../src/repo/tokens.ts';
import { AuditStore } from '../../src/store/audit-store.ts';
import { migrate, openDb } from '../../src/store/db.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { TokenStore } from '../../src/store/token-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-tokens-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a database that cannot be written: tokens still authenticate, writes answer STORAGE_READ_ONLY', async () => {
  const path = join(dir, 'reef.db');
  const db = openDb(path);
  migrate(db);
  const writable = SqliteDatabase.over(db);
  const { token } = await new TokenService(new TokenStore(writable), undefined).create('reader', ['r:read']);
  await writable.close();
  const readOnly = SqliteDatabase.over(new Database(path, { readonly: true }));
  try {
    const tokens = new TokenService(new TokenStore(readOnly), undefined);
    // "Last used" cannot be recorded; reading with the token goes on regardless.
    assert.deepEqual((await tokens.verify(token))?.scopes, ['r:read']);
    await assert.rejects(() => tokens.create('writer', ['r:publish']), { code: 'STORAGE_READ_ONLY' });
    await assert.rejects(() => tokens.revoke(1), { code: 'STORAGE_READ_ONLY' });
    await assert.rejects(
      () =>
        new AuditLog(new AuditStore(readOnly)).record({
          token: undefined,
          action: 'x',
          target: 'y',
          result: 'ok',
        }),
      { code: 'STORAGE_READ_ONLY' },
    );
  } finally {
    await readOnly.close();
  }
});
