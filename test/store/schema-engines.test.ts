import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PostgresDatabase } from '../../src/store/postgres-database.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';

/**
 * One schema history on two engines: PostgreSQL's migrations reach the same
 * version as SQLite's, with the same tables and columns, whoever runs them.
 */

/** SQLite's full-text tables and their shadow tables: PostgreSQL searches with pg_trgm indexes instead. */
const SQLITE_ONLY = /^package_search(_names)?(_(data|idx|content|docsize|config))?$/;

async function withPg<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const url = await freshDatabase('reef-schema');
  try {
    return await fn(url);
  } finally {
    await dropDatabase(url);
  }
}

test('PostgreSQL migrates to the version SQLite reaches, once', needsPg, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reef-schema-'));
  const sqlite = new SqliteDatabase(join(dir, 'reef.db'));
  try {
    const expected = (await sqlite.migrate()).version;
    await withPg(async (url) => {
      const db = new PostgresDatabase(url);
      try {
        const first = await db.migrate();
        assert.equal(first.version, expected);
        assert.ok(first.applied.length > 0);
        const again = await db.migrate();
        assert.deepEqual(again, { applied: [], version: expected });
      } finally {
        await db.close();
      }
    });
  } finally {
    await sqlite.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('replicas starting together apply each migration once', needsPg, async () => {
  await withPg(async (url) => {
    const replicas = [new PostgresDatabase(url), new PostgresDatabase(url), new PostgresDatabase(url)];
    try {
      const results = await Promise.all(replicas.map((r) => r.migrate()));
      const appliers = results.filter((r) => r.applied.length > 0);
      assert.equal(appliers.length, 1, JSON.stringify(results));
      assert.equal(new Set(results.map((r) => r.version)).size, 1);
      const rows = await replicas[0]!.all<{ version: number }>('SELECT version FROM schema_migrations');
      assert.equal(rows.length, appliers[0]!.applied.length);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });
});

test('both engines have the same tables, columns and NOT NULLs', needsPg, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reef-schema-'));
  const sqlite = new SqliteDatabase(join(dir, 'reef.db'));
  try {
    await sqlite.migrate();
    const tables = (
      await sqlite.all<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
    )
      .map((t) => t.name)
      .filter((name) => !SQLITE_ONLY.test(name));
    const sqliteColumns: Record<string, string[]> = {};
    for (const table of tables) {
      const columns = await sqlite.all<{ name: string; notnull: number; pk: number }>(
        `SELECT name, "notnull", pk FROM pragma_table_info(?) ORDER BY cid`,
        [table],
      );
      // A primary key column is NOT NULL in PostgreSQL whether or not SQLite says so.
      sqliteColumns[table] = columns.map((c) => `${c.name}${c.notnull || c.pk ? ' not null' : ''}`);
    }
    await withPg(async (url) => {
      const db = new PostgresDatabase(url);
      try {
        await db.migrate();
        const pgColumns: Record<string, string[]> = {};
        const rows = await db.all<{ table_name: string; column_name: string; is_nullable: string }>(
          `SELECT table_name, column_name, is_nullable FROM information_schema.columns
           WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
        );
        for (const r of rows) {
          const columns = pgColumns[r.table_name] ?? [];
          columns.push(`${r.column_name}${r.is_nullable === 'NO' ? ' not null' : ''}`);
          pgColumns[r.table_name] = columns;
        }
        assert.deepEqual(Object.keys(pgColumns).sort(), tables);
        for (const table of tables) assert.deepEqual(pgColumns[table], sqliteColumns[table], table);
      } finally {
        await db.close();
      }
    });
  } finally {
    await sqlite.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a SQLite migration without its PostgreSQL twin stops the start', needsPg, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reef-schema-'));
  try {
    await mkdir(join(dir, 'postgres'));
    await writeFile(join(dir, '0001_first.sql'), 'CREATE TABLE a (x INTEGER);');
    await writeFile(join(dir, 'postgres', '0001_first.sql'), 'CREATE TABLE a (x INTEGER);');
    await writeFile(join(dir, '0002_second.sql'), 'CREATE TABLE b (x INTEGER);');
    await withPg(async (url) => {
      const db = new PostgresDatabase(url, { migrationsDir: dir });
      try {
        await assert.rejects(db.migrate(), /lacks the PostgreSQL version of migration\(s\) 2/);
        // Nothing was applied.
        assert.equal(
          await db.get("SELECT 1 FROM information_schema.tables WHERE table_name = 'a'"),
          undefined,
        );
        await writeFile(join(dir, 'postgres', '0002_second.sql'), 'CREATE TABLE b (x INTEGER);');
        assert.deepEqual(await db.migrate(), { applied: ['0001_first.sql', '0002_second.sql'], version: 2 });
      } finally {
        await db.close();
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
