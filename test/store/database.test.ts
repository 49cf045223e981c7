import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isAppError } from '../../src/errors.ts';
import { type Database, isUniqueViolation, jsonListSql } from '../../src/store/database.ts';
import { PostgresDatabase, translatePlaceholders } from '../../src/store/postgres-database.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';

/**
 * The contract every database engine keeps, run against each: SQLite in a
 * temp folder, and a real PostgreSQL (skipped with a message without one).
 */
interface Engine {
  name: string;
  skip: string | false;
  open(): Promise<{ db: Database; cleanup(): Promise<void> }>;
}

const engines: Engine[] = [
  {
    name: 'sqlite',
    skip: false,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'reef-database-'));
      const db = new SqliteDatabase(join(dir, 'reef.db'));
      return {
        db,
        async cleanup() {
          await db.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: needsPg.skip,
    async open() {
      const url = await freshDatabase('reef-contract');
      const db = new PostgresDatabase(url);
      return {
        db,
        async cleanup() {
          await db.close();
          await dropDatabase(url);
        },
      };
    },
  },
];

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

async function withTable(engine: Engine, fn: (db: Database) => Promise<void>): Promise<void> {
  const { db, cleanup } = await engine.open();
  try {
    await db.run('CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)');
    await fn(db);
  } finally {
    await cleanup();
  }
}

