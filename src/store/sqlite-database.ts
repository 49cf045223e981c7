import type { Statement } from 'better-sqlite3';
import {
  type Database,
  LocalLocks,
  type MigrationResult,
  type SqlParams,
  TransactionScope,
} from './database.ts';
import { type Db, migrate, openDb, translateDbError } from './db.ts';

/** A connection and the statements prepared on it, each once per SQL text. */
class Connection {
  private readonly statements = new Map<string, Statement>();

  constructor(readonly db: Db) {}

  prepare(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

function bind(params: SqlParams | undefined): unknown[] {
  if (params === undefined) return [];
  return Array.isArray(params) ? (params as unknown[]) : [params];
}

/**
 * The embedded engine: one SQLite file in WAL mode. better-sqlite3 answers
 * synchronously; the promises are for the interface's sake.
 *
 * One connection writes, its transactions one at a time (a queue in this
 * process; BEGIN IMMEDIATE and the busy timeout against other processes).
 * Reads outside a transaction go to a second connection, so they never see
 * a write transaction's uncommitted rows while it waits on a statement, and
 * `read(fn)` takes a connection of its own for its snapshot (WAL lets
 * readers run beside the writer).
 */
export class SqliteDatabase extends TransactionScope<Connection> implements Database {
  readonly dialect = 'sqlite' as const;
  private readonly writer: Connection;
  private readonly reader: Connection;
  private readonly idleSnapshots: Connection[] = [];
  private writeQueue: Promise<void> = Promise.resolve();
  private releaseWriter: (() => void) | undefined;
  private closed = false;
  private readonly locks = new LocalLocks();

  constructor(
    private readonly path: string,
    /** The writing connection, when the caller opened it already; closed with this. */
    writer: Db = openDb(path),
  ) {
    super();
    this.writer = new Connection(writer);
    this.reader = new Connection(openDb(path));
  }

  /** The database `db` has open, written through `db` (closed with the result). */
  static over(db: Db): SqliteDatabase {
    return new SqliteDatabase(db.name, db);
  }

  /** The writing connection, for code that still talks to better-sqlite3 itself. */
  get raw(): Db {
    return this.writer.db;
  }

  async migrate(): Promise<MigrationResult> {
    return migrate(this.writer.db);
  }

  async lockForTransaction(_name: string): Promise<void> {
    const tx = this.current();
    if (tx?.kind !== 'write') throw new Error('lockForTransaction() outside transact()');
    // Write transactions run one at a time (BEGIN IMMEDIATE): held already.
  }

  /** One server per data folder: a lock in this process is one across them. */
  exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction()) throw new Error('exclusive() inside a transaction');
    return this.locks.run(name, fn);
  }

  async get<T>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return this.statement(sql, (s) => s.get(...bind(params)) as T | undefined);
  }

  async all<T>(sql: string, params?: SqlParams): Promise<T[]> {
    return this.statement(sql, (s) => s.all(...bind(params)) as T[]);
  }

  async run(sql: string, params?: SqlParams): Promise<number> {
    return this.statement(sql, (s) => s.run(...bind(params)).changes);
  }

  /**
   * Runs one statement where it belongs: in the caller's transaction, else a
   * read on the reading connection, else a write in a transaction of its own.
   */
  private statement<T>(sql: string, use: (s: Statement) => T): T | Promise<T> {
    const tx = this.current();
    try {
      if (tx) {
        const statement = tx.connection.prepare(sql);
        if (tx.kind === 'read' && !statement.readonly) throw new Error(`a write inside read(): ${sql}`);
        return use(statement);
      }
      const readStatement = this.reader.prepare(sql);
      if (readStatement.readonly) return use(readStatement);
    } catch (err) {
      throw translateDbError(err);
    }
    return this.transact(async () => this.statement(sql, use));
  }

  protected async begin(kind: 'read' | 'write'): Promise<Connection> {
    if (this.closed) throw new Error('the database is closed');
    if (kind === 'read') {
      const connection = this.idleSnapshots.pop() ?? new Connection(openDb(this.path));
      connection.db.exec('BEGIN');
      return connection;
    }
    const previous = this.writeQueue;
    let release!: () => void;
    this.writeQueue = new Promise((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      this.writer.db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      release();
      throw translateDbError(err);
    }
    this.releaseWriter = release;
    return this.writer;
  }

  protected async finish(connection: Connection, kind: 'read' | 'write', commit: boolean): Promise<void> {
    try {
      if (commit) connection.db.exec('COMMIT');
      else if (connection.db.inTransaction) connection.db.exec('ROLLBACK');
    } catch (err) {
      if (connection.db.inTransaction) connection.db.exec('ROLLBACK');
      throw translateDbError(err);
    } finally {
      if (kind === 'read') {
        if (this.closed) connection.db.close();
        else this.idleSnapshots.push(connection);
      } else {
        const release = this.releaseWriter;
        this.releaseWriter = undefined;
        release?.();
      }
    }
  }

  protected async exec(connection: Connection, sql: string): Promise<void> {
    try {
      connection.db.exec(sql);
    } catch (err) {
      throw translateDbError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Transactions under way finish first.
    await this.writeQueue;
    for (const connection of this.idleSnapshots.splice(0)) connection.db.close();
    this.reader.db.close();
    this.writer.db.close();
  }
}

/**
 * The better-sqlite3 connection behind `database`, for code not yet moved to
 * the engine-neutral interface; it fails on any other engine.
 */
export function sqliteOf(database: Database): Db {
  if (database instanceof SqliteDatabase) return database.raw;
  throw new Error(`this part of reef runs on SQLite only so far, not on ${database.dialect}`);
}
