import assert from 'node:assert/strict';
import { AsyncResource } from 'node:async_hooks';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../../src/store/database.ts';
import { type InsertResult, type NewPackage, PackageStore } from '../../src/store/package-store.ts';
import { PostgresDatabase } from '../../src/store/postgres-database.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { newPackage } from '../helpers/new-package.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';

/**
 * Two replicas publishing one name and version at the same moment must take
 * its slot once (design invariant 4). On PostgreSQL each replica is its own
 * connection pool on one database; SQLite serves one process per data
 * folder, so there both replicas share one database handle.
 */
interface Replicas {
  first: Database;
  second: Database;
  cleanup(): Promise<void>;
}

const engines: Array<{ name: string; skip: string | false; open(): Promise<Replicas> }> = [
  {
    name: 'sqlite',
    skip: false,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'reef-slot-race-'));
      const db = new SqliteDatabase(join(dir, 'reef.db'));
      await db.migrate();
      return {
        first: db,
        second: db,
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
      const url = await freshDatabase('reef-slot-race');
      const first = new PostgresDatabase(url);
      const second = new PostgresDatabase(url);
      await Promise.all([first.migrate(), second.migrate()]);
      return {
        first,
        second,
        async cleanup() {
          await Promise.all([first.close(), second.close()]);
          await dropDatabase(url);
        },
      };
    },
  },
];

/** How long the first transaction stays open with its row written: ample time for the second to decide, if nothing held it back. */
const HOLD_MS = 400;

/**
 * Inserts `a` through `first`; inside its transaction, once its row is
 * written and before it commits, starts inserting `b` through `second` and
 * waits until that finishes or HOLD_MS pass. Without a lock around the slot
 * check, `b` reads no holder (the row is not committed) and inserts too.
 */
async function raceWhileOpen(
  replicas: Replicas,
  a: NewPackage,
  b: NewPackage,
): Promise<{ a: InsertResult; b: InsertResult }> {
  const one = new PackageStore(replicas.first, ['x86_64']);
  const two = new PackageStore(replicas.second, ['x86_64']);
  let second: Promise<InsertResult> | undefined;
  // Bound out here: started from inside the first's transaction, it would join that transaction
  // on SQLite (one handle) instead of arriving as a request of its own.
  const startSecond = AsyncResource.bind(() => two.insert(b));
  const first = await one.insert(a, Date.now(), async () => {
    second = startSecond();
    // Its failure is reported by the await below.
    second.catch(() => undefined);
    await Promise.race([second, sleep(HOLD_MS)]);
  });
  return { a: first, b: await second! };
}

function variant(pkg: NewPackage, changes: Partial<NewPackage>): NewPackage {
  const fresh = newPackage(pkg.name, changes.version ?? pkg.version, changes.arch ?? pkg.arch);
  return { ...fresh, ...changes };
}

