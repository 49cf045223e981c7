import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { AppError } from '../errors.ts';
import {
  type Database,
  databaseUnavailable,
  type MigrationResult,
  type SqlParams,
  TransactionScope,
} from './database.ts';
import { MIGRATIONS_DIR } from './db.ts';

/** SQL with SQLite's placeholders, rewritten once for PostgreSQL. */
interface Translated {
  text: string;
  /** For `@name` placeholders: the name of each `$n`, in order. */
  names: string[] | undefined;
}

/**
 * Rewrites `?` and `@name` placeholders to `$1`, `$2`, … outside string
 * literals, quoted identifiers and comments. A name used twice gets one
 * number. Mixing both kinds in one statement is refused.
 */
export function translatePlaceholders(sql: string): Translated {
  let text = '';
  let positional = 0;
  const names: string[] = [];
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      text += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      text += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '?') {
      positional += 1;
      text += `$${positional}`;
    } else if (c === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      const name = /^[A-Za-z_]\w*/.exec(sql.slice(i + 1))![0];
      let n = names.indexOf(name);
      if (n < 0) n = names.push(name) - 1;
      text += `$${n + 1}`;
      i += name.length;
    } else {
      text += c;
    }
  }
  if (positional > 0 && names.length > 0) throw new Error(`mixed ? and @name placeholders: ${sql}`);
  return { text, names: names.length > 0 ? names : undefined };
}

// bigint (count(*), BIGINT columns) and numeric (sum of bigints) as numbers: reef's values
// (milliseconds, byte counts, ids) stay far below 2^53.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return Number;
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

const MIGRATION_LOCK = 0x7265_6566; // "reef"

/**
 * PostgreSQL's SQLSTATEs and the client's socket errors as reef's codes:
 * what says the server is gone or refusing work is 503 STORAGE_UNAVAILABLE
 * (the request may be retried), a full disk 507, a read-only server 503.
 * Other errors pass unchanged.
 */
export function translatePgError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  const code = (err as { code?: unknown })?.code;
  if (code === '53100') {
    return new AppError('STORAGE_FULL', 'the database server has no storage space left; try again later', {
      cause: err,
    });
  }
  if (code === '25006') {
    return new AppError(
      'STORAGE_READ_ONLY',
      'the database server is read-only; writes fail until it is writable',
      {
        cause: err,
      },
    );
  }
  const connectionLost =
    (typeof code === 'string' &&
      (/^08/.test(code) ||
        /^57P0[123]$/.test(code) ||
        code === '53300' ||
        /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code) ||
        code === 'ENOTFOUND')) ||
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      (err as Error)?.message ?? '',
    );
  return connectionLost ? databaseUnavailable(err, 'the database server cannot be reached') : err;
}

export interface PostgresOptions {
  /** Connections this process keeps at most. */
  maxConnections?: number;
  /** Where the migrations live (tests point elsewhere). */
  migrationsDir?: string;
}

/** PostgreSQL, for reef replicas that share one database. */
export class PostgresDatabase extends TransactionScope<pg.PoolClient> implements Database {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  /** Connections that hold advisory locks: apart, so long lock holders never starve queries of connections. */
  private readonly lockPool: pg.Pool;
  private readonly translated = new Map<string, Translated>();
  private readonly migrationsDir: string;

