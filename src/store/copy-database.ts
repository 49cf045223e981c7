import { AppError } from '../errors.ts';
import type { Dialect, Queryable } from './database.ts';
import type { Db } from './db.ts';

/**
 * Copies reef's rows from one database to another, across engines (SQLite
 * ↔ PostgreSQL, PostgreSQL → PostgreSQL): what `reef migrate-storage
 * --to-database` and `reef backup` on PostgreSQL are made of.
 *
 * The tables come from each engine's catalogue (sqlite_master,
 * information_schema), never from a list written here, and the two sides
 * must hold the same tables with the same columns: a table a later migration
 * adds is copied without anyone remembering to, and a schema that differs
 * stops the copy before a row moves.
 *
 * Rows keep every value as read (ids, hashes, timestamps, BLOBs) and go in
 * primary-key order, in batches, parents before the rows that reference them.
 */

/** Bookkeeping of the migration runners: each side has its own, written by `migrate()`. */
const INTERNAL_TABLES = new Set(['schema_migrations']);

/**
 * Tables triggers fill from `packages` on both engines (0013_package_search.sql,
 * the PostgreSQL baseline): copying `packages` rebuilds them, so copying them
 * too would collide. Their row counts are still compared after the copy.
 */
const DERIVED_TABLES = new Set(['package_search_rows']);

/**
 * The keys table is copied only between two PostgreSQL databases (its rows are
 * encrypted under the key encryption key, which stays the same). The embedded
 * engine keeps keys as files, so across engines the keys move through the key
 * stores instead (see migrate-database.ts).
 */
export const KEYS_TABLE = 'keys';

/** FTS5's shadow tables, beside each virtual table (sqlite.org/fts5.html, "Shadow tables"). */
const FTS5_SHADOW_SUFFIXES = ['_data', '_idx', '_content', '_docsize', '_config'];

export interface TableShape {
  name: string;
  /** Column names in declaration order. */
  columns: string[];
  /** Primary-key columns in key order; empty when the table has none. */
  primaryKey: string[];
  /** Tables this one's foreign keys point at. */
  references: string[];
  /** The column PostgreSQL fills from an identity sequence, if any. */
  identity: string | undefined;
}

export interface Schema {
  dialect: Dialect;
  /** Tables whose rows are copied, parents first. */
  tables: TableShape[];
  /** Tables filled by triggers, compared by row count only. */
  derived: string[];
  /** The newest migration applied. */
  version: number;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** A locked better-sqlite3 connection as a Queryable, its integers read exactly. */
export function queryableOf(db: Db): Queryable {
  const rows = (sql: string, params: unknown) => {
    const statement = db.prepare(sql).safeIntegers(true);
    const bound = params === undefined ? [] : Array.isArray(params) ? params : [params];
    return (statement.all(...bound) as Array<Record<string, unknown>>).map(exactRow);
  };
  return {
    dialect: 'sqlite',
    async get<T>(sql: string, params?: unknown) {
      return rows(sql, params)[0] as T | undefined;
    },
    async all<T>(sql: string, params?: unknown) {
      return rows(sql, params) as T[];
    },
    async run(sql: string, params?: unknown) {
      const bound = params === undefined ? [] : Array.isArray(params) ? params : [params];
      return db.prepare(sql).run(...bound).changes;
    },
  };
}

/**
 * SQLite integers arrive as BigInt (safeIntegers) so that none is silently
 * rounded: those within 2^53 become numbers again, and a larger one stops the
 * copy rather than change on its way.
 */
function exactRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const [column, value] of Object.entries(row)) {
    if (typeof value !== 'bigint') continue;
    const n = Number(value);
    if (!Number.isSafeInteger(n)) {
      throw new AppError(
        'STORAGE_CORRUPT',
        `column ${column} holds ${value}, beyond what reef copies exactly (2^53); nothing was copied`,
      );
    }
    row[column] = n;
  }
  return row;
}

