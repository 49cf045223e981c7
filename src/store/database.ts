import { AsyncLocalStorage } from 'node:async_hooks';
import { AppError } from '../errors.ts';

/**
 * The one way reef's stores reach their database, whichever engine holds it:
 * SQLite in the data folder (sqlite-database.ts) or PostgreSQL
 * (postgres-database.ts). Every call is asynchronous, so one store's code
 * runs on both.
 *
 * SQL is written once, in the subset both engines share, with SQLite's
 * placeholders: `?` by position or `@name` with an object. PostgreSQL's
 * engine rewrites them to `$n`. Where the dialects differ, a store asks
 * `dialect`.
 *
 * Transactions follow the caller: a statement issued anywhere inside
 * `transact(fn)` or `read(fn)` (however deep in other stores' code) runs in
 * that transaction, found through AsyncLocalStorage, and a `transact` inside
 * another becomes a savepoint. So a store method joins its caller's
 * transaction without being handed it, as better-sqlite3's nested
 * transactions did.
 */
export type Dialect = 'sqlite' | 'postgres';

export type SqlParams = readonly unknown[] | Readonly<Record<string, unknown>>;

export interface Queryable {
  readonly dialect: Dialect;
  /** The first row, or undefined. */
  get<T>(sql: string, params?: SqlParams): Promise<T | undefined>;
  all<T>(sql: string, params?: SqlParams): Promise<T[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: SqlParams): Promise<number>;
}

export interface Database extends Queryable {
  /**
   * Runs `fn` in one read-only transaction: every read in it sees the same
   * committed state. Inside a transaction already, runs in that one.
   */
  read<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one transaction, committed when it resolves and rolled back
   * when it throws. `fn` must await nothing but statements: no blob I/O, no
   * network, so transactions stay short on every engine. Statements outside
   * any transaction run on their own (autocommit).
   */
  transact<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Calls `fn` once the outermost transaction around the caller has
   * committed (never when it rolls back); outside a transaction, at once.
   * For what must not happen before the data is durable: notifying the
   * indexer, filling caches.
   */
  afterCommit(fn: () => void): void;
  /** Whether the caller runs inside a transaction. */
  inTransaction(): boolean;
  /**
   * Runs `fn` while holding the lock named `name`, outside any transaction:
   * one holder at a time across every process on this database (replicas
   * too, on PostgreSQL, where a holder that dies lets go with its
   * connection). For long work such as an index build: statements inside
   * run on their own, not under the lock's connection.
   */
  exclusive<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Inside `transact`: waits until no other transaction holds `name`, then
   * holds it until this transaction ends. What two replicas must decide
   * one after the other (who takes a name-version slot) takes it first.
   * SQLite runs one write transaction at a time, so there it costs nothing.
   */
  lockForTransaction(name: string): Promise<void>;
  /** Brings the schema up to the newest migration (several replicas may call it at once). */
  migrate(): Promise<MigrationResult>;
  close(): Promise<void>;
}

export interface MigrationResult {
  applied: string[];
  version: number;
}

/** The transaction a call runs in, as the engines track it. */
export interface TxContext<C> {
  readonly connection: C;
  readonly kind: 'read' | 'write';
  /** Depth of nested `transact` calls: each level is a savepoint. */
  depth: number;
  /** Set when the transaction has ended: a statement that comes later is a bug (a floating promise). */
  ended: boolean;
  readonly onCommit: Array<() => void>;
}

/**
 * What both engines share: finding the caller's transaction, savepoints for
 * nesting, after-commit callbacks, and refusing statements from a
 * transaction that has ended.
 */
export abstract class TransactionScope<C> {
  private readonly scope = new AsyncLocalStorage<TxContext<C>>();
  private savepoints = 0;

  protected current(): TxContext<C> | undefined {
    const tx = this.scope.getStore();
    if (tx?.ended) {
      throw new Error(
        'a statement ran after its transaction ended: something inside transact()/read() was not awaited',
      );
    }
    return tx;
  }

  inTransaction(): boolean {
    return this.current() !== undefined;
  }

  afterCommit(fn: () => void): void {
    const tx = this.current();
    if (tx && tx.kind === 'write') tx.onCommit.push(fn);
    else fn();
  }