  constructor(url: string, options: PostgresOptions = {}) {
    super();
    this.migrationsDir = options.migrationsDir ?? MIGRATIONS_DIR;
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      types,
    });
    this.lockPool = new pg.Pool({
      connectionString: url,
      max: Math.max(2, Math.ceil((options.maxConnections ?? 10) / 2)),
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      types,
    });
    // A pooled connection the server drops while idle: the next checkout gets a new one.
    this.pool.on('error', () => {});
    this.lockPool.on('error', () => {});
  }

  private query(sql: string, params: SqlParams | undefined): { text: string; values: unknown[] } {
    let t = this.translated.get(sql);
    if (!t) {
      t = translatePlaceholders(sql);
      this.translated.set(sql, t);
    }
    if (params === undefined) return { text: t.text, values: [] };
    if (Array.isArray(params)) return { text: t.text, values: params as unknown[] };
    const named = params as Record<string, unknown>;
    const values = (t.names ?? []).map((n) => {
      if (!(n in named)) throw new Error(`no value for @${n} in: ${sql}`);
      return named[n];
    });
    return { text: t.text, values };
  }

  private async execute(sql: string, params: SqlParams | undefined): Promise<pg.QueryResult> {
    const tx = this.current();
    const { text, values } = this.query(sql, params);
    // Outside a transaction on a connection of its own, taken here rather than by pool.query, so
    // that a failure to connect is told apart from the statement's own errors.
    const client = tx ? tx.connection : await this.connect(this.pool);
    try {
      const result = await client.query(text, values);
      if (!tx) client.release();
      return result;
    } catch (err) {
      // As pool.query does: a connection whose statement failed is not reused.
      if (!tx) client.release(true);
      throw translatePgError(err);
    }
  }

  async lockForTransaction(name: string): Promise<void> {
    const tx = this.current();
    if (tx?.kind !== 'write') throw new Error('lockForTransaction() outside transact()');
    await this.execute('SELECT pg_advisory_xact_lock(hashtextextended(?, 0))', [`reef:${name}`]);
  }

  /**
   * A session advisory lock on a connection of its own, held while `fn`
   * runs: the server releases it when that connection ends, so a replica
   * killed mid-build does not hold it. Named locks hash into PostgreSQL's
   * 64-bit lock space (hashtextextended); a collision only makes two names
   * wait for each other.
   */
  async exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction()) throw new Error('exclusive() inside a transaction');
    const client = await this.connect(this.lockPool);
    let broken = false;
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [`reef:${name}`]);
    } catch (err) {
      client.removeListener('error', onError);
      client.release(true);
      throw translatePgError(err);
    }
    try {
      return await fn();
    } finally {
      try {
        if (!broken)
          await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [`reef:${name}`]);
      } catch {
        broken = true;
      }
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  async get<T>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return (await this.execute(sql, params)).rows[0] as T | undefined;
  }

  async all<T>(sql: string, params?: SqlParams): Promise<T[]> {
    return (await this.execute(sql, params)).rows as T[];
  }

  async run(sql: string, params?: SqlParams): Promise<number> {
    return (await this.execute(sql, params)).rowCount ?? 0;
  }

  /**
   * A connection of `pool`. Any failure to get one is STORAGE_UNAVAILABLE,
   * whatever the server's reason (down, refusing connections to this
   * database, out of slots): the request may succeed later.
   */
  private async connect(pool: pg.Pool): Promise<pg.PoolClient> {
    try {
      return await pool.connect();
    } catch (err) {
      const translated = translatePgError(err);
      throw translated instanceof AppError
        ? translated
        : databaseUnavailable(err, 'the database server cannot be reached');
    }
  }

  protected async begin(kind: 'read' | 'write'): Promise<pg.PoolClient> {
    const client = await this.connect(this.pool);
    // The pool stops listening for a connection's errors while it is lent out. One the server
    // ends between this transaction's statements (a restart, an administrator's terminate)
    // emits 'error', which without a listener ends the process; its next statement fails anyway.
    client.on('error', ignoreLostConnection);
    try {
      await client.query(kind === 'read' ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
    } catch (err) {
      client.removeListener('error', ignoreLostConnection);
      client.release(true);
      throw translatePgError(err);
    }
    return client;
  }

  protected async finish(client: pg.PoolClient, _kind: 'read' | 'write', commit: boolean): Promise<void> {
    try {
      await client.query(commit ? 'COMMIT' : 'ROLLBACK');
      client.removeListener('error', ignoreLostConnection);
      client.release();
    } catch (err) {
      // The connection's state is unknown: it is not reused.
      client.removeListener('error', ignoreLostConnection);
      client.release(true);
      // A COMMIT whose answer was lost may or may not have happened: the caller must not
      // acknowledge it, so this is an error like any other.
      throw translatePgError(err);
    }
  }

  protected async exec(client: pg.PoolClient, sql: string): Promise<void> {
    try {
      await client.query(sql);
    } catch (err) {
      throw translatePgError(err);
    }
  }

  /**
   * Applies migrations/postgres/NNNN_name.sql in order, each in its own
   * transaction, under an advisory lock so replicas starting together apply
   * each once. The history may start with a baseline: the first file stands
   * for every version up to its number. Every SQLite migration past it must
   * have its PostgreSQL twin, so both engines always reach the same version.
   */
  async migrate(): Promise<MigrationResult> {
    const files = migrationFiles(join(this.migrationsDir, 'postgres'));
    const sqliteVersions = migrationFiles(this.migrationsDir).map((f) => f.version);
    const newest = Math.max(0, ...sqliteVersions);
    const baseline = files[0]?.version ?? 0;
    const missing = sqliteVersions.filter((v) => v > baseline && !files.some((f) => f.version === v));
    if (files.length === 0 || missing.length > 0 || (files.at(-1)?.version ?? 0) !== newest) {
      throw new Error(
        `migrations/postgres lacks the PostgreSQL version of migration(s) ${missing.join(', ') || newest}`,
      );
    }
    const client = await this.connect(this.pool);
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
      const done = new Set(
        (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) =>
          Number(r.version),
        ),
      );
      const applied: string[] = [];
      for (const file of files) {
        if (done.has(file.version)) continue;
        if (done.size > 0 && file.version === baseline) continue;
        await client.query('BEGIN');
        try {
          await client.query(readFileSync(file.path, 'utf8'));
          await client.query(
            'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
            [file.version, file.name, Date.now()],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
        applied.push(file.name);
      }
      const row = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
      return { applied, version: Number(row.rows[0]?.v ?? 0) };
    } catch (err) {
      throw translatePgError(err);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
      client.release();
    }
  }

  /**
   * How many other client connections the database has (servers, psql, …):
   * what commands that need reef stopped ask, PostgreSQL having no lock a
   * server holds while it runs. Counted from a connection of this pool, which
   * it leaves out; ask before this process opens more (an `exclusive` holds a
   * second one).
   */
  async otherSessions(): Promise<number> {
    const row = await this.get<{ n: number }>(
      `SELECT count(*) AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
    );
    return Number(row?.n ?? 0);
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.lockPool.end()]);
  }
}

/** See begin(): a lost connection is reported by the statement that next uses it. */
function ignoreLostConnection(): void {}

function migrationFiles(dir: string): Array<{ version: number; name: string; path: string }> {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, path: join(dir, f) }));
}