/** What the database holds, as the copy sees it. */
export async function readSchema(db: Queryable): Promise<Schema> {
  const version = Number(
    (await db.get<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations'))?.v ?? 0,
  );
  const names = db.dialect === 'sqlite' ? await sqliteTables(db) : await postgresTables(db);
  const shapes: TableShape[] = [];
  const derived: string[] = [];
  for (const name of names) {
    if (INTERNAL_TABLES.has(name)) continue;
    if (DERIVED_TABLES.has(name)) {
      derived.push(name);
      continue;
    }
    shapes.push(db.dialect === 'sqlite' ? await sqliteShape(db, name) : await postgresShape(db, name));
  }
  return { dialect: db.dialect, tables: parentsFirst(shapes), derived: derived.sort(), version };
}

async function sqliteTables(db: Queryable): Promise<string[]> {
  const rows = await db.all<{ name: string; sql: string | null }>(
    "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
  );
  // Full-text indexes (package search) are SQLite's side of what PostgreSQL does with pg_trgm
  // indexes, rebuilt by the triggers on `packages`: neither they nor their shadow tables are data.
  const virtual = rows.filter((r) => /^CREATE\s+VIRTUAL\s+TABLE/i.test(r.sql ?? '')).map((r) => r.name);
  const shadow = (name: string) => virtual.some((v) => FTS5_SHADOW_SUFFIXES.some((s) => name === `${v}${s}`));
  return rows.map((r) => r.name).filter((n) => !virtual.includes(n) && !shadow(n));
}

async function postgresTables(db: Queryable): Promise<string[]> {
  const rows = await db.all<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  return rows.map((r) => r.name);
}

async function sqliteShape(db: Queryable, name: string): Promise<TableShape> {
  const columns = await db.all<{ name: string; pk: number }>(
    'SELECT name, pk FROM pragma_table_info(?) ORDER BY cid',
    [name],
  );
  const references = await db.all<{ table: string }>(
    'SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)',
    [name],
  );
  return {
    name,
    columns: columns.map((c) => c.name),
    primaryKey: columns
      .filter((c) => Number(c.pk) > 0)
      .sort((a, b) => Number(a.pk) - Number(b.pk))
      .map((c) => c.name),
    references: references.map((r) => r.table).filter((t) => t !== name),
    identity: undefined,
  };
}

async function postgresShape(db: Queryable, name: string): Promise<TableShape> {
  const columns = await db.all<{ name: string; is_identity: string }>(
    `SELECT column_name AS name, is_identity FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`,
    [name],
  );
  const primaryKey = await db.all<{ name: string }>(
    `SELECT a.attname AS name
       FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = to_regclass(quote_ident(?)) AND i.indisprimary
      ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [name],
  );
  const references = await db.all<{ name: string }>(
    `SELECT DISTINCT ref.relname AS name
       FROM pg_constraint c JOIN pg_class ref ON ref.oid = c.confrelid
      WHERE c.contype = 'f' AND c.conrelid = to_regclass(quote_ident(?))`,
    [name],
  );
  return {
    name,
    columns: columns.map((c) => c.name),
    primaryKey: primaryKey.map((c) => c.name),
    references: references.map((r) => r.name).filter((t) => t !== name),
    identity: columns.find((c) => c.is_identity === 'YES')?.name,
  };
}

/** Tables ordered so each comes after those its foreign keys reference; ties by name. */
function parentsFirst(shapes: TableShape[]): TableShape[] {
  const byName = new Map(shapes.map((s) => [s.name, s]));
  const done = new Set<string>();
  const out: TableShape[] = [];
  const visit = (shape: TableShape, path: string[]) => {
    if (done.has(shape.name)) return;
    if (path.includes(shape.name)) {
      throw new AppError(
        'STORAGE_SCHEMA_MISMATCH',
        `foreign keys form a cycle (${[...path, shape.name].join(' → ')}): no order copies them`,
      );
    }
    for (const ref of shape.references) {
      const parent = byName.get(ref);
      if (parent) visit(parent, [...path, shape.name]);
    }
    done.add(shape.name);
    out.push(shape);
  };
  for (const shape of [...shapes].sort((a, b) => a.name.localeCompare(b.name))) visit(shape, []);
  return out;
}

/**
 * Refuses two schemas that differ in version, tables or columns: a table
 * or column on one side only would be lost (or left empty) without a word.
 */
export function assertSameSchema(source: Schema, target: Schema): void {
  const problems: string[] = [];
  if (source.version !== target.version) {
    problems.push(`the source is at migration ${source.version}, the target at ${target.version}`);
  }
  const describe = (s: Schema) =>
    new Map([
      ...s.tables.map((t) => [t.name, [...t.columns].sort().join(',')] as const),
      ...s.derived.map((d) => [d, '(derived)'] as const),
    ]);
  const from = describe(source);
  const to = describe(target);
  for (const [name, columns] of from) {
    if (!to.has(name)) problems.push(`table ${name} is missing from the ${target.dialect} target`);
    else if (to.get(name) !== columns) {
      problems.push(`table ${name} has columns (${columns}) in the source, (${to.get(name)}) in the target`);
    }
  }
  for (const name of to.keys()) {
    if (!from.has(name)) problems.push(`table ${name} is missing from the ${source.dialect} source`);
  }
  if (problems.length > 0) {
    throw new AppError(
      'STORAGE_SCHEMA_MISMATCH',
      `the two databases' schemas differ, so a copy would lose data: ${problems.join('; ')}`,
      { details: { problems } },
    );
  }
}

/** Tables of `schema` (keys and derived ones included) that hold rows, with their counts. */
export async function nonEmptyTables(db: Queryable, schema: Schema): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of [...schema.tables.map((t) => t.name), ...schema.derived]) {
    const n = await countRows(db, name);
    if (n > 0) out[name] = n;
  }
  return out;
}

export async function countRows(db: Queryable, table: string): Promise<number> {
  return Number((await db.get<{ n: number }>(`SELECT count(*) AS n FROM ${quote(table)}`))?.n ?? 0);
}

export interface CopyOptions {
  /** Tables left out (the keys table across engines). */
  skip?: ReadonlySet<string>;
  /** Rows read and written per statement, at most. */
  batchRows?: number;
  progress?: (table: string, rows: number) => void;
}