for (const engine of engines) {
  describe(`database contract: ${engine.name}`, { skip: engine.skip }, () => {
    test('placeholders by position and by name; big integers come back as numbers', async () => {
      await withTable(engine, async (db) => {
        assert.equal(await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 1_700_000_000_000]), 1);
        assert.equal(await db.run('INSERT INTO t (k, n) VALUES (@key, @n)', { key: 'b', n: 2 }), 1);
        // A name used twice, and a literal holding what looks like placeholders.
        const row = await db.get<{ k: string; n: number; lit: string }>(
          "SELECT k, n, '? @x' AS lit FROM t WHERE k = @key OR n = @n AND k = @key",
          { key: 'b', n: 2 },
        );
        assert.deepEqual({ ...row }, { k: 'b', n: 2, lit: '? @x' });
        const all = await db.all<{ k: string; n: number }>('SELECT k, n FROM t ORDER BY k');
        assert.deepEqual(
          all.map((r) => [r.k, r.n]),
          [
            ['a', 1_700_000_000_000],
            ['b', 2],
          ],
        );
        const count = await db.get<{ c: number; s: number }>('SELECT count(*) AS c, sum(n) AS s FROM t');
        assert.equal(count?.c, 2);
        assert.equal(count?.s, 1_700_000_000_002);
        assert.equal(await db.get('SELECT k FROM t WHERE k = ?', ['none']), undefined);
      });
    });

    test('a transaction commits what it wrote, then runs its after-commit callbacks', async () => {
      await withTable(engine, async (db) => {
        const events: string[] = [];
        const result = await db.transact(async () => {
          await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 1]);
          db.afterCommit(() => events.push('committed'));
          assert.equal(db.inTransaction(), true);
          events.push('body');
          return 'done';
        });
        assert.equal(result, 'done');
        assert.deepEqual(events, ['body', 'committed']);
        assert.equal(db.inTransaction(), false);
        assert.equal((await db.get<{ n: number }>('SELECT n FROM t WHERE k = ?', ['a']))?.n, 1);
        // Outside a transaction a callback runs at once.
        db.afterCommit(() => events.push('now'));
        assert.deepEqual(events, ['body', 'committed', 'now']);
      });
    });

    test('a transaction that throws leaves nothing and calls nothing back', async () => {
      await withTable(engine, async (db) => {
        let called = false;
        await assert.rejects(
          db.transact(async () => {
            await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 1]);
            db.afterCommit(() => {
              called = true;
            });
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(called, false);
        assert.equal(await db.get('SELECT * FROM t'), undefined);
      });
    });

    test('a nested transaction is a savepoint: its failure undoes only its own part', async () => {
      await withTable(engine, async (db) => {
        const events: string[] = [];
        await db.transact(async () => {
          await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['outer', 1]);
          await assert.rejects(
            db.transact(async () => {
              await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['inner', 2]);
              db.afterCommit(() => events.push('inner'));
              throw new Error('inner fails');
            }),
            /inner fails/,
          );
          await db.transact(async () => {
            await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['second', 3]);
            db.afterCommit(() => events.push('second'));
          });
          // Inside the outer transaction, nothing has committed yet.
          assert.deepEqual(events, []);
        });
        assert.deepEqual(events, ['second']);
        const keys = (await db.all<{ k: string }>('SELECT k FROM t ORDER BY k')).map((r) => r.k);
        assert.deepEqual(keys, ['outer', 'second']);
      });
    });

    test('reads outside a transaction never see its uncommitted rows', async () => {
      await withTable(engine, async (db) => {
        const written = gate();
        const release = gate();
        const tx = db.transact(async () => {
          await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 1]);
          written.open();
          await release.opened;
        });
        await written.opened;
        assert.equal(await db.get('SELECT * FROM t'), undefined);
        release.open();
        await tx;
        assert.equal((await db.get<{ n: number }>('SELECT n FROM t'))?.n, 1);
      });
    });

    test('read() sees one snapshot while others commit', async () => {
      await withTable(engine, async (db) => {
        await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 1]);
        const firstRead = gate();
        const committed = gate();
        const snapshot = db.read(async () => {
          const before = await db.get<{ n: number }>('SELECT n FROM t WHERE k = ?', ['a']);
          firstRead.open();
          await committed.opened;
          const after = await db.get<{ n: number }>('SELECT n FROM t WHERE k = ?', ['a']);
          return [before?.n, after?.n];
        });
        await firstRead.opened;
        await db.run('UPDATE t SET n = ? WHERE k = ?', [2, 'a']);
        committed.open();
        assert.deepEqual(await snapshot, [1, 1]);
        assert.equal((await db.get<{ n: number }>('SELECT n FROM t'))?.n, 2);
        // A write inside a read transaction is refused.
        await assert.rejects(db.read(() => db.transact(async () => {})));
      });
    });

    test('concurrent transactions each apply once', async () => {
      await withTable(engine, async (db) => {
        await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['counter', 0]);
        await Promise.all(
          Array.from({ length: 25 }, (_, i) =>
            db.transact(async () => {
              await db.run('UPDATE t SET n = n + 1 WHERE k = ?', ['counter']);
              await db.run('INSERT INTO t (k, n) VALUES (?, ?)', [`row-${i}`, i]);
            }),
          ),
        );
        assert.equal((await db.get<{ n: number }>('SELECT n FROM t WHERE k = ?', ['counter']))?.n, 25);
        assert.equal((await db.get<{ c: number }>('SELECT count(*) AS c FROM t'))?.c, 26);
      });
    });

    test('a duplicate key is recognised as such on every engine', async () => {
      await withTable(engine, async (db) => {
        await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 1]);
        const err = await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['a', 2]).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.equal(isUniqueViolation(err), true, String(err));
        // ON CONFLICT DO NOTHING and RETURNING are in the shared subset.
        assert.equal(await db.run('INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT DO NOTHING', ['a', 3]), 0);
        const inserted = await db.get<{ k: string }>('INSERT INTO t (k, n) VALUES (?, ?) RETURNING k', [
          'b',
          1,
        ]);
        assert.equal(inserted?.k, 'b');
      });
    });

    test('exclusive: one holder per name at a time, others meanwhile', async () => {
      await withTable(engine, async (db) => {
        const events: string[] = [];
        const entered = gate();
        const release = gate();
        const first = db.exclusive('index:a', async () => {
          events.push('first in');
          entered.open();
          await release.opened;
          events.push('first out');
        });
        await entered.opened;
        const second = db.exclusive('index:a', async () => {
          events.push('second in');
        });
        // Another name is not held up.
        await db.exclusive('index:b', async () => {
          events.push('other');
        });
        // Statements inside run, on their own.
        await db.exclusive('index:c', () => db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['c', 1]));
        assert.deepEqual(events, ['first in', 'other']);
        release.open();
        await Promise.all([first, second]);
        assert.deepEqual(events, ['first in', 'other', 'first out', 'second in']);
        // A holder that throws lets go.
        await assert.rejects(
          db.exclusive('index:a', async () => Promise.reject(new Error('x'))),
          /x/,
        );
        await db.exclusive('index:a', async () => {});
        await assert.rejects(db.transact(() => db.exclusive('index:a', async () => {})));
      });
    });

    test('a transaction lock orders transactions that take it', async () => {
      await withTable(engine, async (db) => {
        await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['slot', 0]);
        // Read, then write what was read: only correct if the two never interleave.
        await Promise.all(
          Array.from({ length: 10 }, () =>
            db.transact(async () => {
              await db.lockForTransaction('slot');
              const row = await db.get<{ n: number }>('SELECT n FROM t WHERE k = ?', ['slot']);
              await db.run('UPDATE t SET n = ? WHERE k = ?', [row!.n + 1, 'slot']);
            }),
          ),
        );
        assert.equal((await db.get<{ n: number }>('SELECT n FROM t WHERE k = ?', ['slot']))?.n, 10);
        await assert.rejects(db.lockForTransaction('slot'), /outside transact/);
      });
    });

    test('a list goes in as one JSON parameter', async () => {
      await withTable(engine, async (db) => {
        for (const k of ['a', 'b', 'c']) await db.run('INSERT INTO t (k, n) VALUES (?, ?)', [k, 1]);
        const rows = await db.all<{ k: string }>(
          `SELECT k FROM t WHERE k IN (${jsonListSql(db.dialect, '?')}) ORDER BY k`,
          [JSON.stringify(['c', 'a', "it's"])],
        );
        assert.deepEqual(
          rows.map((r) => r.k),
          ['a', 'c'],
        );
        // Ids against a BIGINT column, beyond 32 bits.
        await db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['big', 2 ** 40]);
        const byId = await db.all<{ k: string }>(
          `SELECT k FROM t WHERE n IN (${jsonListSql(db.dialect, '?', 'bigint')}) ORDER BY k`,
          [JSON.stringify([2 ** 40, 7])],
        );
        assert.deepEqual(
          byId.map((r) => r.k),
          ['big'],
        );
      });
    });

    test('a statement after its transaction ended is refused (a forgotten await)', async () => {
      await withTable(engine, async (db) => {
        let late: Promise<unknown> | undefined;
        const wait = gate();
        await db.transact(async () => {
          late = wait.opened.then(() => db.run('INSERT INTO t (k, n) VALUES (?, ?)', ['late', 1]));
        });
        wait.open();
        await assert.rejects(late!, /after its transaction ended/);
        assert.equal(await db.get('SELECT * FROM t'), undefined);
      });
    });
  });
}

