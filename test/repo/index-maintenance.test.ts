import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IndexSigner } from '../../src/apk/signature.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { IndexMaintenance } from '../../src/repo/index-maintenance.ts';
import { Indexer } from '../../src/repo/indexer.ts';
import type { BlobStore } from '../../src/store/blob-store.ts';
import type { Database } from '../../src/store/database.ts';
import { openBlobStore } from '../../src/store/open-blob-store.ts';
import { openDatabase } from '../../src/store/open-database.ts';
import { type IndexKey, PackageStore } from '../../src/store/package-store.ts';
import { generateRsaKey } from '../helpers/apk-builder.ts';
import { newPackage } from '../helpers/new-package.ts';
import { backendEnv } from '../helpers/server.ts';

/**
 * Index blobs replaced by a newer index stay for the grace, then go, unless
 * something names the same bytes; stale indexes nobody builds get built.
 * On the engines the test run names (REEF_TEST_DATABASE, REEF_TEST_BLOB),
 * the data folder's SQLite and blobs otherwise. Time is passed in, never waited for.
 */

const key = generateRsaKey();
const SIGNERS: IndexSigner[] = [
  { keyName: 'reef-maintenance-test.rsa.pub', privateKey: key.privateKey, algorithms: ['RSA256'] },
];
const GRACE = 10 * 60_000;
const K: IndexKey = { repo: 'main', libc: 'glibc', arch: 'x86_64' };
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Setup {
  database: Database;
  store: PackageStore;
  blobs: BlobStore;
  indexer: Indexer;
  maintenance: IndexMaintenance;
  close(): Promise<void>;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function setup(): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'reef-index-gc-'));
  dirs.push(dir);
  const config = loadConfig({ REEF_DATA_DIR: dir, ...(await backendEnv(dir)) });
  const { database } = await openDatabase(config);
  const blobs = await openBlobStore(config, { sweepSpool: false });
  const store = new PackageStore(database, ['x86_64', 'aarch64']);
  const log = createLogger('silent');
  const indexer = new Indexer(store, blobs, () => SIGNERS, log);
  const maintenance = new IndexMaintenance({ database, store, blobs, indexer, log }, { graceMs: GRACE });
  return {
    database,
    store,
    blobs,
    indexer,
    maintenance,
    async close() {
      await indexer.idle();
      blobs.close();
      await database.close();
    },
  };
}

const live = async (s: Setup) => (await s.store.getIndex(K))!.sha256!;