/** Rows copied, per table. */
export type CopyReport = Record<string, number>;

/** Bound parameters per INSERT, below both SQLite's (32766) and PostgreSQL's (65535) limits. */
const MAX_PARAMS = 30_000;

/**
 * Copies every row of `schema`'s tables from `source` to `target`. Call it
 * with `source` inside one read snapshot (or under an exclusive lock) and
 * `target` inside one transaction, so the copy is of one instant and lands
 * whole or not at all. Afterwards each table's row count is compared on both
 * sides, derived tables included.
 */
export async function copyRows(
  source: Queryable,
  target: Queryable,
  schema: Schema,
  options: CopyOptions = {},
): Promise<CopyReport> {
  const report: CopyReport = {};
  for (const table of schema.tables) {
    if (options.skip?.has(table.name)) continue;
    report[table.name] = await copyTable(source, target, table, options);
    options.progress?.(table.name, report[table.name]!);
  }
  const mismatched: string[] = [];
  for (const name of [...Object.keys(report), ...schema.derived]) {
    const [from, to] = [await countRows(source, name), await countRows(target, name)];
    if (from !== to) mismatched.push(`${name}: ${from} rows in the source, ${to} in the target`);
  }
  if (mismatched.length > 0) {
    throw new AppError('STORAGE_CORRUPT', `the copy does not match its source: ${mismatched.join('; ')}`);
  }
  // The target's own catalogue: identity columns exist only there when the source is SQLite.
  if (target.dialect === 'postgres') await advanceSequences(target, await readSchema(target));
  return report;
}

async function copyTable(
  source: Queryable,
  target: Queryable,
  table: TableShape,
  options: CopyOptions,
): Promise<number> {
  const columns = table.columns.map(quote).join(', ');
  const batch = Math.max(
    1,
    Math.min(options.batchRows ?? 1000, Math.floor(MAX_PARAMS / table.columns.length)),
  );
  const key = table.primaryKey;
  // Keyset paging on the primary key: each batch starts after the last key read. A table
  // without one is read in the order of all its columns, by offset (the snapshot holds still).
  const order = (key.length > 0 ? key : table.columns).map(quote).join(', ');
  let after: unknown[] | undefined;
  let copied = 0;
  for (;;) {
    let rows: Array<Record<string, unknown>>;
    if (key.length === 0) {
      rows = await source.all(
        `SELECT ${columns} FROM ${quote(table.name)} ORDER BY ${order} LIMIT ? OFFSET ?`,
        [batch, copied],
      );
    } else if (after === undefined) {
      rows = await source.all(`SELECT ${columns} FROM ${quote(table.name)} ORDER BY ${order} LIMIT ?`, [
        batch,
      ]);
    } else {
      const keyList = key.map(quote).join(', ');
      const marks = key.map(() => '?').join(', ');
      rows = await source.all(
        `SELECT ${columns} FROM ${quote(table.name)} WHERE (${keyList}) > (${marks}) ORDER BY ${order} LIMIT ?`,
        [...after, batch],
      );
    }
    if (rows.length === 0) return copied;
    const values = rows.flatMap((row) => table.columns.map((c) => row[c] ?? null));
    const tuple = `(${table.columns.map(() => '?').join(', ')})`;
    await target.run(
      `INSERT INTO ${quote(table.name)} (${columns}) VALUES ${rows.map(() => tuple).join(', ')}`,
      values,
    );
    copied += rows.length;
    const last = rows.at(-1)!;
    after = key.map((c) => last[c]);
    if (rows.length < batch) return copied;
  }
}

/**
 * Rows inserted with their ids leave each identity sequence where it was:
 * the next insert would take id 1 and collide. Each is moved past the
 * largest id (or back to the start for an empty table).
 */
async function advanceSequences(target: Queryable, schema: Schema): Promise<void> {
  for (const table of schema.tables) {
    if (!table.identity) continue;
    const t = quote(table.name);
    const c = quote(table.identity);
    await target.get(
      `SELECT setval(pg_get_serial_sequence(?, ?), coalesce((SELECT max(${c}) FROM ${t}), 1),
              (SELECT max(${c}) FROM ${t}) IS NOT NULL)`,
      [table.name, table.identity],
    );
  }
}

/** The other side of a copy, checked and ready: same schema, and empty. */
export async function prepareTarget(source: Queryable, target: Queryable, where: string): Promise<Schema> {
  const [from, to] = [await readSchema(source), await readSchema(target)];
  assertSameSchema(from, to);
  // Keys included: a target with keys of its own would sign with the wrong ones.
  const filled = await nonEmptyTables(target, to);
  if (Object.keys(filled).length > 0) {
    throw new AppError(
      'STORAGE_TARGET_NOT_EMPTY',
      `${where} holds data already (${Object.entries(filled)
        .map(([n, c]) => `${n}: ${c} rows`)
        .join(', ')}); copy into a new, empty database`,
      { details: { tables: filled } },
    );
  }
  return from;
}
