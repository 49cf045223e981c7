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
import { PostgresDatabase } from '../../src/store/postgres-database.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { TokenStore } from '../../src/store/token-store.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';

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

test(
  'replicas starting together on an empty PostgreSQL database create one bootstrap token',
  needsPg,
  async () => {
    const url = await freshDatabase('reef-tokens-first');
    const replicas = Array.from({ length: 4 }, () => new PostgresDatabase(url));
    try {
      await Promise.all(replicas.map((r) => r.migrate()));
      const printed = await Promise.all(
        replicas.map((r) => new TokenService(new TokenStore(r), undefined).ensureAdminToken()),
      );
      assert.equal(printed.filter((t) => t !== undefined).length, 1);
      assert.equal((await replicas[0]!.get<{ n: number }>('SELECT count(*) AS n FROM tokens'))?.n, 1);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
      await dropDatabase(url);
    }
  },
);