  protected abstract begin(kind: 'read' | 'write'): Promise<C>;
  protected abstract finish(connection: C, kind: 'read' | 'write', commit: boolean): Promise<void>;
  protected abstract exec(connection: C, sql: string): Promise<void>;

  read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.current()) return fn();
    return this.outermost('read', fn);
  }

  transact<T>(fn: () => Promise<T>): Promise<T> {
    const tx = this.current();
    if (!tx) return this.outermost('write', fn);
    if (tx.kind === 'read')
      throw new Error('transact() called inside read(): a read transaction cannot write');
    return this.nested(tx, fn);
  }

  private async outermost<T>(kind: 'read' | 'write', fn: () => Promise<T>): Promise<T> {
    const connection = await this.begin(kind);
    const tx: TxContext<C> = { connection, kind, depth: 0, ended: false, onCommit: [] };
    let result: T;
    try {
      result = await this.scope.run(tx, fn);
    } catch (err) {
      tx.ended = true;
      await this.finish(connection, kind, false);
      throw err;
    }
    tx.ended = true;
    await this.finish(connection, kind, true);
    for (const callback of tx.onCommit) callback();
    return result;
  }

  private async nested<T>(tx: TxContext<C>, fn: () => Promise<T>): Promise<T> {
    this.savepoints += 1;
    const name = `reef_sp_${this.savepoints}`;
    await this.exec(tx.connection, `SAVEPOINT ${name}`);
    tx.depth += 1;
    const callbacks = tx.onCommit.length;
    try {
      const result = await fn();
      await this.exec(tx.connection, `RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      await this.exec(tx.connection, `ROLLBACK TO SAVEPOINT ${name}`);
      await this.exec(tx.connection, `RELEASE SAVEPOINT ${name}`);
      // What the rolled-back part registered never happened.
      tx.onCommit.length = callbacks;
      throw err;
    } finally {
      tx.depth -= 1;
    }
  }
}

/** Resolves when the database answers a query, rejects when it cannot (readiness). */
export async function pingDatabase(database: Queryable): Promise<void> {
  await database.get('SELECT 1');
}

/** An engine that cannot be reached, as reef's 503. */
export function databaseUnavailable(err: unknown, what = 'the database cannot be reached'): AppError {
  const detail = err instanceof Error ? err.message : String(err);
  return new AppError('STORAGE_UNAVAILABLE', `${what} (${detail}); try again later`, { cause: err });
}

/**
 * Whether `err` is a unique-constraint violation on either engine (SQLite's
 * SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY, PostgreSQL's SQLSTATE 23505).
 */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/**
 * Named locks within one process: each name's holders run one after another.
 * The embedded engine's `exclusive` (one server per data folder).
 */
export class LocalLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.tails.set(name, tail);
    await previous;
    try {
      return await fn();
    } finally {
      if (this.tails.get(name) === tail) this.tails.delete(name);
      release();
    }
  }
}

/**
 * A subquery of the elements of a JSON array given as one parameter (`?` or
 * `@name`), as rows of one column `value`: how a list of any length goes
 * into an `IN (…)` as one bound value, on either engine. PostgreSQL compares
 * only like types, so a list of ids says so (`'bigint'`); SQLite's json_each
 * yields each element with its own type already.
 */
export function jsonListSql(dialect: Dialect, param: string, type: 'text' | 'bigint' = 'text'): string {
  if (dialect === 'sqlite') return `SELECT value FROM json_each(${param})`;
  const value = type === 'bigint' ? 'value::bigint AS value' : 'value';
  return `SELECT ${value} FROM json_array_elements_text(${param}::json) AS list(value)`;
}

/**
 * A join whose left side SQLite must keep as the outer loop: its CROSS JOIN
 * (sqlite.org/optoverview.html, "Manual Control Of Query Plans Using CROSS
 * JOIN"). PostgreSQL takes no such hint, and no ON after CROSS JOIN: there
 * it is a plain join, ordered by its planner.
 */
export function outerFirstJoin(dialect: Dialect): string {
  return dialect === 'postgres' ? 'JOIN' : 'CROSS JOIN';
}