test('PostgreSQL: a lock holds across replicas and dies with its holder', needsPg, async () => {
  const url = await freshDatabase('reef-locks');
  const a = new PostgresDatabase(url);
  const b = new PostgresDatabase(url);
  try {
    const entered = gate();
    const stop = gate();
    let bIn = false;
    const held = a.exclusive('index:x', async () => {
      entered.open();
      await stop.opened;
    });
    await entered.opened;
    const waiting = b.exclusive('index:x', async () => {
      bIn = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(bIn, false, 'another replica waits while one holds the lock');
    // The holder's connection dies (a replica killed): the lock goes with it.
    // Only this test's database: other test files (and replicas' tests) hold advisory locks on the same server.
    await b.run(
      `SELECT pg_terminate_backend(pid) FROM pg_locks
       WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    await waiting;
    assert.equal(bIn, true);
    stop.open();
    await held;
    // And the lock can be taken again by the one whose connection died.
    await a.exclusive('index:x', async () => {});
  } finally {
    await a.close();
    await b.close();
    await dropDatabase(url);
  }
});

test('PostgreSQL that cannot be reached is 503 STORAGE_UNAVAILABLE', async () => {
  // Nothing listens on port 1 of the loopback address.
  const db = new PostgresDatabase('postgres://reef@127.0.0.1:1/reef');
  try {
    const err = await db.get('SELECT 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isAppError(err, 'STORAGE_UNAVAILABLE'), String(err));
    const inTx = await db
      .transact(async () => {})
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(isAppError(inTx, 'STORAGE_UNAVAILABLE'), String(inTx));
  } finally {
    await db.close();
  }
});

test('placeholders are rewritten outside literals, identifiers and comments only', () => {
  assert.deepEqual(translatePlaceholders('SELECT \'?\', "a?", ? -- ?\n, ?'), {
    text: 'SELECT \'?\', "a?", $1 -- ?\n, $2',
    names: undefined,
  });
  assert.deepEqual(translatePlaceholders('SELECT @a, @b, @a, x @@ y'), {
    text: 'SELECT $1, $2, $1, x @@ y',
    names: ['a', 'b'],
  });
  assert.throws(() => translatePlaceholders('SELECT ?, @a'), /mixed/);
});