for (const engine of engines) {
  describe(`one slot, two replicas: ${engine.name}`, { skip: engine.skip }, () => {
    test('different bytes: noarch and arch builds, or equal spellings, take the slot once', async () => {
      const replicas = await engine.open();
      try {
        const cases: Array<[NewPackage, Partial<NewPackage>]> = [
          [newPackage('tool', '1.0-r0', 'noarch'), { arch: 'x86_64' }],
          [newPackage('lib', '2.0-r0', 'x86_64'), { arch: 'noarch' }],
          [newPackage('util', '3.0-r0', 'x86_64'), { version: '03.0-r0' }],
          [newPackage('same', '4.0-r0', 'x86_64'), {}],
        ];
        for (const [a, changes] of cases) {
          const b = variant(a, changes);
          assert.notEqual(a.sha256, b.sha256);
          const { a: ra, b: rb } = await raceWhileOpen(replicas, a, b);
          const label = `${a.name} ${a.arch}/${a.version} vs ${b.arch}/${b.version}`;
          assert.equal(ra.outcome, 'created', label);
          assert.equal(rb.outcome, 'exists', label);
          assert.equal(rb.outcome === 'exists' && rb.pkg.sha256, a.sha256, label);
          const rows = await replicas.first.all<{ sha256: string }>(
            'SELECT sha256 FROM packages WHERE name = ?',
            [a.name],
          );
          assert.deepEqual(
            rows.map((r) => r.sha256),
            [a.sha256],
            label,
          );
        }
      } finally {
        await replicas.cleanup();
      }
    });

    test('identical bytes: both succeed, one row', async () => {
      const replicas = await engine.open();
      try {
        const a = newPackage('twice', '1.0-r0', 'x86_64');
        const { a: ra, b: rb } = await raceWhileOpen(replicas, a, { ...a });
        assert.equal(ra.outcome, 'created');
        assert.equal(rb.outcome, 'exists');
        assert.equal(rb.outcome === 'exists' && rb.pkg.id, ra.outcome === 'created' && ra.pkg.id);
      } finally {
        await replicas.cleanup();
      }
    });

    test('many simultaneous publishes of one slot: exactly one row, every loser told so', async () => {
      const replicas = await engine.open();
      try {
        const stores = [replicas.first, replicas.second].map((d) => new PackageStore(d, ['x86_64']));
        for (let round = 0; round < 5; round++) {
          const base = newPackage(`crowd${round}`, '1.0-r0', 'noarch');
          const contenders = Array.from({ length: 6 }, (_, i) =>
            i === 0 ? base : variant(base, { arch: i % 2 === 0 ? 'noarch' : 'x86_64' }),
          );
          const results = await Promise.all(contenders.map((pkg, i) => stores[i % 2]!.insert(pkg)));
          const created = results.filter((r) => r.outcome === 'created');
          assert.equal(created.length, 1, `round ${round}: ${results.map((r) => r.outcome).join(' ')}`);
          const winner = created[0]!.outcome === 'created' ? created[0]!.pkg.sha256 : '';
          for (const r of results) {
            if (r.outcome === 'exists') assert.equal(r.pkg.sha256, winner);
            else assert.equal(r.outcome, 'created');
          }
          const rows = await replicas.first.all<{ sha256: string }>(
            'SELECT sha256 FROM packages WHERE name = ?',
            [base.name],
          );
          assert.deepEqual(
            rows.map((r) => r.sha256),
            [winner],
          );
        }
      } finally {
        await replicas.cleanup();
      }
    });

    test('a row written without the slot lock decides as the checked path would', async () => {
      const replicas = await engine.open();
      try {
        // Another writer (a copy tool, an older replica) inserts the exact row, unlocked and
        // not yet committed, while a publish of other bytes checks the slot and inserts.
        const a = newPackage('raw', '1.0-r0', 'x86_64');
        const b = variant(a, {});
        const two = new PackageStore(replicas.second, ['x86_64']);
        let second: Promise<InsertResult> | undefined;
        const startSecond = AsyncResource.bind(() => two.insert(b));
        await replicas.first.transact(async () => {
          await replicas.first.run(
            'INSERT INTO repos (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING',
            [a.repo, 1],
          );
          await replicas.first.run(
            `INSERT INTO packages (repo, libc, arch, name, version, filename, sha256, size, checksum, datahash,
               installed_size, description, url, license, origin, maintainer, commit_id, depends, provides,
               install_if, index_record, pkginfo, signatures, uploaded_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 1, '', '', '', '', '', '', '', '', '', '', '[]', '[]', 1)`,
            [a.repo, a.libc, a.arch, a.name, a.version, a.filename, a.sha256, a.checksum, a.datahash],
          );
          second = startSecond();
          second.catch(() => undefined);
          await Promise.race([second, sleep(HOLD_MS)]);
        });
        const result = await second!;
        assert.equal(result.outcome, 'exists');
        assert.equal(result.outcome === 'exists' && result.pkg.sha256, a.sha256);
      } finally {
        await replicas.cleanup();
      }
    });
  });
}