describe('IndexMaintenance', () => {
  test('a replaced index blob stays for the grace, then is deleted; the live one and shared bytes stay', async () => {
    const s = await setup();
    try {
      await s.store.insert(newPackage('one', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      const first = await live(s);
      await s.store.insert(newPackage('two', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      const second = await live(s);
      assert.notEqual(first, second);
      // Within the grace (now, and just before it ends), nothing goes.
      for (const now of [Date.now(), Date.now() + GRACE - 60_000]) {
        assert.deepEqual((await s.maintenance.collect(now)).deleted, []);
        assert.ok(await s.blobs.has(first), 'the replaced index is still served to whoever read its row');
      }
      const report = await s.maintenance.collect(Date.now() + GRACE + 60_000);
      assert.deepEqual(report.deleted, [first]);
      assert.equal(await s.blobs.has(first), false);
      // The live index, listed when it was written, is found named: kept, and no longer listed.
      assert.equal(report.kept, 1);
      assert.ok(await s.blobs.has(second));
      assert.equal(await s.store.isBlobReferenced(second), true);
      assert.deepEqual(await s.store.indexBlobsToCollect(Number.MAX_SAFE_INTEGER), []);

      // Bytes a package row names (however they came to be there) are never deleted as an index.
      await s.store.insert(newPackage('three', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      const bytes = await s.blobs.readAll(second);
      await s.store.insert({ ...newPackage('same-bytes', '1.0-r0', 'aarch64'), sha256: sha256(bytes) });
      const later = await s.maintenance.collect(Date.now() + 2 * GRACE);
      assert.deepEqual(later.deleted, []);
      assert.ok(await s.blobs.has(second));
    } finally {
      await s.close();
    }
  });

  test('an index back to bytes under deletion waits for the delete, then stores them anew', async () => {
    const s = await setup();
    try {
      await s.store.insert(newPackage('base', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      const before = await live(s);
      const bytes = await s.blobs.readAll(before);
      await s.store.insert(newPackage('passing', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      assert.notEqual(await live(s), before);
      // A collection claims the old bytes (the first half of collect), ...
      assert.equal(await s.store.claimIndexBlob(before, Date.now() + 2 * GRACE), 'delete');
      // ... while the index goes back to exactly what it was.
      await s.store.remove(K, 'passing', '1.0-r0');
      const building = s.indexer.refresh([K]);
      await sleep(600);
      assert.notEqual(await live(s), before, 'not recorded while its bytes are being deleted');
      // The collection's second half.
      await s.blobs.delete(before);
      await s.store.forgetIndexBlob(before);
      await building;
      assert.equal(await live(s), before, 'same database, same bytes');
      assert.ok((await s.blobs.readAll(before)).equals(bytes), 'stored again after the delete');
    } finally {
      await s.close();
    }
  });

  test('a claim a dead collection left is finished by the next one', async () => {
    const s = await setup();
    try {
      await s.store.insert(newPackage('a', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      const old = await live(s);
      await s.store.insert(newPackage('b', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      assert.equal(await s.store.claimIndexBlob(old, Date.now() + 2 * GRACE), 'delete');
      // The collection died here: its claim stays. The next one deletes the blob, whatever the time.
      const report = await s.maintenance.collect(Date.now());
      assert.deepEqual(report.deleted, [old]);
      assert.equal(await s.blobs.has(old), false);
      assert.deepEqual(await s.store.indexBlobsToCollect(0), []);
    } finally {
      await s.close();
    }
  });

  test('a build never recorded (a newer one was) leaves a blob that is collected', async () => {
    const s = await setup();
    try {
      await s.store.insert(newPackage('x', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      // What a build that lost writes: its blob, listed first, then no row for it.
      const orphan = Buffer.from('an index a lost build wrote');
      const orphanSha = sha256(orphan);
      assert.equal(await s.store.reserveIndexBlob(orphanSha, Date.now()), true);
      const temp = await s.blobs.createTemp();
      await temp.write(orphan);
      await temp.finish();
      await s.blobs.commit(temp, orphanSha);
      assert.deepEqual((await s.maintenance.collect(Date.now())).deleted, []);
      assert.deepEqual((await s.maintenance.collect(Date.now() + GRACE + 1000)).deleted, [orphanSha]);
      assert.equal(await s.blobs.has(orphanSha), false);
      assert.ok(await s.blobs.has(await live(s)));
    } finally {
      await s.close();
    }
  });

  test('an index left stale (its builder died) is built once it has been stale long enough', async () => {
    const s = await setup();
    try {
      await s.store.insert(newPackage('first', '1.0-r0', 'x86_64'));
      await s.indexer.refresh([K]);
      // Changed by a replica that died before building: stale, and nobody waits for it.
      await s.store.insert(newPackage('orphaned', '1.0-r0', 'x86_64'));
      const t0 = Date.now();
      assert.deepEqual(await s.indexer.refreshStale(10_000, t0), [], 'first seen stale');
      assert.deepEqual(await s.indexer.refreshStale(10_000, t0 + 5_000), [], 'not long enough');
      const state = await s.store.getIndex(K);
      assert.ok(state!.generation > state!.builtGeneration);
      assert.deepEqual(await s.indexer.refreshStale(10_000, t0 + 10_000), [K]);
      const built = await s.store.getIndex(K);
      assert.equal(built!.builtGeneration, built!.generation);
      assert.deepEqual(await s.indexer.refreshStale(10_000, t0 + 20_000), [], 'nothing stale any more');
    } finally {
      await s.close();
    }
  });
});
