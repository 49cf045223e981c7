import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ChunkedIndex, type ChunkingRule } from '../../src/apk/index-chunks.ts';
import { readIndex } from '../../src/apk/index-reader.ts';
import { rewriteRecordArch, writeIndexFromChunks } from '../../src/apk/index-writer.ts';
import { type IndexSigner, loadPublicKey } from '../../src/apk/signature.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { Indexer } from '../../src/repo/indexer.ts';
import { type BlobInventory, type BlobStore, DiskBlobStore } from '../../src/store/blob-store.ts';
import { type Db, migrate, openDb } from '../../src/store/db.ts';
import { type IndexKey, PackageStore } from '../../src/store/package-store.ts';
import { S3BlobStore } from '../../src/store/s3-blob-store.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { chunked, generateRsaKey } from '../helpers/apk-builder.ts';
import { newPackage } from '../helpers/new-package.ts';
import { prng } from '../helpers/prng.ts';
import { s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';

/** Small chunks, so a few hundred packages make many chunks and every update rechunks something. */
const RULE: ChunkingRule = { averageRecords: 4, maxBytes: 3000 };
const ARCHES = ['x86_64', 'aarch64'];
const key = generateRsaKey();
const KEY_NAME = 'reef-indexer-test.rsa.pub';
const SIGNERS: IndexSigner[] = [
  { keyName: KEY_NAME, privateKey: key.privateKey, algorithms: ['RSA256', 'RSA'] },
];

const dirs: string[] = [];
/** One blob store per data folder: the data folder's, or (REEF_TEST_BLOB=s3) a fresh bucket. */
const stores = new Map<string, BlobStore & BlobInventory>();
after(() => {
  for (const b of stores.values()) b.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Blobs = BlobStore & BlobInventory;

interface Setup {
  dir: string;
  db: Db;
  store: PackageStore;
  blobs: Blobs;
  indexer: Indexer;
  logs: Array<Record<string, unknown>>;
}

async function blobsOf(dir: string): Promise<Blobs> {
  let blobs = stores.get(dir);
  if (!blobs) {
    if (process.env.REEF_TEST_BLOB === 's3') {
      if (!s3Engine) throw new Error('REEF_TEST_BLOB=s3 needs the test S3 server');
      const { s3 } = loadConfig({ REEF_DATA_DIR: dir, ...s3ServerEnv(s3Engine) });
      const s3Blobs = new S3BlobStore(s3!, dir);
      await s3Blobs.init();
      blobs = s3Blobs;
    } else {
      const disk = new DiskBlobStore(dir);
      await disk.init();
      blobs = disk;
    }
    stores.set(dir, blobs);
  }
  return blobs;
}

async function setup(dir = mkdtempSync(join(tmpdir(), 'reef-indexer-'))): Promise<Setup> {
  if (!dirs.includes(dir)) dirs.push(dir);
  const db = openDb(join(dir, 'reef.db'));
  migrate(db);
  const store = new PackageStore(SqliteDatabase.over(db), ARCHES);
  const blobs = await blobsOf(dir);
  const logs: Array<Record<string, unknown>> = [];
  const indexer = new Indexer(store, blobs, () => SIGNERS, createLogger('info', logSink(logs)), {
    chunking: RULE,
  });
  return { dir, db, store, blobs, indexer, logs };
}

/** Stores `bytes` under `sha256` whatever they hash to: a blob changed in the store behind reef's back. */
async function overwriteBlob(blobs: BlobStore, sha256: string, bytes: Buffer): Promise<void> {
  await blobs.delete(sha256);
  const temp = await blobs.createTemp();
  await temp.write(bytes);
  await temp.finish();
  await blobs.commit(temp, sha256);
}

/** The digests of every blob in the store. */
async function blobList(blobs: Blobs): Promise<string[]> {
  const out: string[] = [];
  for await (const e of blobs.list()) if (e.kind === 'blob') out.push(e.sha256);
  return out.sort();
}

/** A log destination that keeps each line, parsed, in `logs`. */
function logSink(logs: Array<Record<string, unknown>>): Writable {
  return new Writable({
    write(chunk, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      cb();
    },
  });
}

/** What a build from scratch with the same chunking writes for the database as it is. */
async function fromScratch(store: PackageStore, k: IndexKey): Promise<Buffer> {
  const { records } = await store.snapshotForIndex(k);
  const index = ChunkedIndex.build(
    records.map((r) => rewriteRecordArch(r.record, r.arch, k.arch)),
    RULE,
  );
  return (await writeIndexFromChunks(index, { description: `${k.repo}/${k.libc}`, signers: SIGNERS })).bytes;
}

/** The live index blob: bytes equal to a build from scratch, and listing exactly the database's packages. */
async function checkIndex(s: Setup, k: IndexKey): Promise<void> {
  const state = await s.store.getIndex(k);
  const rows = s.db
    .prepare(
      `SELECT checksum FROM packages WHERE repo = ? AND libc = ? AND (arch = ? OR arch = 'noarch') ORDER BY checksum`,
    )
    .all(k.repo, k.libc, k.arch) as Array<{ checksum: string }>;
  if (rows.length === 0) {
    assert.equal(state?.sha256, undefined);
    return;
  }
  assert.ok(state?.sha256, `${k.arch} has an index`);
  assert.equal(state.generation, state.builtGeneration);
  const bytes = await s.blobs.readAll(state.sha256);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), state.sha256);
  const expected = await fromScratch(s.store, k);
  assert.ok(bytes.equals(expected), `${k.arch}: same bytes as a build from scratch`);
  const back = await readIndex(chunked(bytes), {
    keys: [loadPublicKey(KEY_NAME, key.publicPem)],
    requireValidSignature: true,
  });
  assert.deepEqual(
    back.records.map((r) => r.checksum).sort(),
    rows.map((r) => r.checksum),
  );
  assert.equal(state.packageCount, rows.length);
  // Listed means published: the files are served from now on (design invariant 1).
  const unpublished = s.db
    .prepare(
      `SELECT COUNT(*) AS n FROM packages WHERE repo = ? AND libc = ? AND (arch = ? OR arch = 'noarch')
       AND published_at IS NULL`,
    )
    .get(k.repo, k.libc, k.arch) as { n: number };
  assert.equal(unpublished.n, 0);
}

const keyOf = (arch: string): IndexKey => ({ repo: 'main', libc: 'glibc', arch });
const modes = (s: Setup) => s.logs.filter((l) => l.msg === 'index published').map((l) => l.mode);
const changeRows = (s: Setup) =>
  (s.db.prepare('SELECT COUNT(*) AS n FROM index_changes').get() as { n: number }).n;

describe('Indexer (incremental chunks)', () => {
  test('random publishes and deletes, noarch included: each index equals a build from scratch and lists the database', async () => {
    const s = await setup();
    const random = prng(42);
    const names = Array.from({ length: 40 }, (_, i) => `pkg${i % 13}-${['a', 'B', 'c'][i % 3]}${i}`);
    const live: Array<{ name: string; version: string; arch: string }> = [];
    // Seeded in one go, then built once (a full build).
    for (let i = 0; i < 150; i++) {
      const p = newPackage(names[i % names.length]!, `1.${i}-r0`, i % 9 === 0 ? 'noarch' : ARCHES[i % 2]!);
      await s.store.insert(p);
      live.push(p);
    }
    await s.indexer.refresh(ARCHES.map(keyOf));
    for (const a of ARCHES) await checkIndex(s, keyOf(a));
    for (let step = 0; step < 30; step++) {
      // A batch of changes, some concurrent with each other, then the refreshes they ask for.
      const waits: Array<Promise<void>> = [];
      const n = 1 + Math.floor(random() * 4);
      for (let j = 0; j < n; j++) {
        if (random() < 0.45 && live.length > 0) {
          const victim = live.splice(Math.floor(random() * live.length), 1)[0]!;
          const removed = await s.store.remove({ ...keyOf(victim.arch) }, victim.name, victim.version);
          assert.ok(removed);
          waits.push(s.indexer.refresh(removed.indexes));
        } else {
          const arch = random() < 0.15 ? 'noarch' : ARCHES[Math.floor(random() * 2)]!;
          const p = newPackage(names[Math.floor(random() * names.length)]!, `2.${step}.${j}-r0`, arch);
          const inserted = await s.store.insert(p);
          assert.equal(inserted.outcome, 'created');
          live.push(p);
          waits.push(s.indexer.refresh(await s.store.indexesListing(p)));
        }
      }
      await Promise.all(waits);
      for (const a of ARCHES) await checkIndex(s, keyOf(a));
    }
    const m = modes(s);
    assert.deepEqual(m.slice(0, 2), ['full', 'full']);
    assert.ok(
      m.slice(2).every((x) => x === 'delta'),
      `every build after the first is a delta: ${m.join(',')}`,
    );
    s.db.close();
  });

  test('changes another process made are in the database: still a delta; one rolled back leaves none; a gap means a full build', async () => {
    const s = await setup();
    const k = keyOf('x86_64');
    for (let i = 0; i < 60; i++) await s.store.insert(newPackage(`p${i}`, '1.0-r0', 'x86_64'));
    await s.indexer.refresh([k]);

    // Another process: its own store on the same file.
    const otherDb = openDb(join(s.dir, 'reef.db'));
    const otherDatabase = SqliteDatabase.over(otherDb);
    const other = new PackageStore(otherDatabase, ARCHES);
    await other.insert(newPackage('from-elsewhere', '1.0-r0', 'x86_64'));
    await other.remove(k, 'p7', '1.0-r0');
    await otherDatabase.close();
    await s.store.insert(newPackage('local', '1.0-r0', 'x86_64'));
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    assert.equal(changeRows(s), 0, 'a recorded build takes its changes out');

    // An insert inside a transaction that rolls back: neither the package nor its change is kept.
    const generation = (await s.store.getIndex(k))!.generation;
    await assert.rejects(
      s.store.transaction(async () => {
        await s.store.insert(newPackage('ghost', '1.0-r0', 'x86_64'));
        throw new Error('roll back');
      }),
    );
    assert.equal((await s.store.getIndex(k))!.generation, generation);
    assert.equal(changeRows(s), 0);
    await s.store.insert(newPackage('after-ghost', '1.0-r0', 'x86_64'));
    assert.equal(changeRows(s), 1);
    await s.indexer.refresh([k]);
    await checkIndex(s, k);

    // A generation without its row (written before index_changes existed): the changes cannot be trusted.
    await s.store.insert(newPackage('gap-1', '1.0-r0', 'x86_64'));
    await s.store.insert(newPackage('gap-2', '1.0-r0', 'x86_64'));
    s.db
      .prepare('DELETE FROM index_changes WHERE generation = (SELECT MIN(generation) FROM index_changes)')
      .run();
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    assert.deepEqual(modes(s), ['full', 'delta', 'delta', 'full']);
    s.db.close();
  });

  test('more changes than a delta applies (a bulk import): a full build, which takes them all out', async () => {
    const s = await setup();
    const k = keyOf('aarch64');
    await s.store.insert(newPackage('first', '1.0-r0', 'aarch64'));
    await s.indexer.refresh([k]);
    await s.store.transaction(async () => {
      for (let i = 0; i < 1025; i++) await s.store.insert(newPackage(`bulk${i}`, '1.0-r0', 'aarch64'));
    });
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    assert.equal(changeRows(s), 0);
    await s.store.insert(newPackage('after-bulk', '1.0-r0', 'aarch64'));
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    assert.deepEqual(modes(s), ['full', 'full', 'delta']);
    s.db.close();
  });

  test('a second indexer on the same database (another replica) builds the delta of changes the first made', async () => {
    const first = await setup();
    const k = keyOf('x86_64');
    for (let i = 0; i < 50; i++) await first.store.insert(newPackage(`rep${i}`, '1.0-r0', 'x86_64'));
    await first.indexer.refresh([k]);
    const second = await setup(first.dir);
    await first.store.insert(newPackage('made-by-first', '1.0-r0', 'x86_64'));
    await first.store.remove(k, 'rep3', '1.0-r0');
    await second.indexer.refresh([k]);
    await checkIndex(second, k);
    // And back: the first indexer's chunks are of an index no longer recorded; it finds the new one.
    await second.store.insert(newPackage('made-by-second', '1.0-r0', 'x86_64'));
    await first.indexer.refresh([k]);
    await checkIndex(first, k);
    assert.deepEqual(modes(first), ['full', 'delta']);
    assert.deepEqual(modes(second), ['delta']);
    first.db.close();
    second.db.close();
  });

  test('a refresh finds the index built by another process: it returns without building', async () => {
    const first = await setup();
    const second = await setup(first.dir);
    const k = keyOf('x86_64');
    await first.store.insert(newPackage('once', '1.0-r0', 'x86_64'));
    await second.indexer.refresh([k]);
    await first.indexer.refresh([k]);
    await checkIndex(first, k);
    assert.deepEqual(modes(first), []);
    assert.deepEqual(modes(second), ['full']);
    // Asked to rebuild, it builds whatever is recorded.
    await first.indexer.rebuild([k]);
    assert.deepEqual(modes(first), ['delta']);
    first.db.close();
    second.db.close();
  });

  test('every index stays incremental: chunks are read back from each live index, not rebuilt', async () => {
    const s = await setup();
    for (let i = 0; i < 60; i++) await s.store.insert(newPackage(`c${i}`, '1.0-r0', ARCHES[i % 2]!));
    for (const round of [0, 1, 2]) {
      for (const a of ARCHES) {
        await s.store.insert(newPackage(`again-${round}`, '1.0-r0', a));
        await s.indexer.refresh([keyOf(a)]);
      }
    }
    assert.deepEqual(modes(s), ['full', 'full', 'delta', 'delta', 'delta', 'delta']);
    for (const a of ARCHES) await checkIndex(s, keyOf(a));
    s.db.close();
  });

  test('a live index blob changed or removed in the store: the next build notices and builds in full, still exact', async () => {
    const s = await setup();
    for (let i = 0; i < 80; i++) await s.store.insert(newPackage(`d${i}`, '1.0-r0', 'x86_64'));
    const k = keyOf('x86_64');
    await s.indexer.refresh([k]);
    // A flipped byte in the middle of the chunks (the blob no longer hashes to its address; reef must not sign it again).
    const live = (await s.store.getIndex(k))!.sha256!;
    const bytes = await s.blobs.readAll(live);
    bytes[bytes.length - Math.floor(bytes.length / 3)]! ^= 0x01;
    await overwriteBlob(s.blobs, live, bytes);
    // Another indexer, as after a restart, which reads the chunks back from the blob.
    const restarted = await setup(s.dir);
    await restarted.store.insert(newPackage('after-flip', '1.0-r0', 'x86_64'));
    await restarted.indexer.refresh([k]);
    await checkIndex(restarted, k);
    // The first indexer finds a newer index recorded than its own: it reads that one back, a delta.
    await s.store.insert(newPackage('after-restarted', '1.0-r0', 'x86_64'));
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    // The live blob gone from the store: an indexer that must read it back builds in full.
    await s.blobs.delete((await s.store.getIndex(k))!.sha256!);
    const third = await setup(s.dir);
    await third.store.insert(newPackage('after-rm', '1.0-r0', 'x86_64'));
    await third.indexer.refresh([k]);
    await checkIndex(third, k);
    assert.deepEqual([modes(s), modes(restarted), modes(third)], [['full', 'delta'], ['full'], ['full']]);
    const warnings = [...restarted.logs, ...third.logs].filter(
      (l) => l.msg === 'the live index blob does not read back as chunks; full build',
    );
    assert.equal(warnings.length, 2);
    for (const x of [s, restarted, third]) x.db.close();
  });

  test('recover() rebuilds an index whose blob is missing (a data folder of reef before indexes were blobs)', async () => {
    const s = await setup();
    for (let i = 0; i < 20; i++) await s.store.insert(newPackage(`m${i}`, '1.0-r0', 'x86_64'));
    await s.indexer.refresh([keyOf('x86_64')]);
    const live = (await s.store.getIndex(keyOf('x86_64')))!;
    const bytes = await s.blobs.readAll(live.sha256!);
    await s.blobs.delete(live.sha256!);
    s.db.close();
    const restarted = await setup(s.dir);
    assert.deepEqual(await restarted.indexer.recover(), [keyOf('x86_64')]);
    // Same database, same keys: the same bytes again, under the same address.
    assert.equal((await restarted.store.getIndex(keyOf('x86_64')))!.sha256, live.sha256);
    assert.ok((await restarted.blobs.readAll(live.sha256!)).equals(bytes));
    await checkIndex(restarted, keyOf('x86_64'));
    assert.deepEqual(await restarted.indexer.recover(), [], 'nothing left to rebuild');
    restarted.db.close();
  });

  test('after a restart the chunks are found again in the live file: the first publish is a delta; a stale or changed file gets a full build', async () => {
    const first = await setup();
    for (let i = 0; i < 80; i++) await first.store.insert(newPackage(`r${i}`, `1.${i}-r0`, 'x86_64'));
    await first.indexer.refresh([keyOf('x86_64')]);
    await first.store.insert(newPackage('one-more', '1-r0', 'x86_64'));
    await first.indexer.refresh([keyOf('x86_64')]);
    const before = (await first.store.getIndex(keyOf('x86_64')))!.sha256;
    await first.indexer.rebuildAll();
    assert.equal((await first.store.getIndex(keyOf('x86_64')))!.sha256, before);
    assert.deepEqual(modes(first), ['full', 'delta', 'delta']);
    first.db.close();

    // A restart: re-signing finds the chunks in the file (nothing recompressed), and so does a publish.
    const second = await setup(first.dir);
    await second.indexer.rebuildAll();
    assert.equal((await second.store.getIndex(keyOf('x86_64')))!.sha256, before);
    const third = await setup(first.dir);
    await third.store.insert(newPackage('after-restart', '1-r0', 'x86_64'));
    await third.indexer.refresh([keyOf('x86_64')]);
    await checkIndex(third, keyOf('x86_64'));
    assert.deepEqual([...modes(second), ...modes(third)], ['delta', 'delta']);
    second.db.close();
    third.db.close();

    // Published while no indexer ran (stale at start): its change is in the database, so still a delta.
    const fourth = await setup(first.dir);
    await fourth.store.insert(newPackage('unheard', '1-r0', 'x86_64'));
    const fifth = await setup(first.dir);
    await fifth.indexer.recover();
    await checkIndex(fifth, keyOf('x86_64'));
    assert.deepEqual(modes(fifth), ['delta']);
    fourth.db.close();

    // The live blob changed in the store: not signed again, a full build.
    const live = (await fifth.store.getIndex(keyOf('x86_64')))!.sha256!;
    fifth.db.close();
    const bytes = await fifth.blobs.readAll(live);
    bytes[bytes.length - 100]! ^= 0x02;
    await overwriteBlob(fifth.blobs, live, bytes);
    const sixth = await setup(first.dir);
    await sixth.store.insert(newPackage('after-flip', '1-r0', 'x86_64'));
    await sixth.indexer.refresh([keyOf('x86_64')]);
    await checkIndex(sixth, keyOf('x86_64'));
    assert.deepEqual(modes(sixth), ['full']);
    const written = join(sixth.dir, 'APKINDEX.tar.gz');
    writeFileSync(written, await sixth.blobs.readAll((await sixth.store.getIndex(keyOf('x86_64')))!.sha256!));
    execFileSync('gzip', ['-t', written]);
    sixth.db.close();
  });

  test('with no key to sign with, no index is written: the build fails and the live index stays', async () => {
    const s = await setup();
    let signers = SIGNERS;
    const indexer = new Indexer(s.store, s.blobs, () => signers, createLogger('silent'), { chunking: RULE });
    await s.store.insert(newPackage('signed', '1.0-r0', 'x86_64'));
    await indexer.refresh([keyOf('x86_64')]);
    const live = (await s.store.getIndex(keyOf('x86_64')))!.sha256!;
    const liveBytes = await s.blobs.readAll(live);

    for (const none of [[], [{ ...SIGNERS[0]!, algorithms: [] }]] as IndexSigner[][]) {
      signers = none;
      await s.store.insert(newPackage(`unsigned${none.length}`, '1.0-r0', 'x86_64'));
      await assert.rejects(indexer.refresh([keyOf('x86_64')]), { code: 'INDEX_NO_SIGNER' });
      assert.equal((await s.store.getIndex(keyOf('x86_64')))!.sha256, live);
      assert.deepEqual(await blobList(s.blobs), [live]);
      assert.ok((await s.blobs.readAll(live)).equals(liveBytes));
    }
    signers = SIGNERS;
    await indexer.refresh([keyOf('x86_64')]);
    await checkIndex({ ...s, indexer }, keyOf('x86_64'));
    s.db.close();
  });
});
