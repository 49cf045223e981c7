import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ChunkedIndex, type ChunkingRule } from '../../src/apk/index-chunks.ts';
import { readIndex } from '../../src/apk/index-reader.ts';
import { rewriteRecordArch, writeIndexFromChunks } from '../../src/apk/index-writer.ts';
import { type IndexSigner, loadPublicKey } from '../../src/apk/signature.ts';
import { createLogger } from '../../src/log.ts';
import { Indexer } from '../../src/repo/indexer.ts';
import { type Db, migrate, openDb } from '../../src/store/db.ts';
import { type IndexKey, PackageStore } from '../../src/store/package-store.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { chunked, generateRsaKey } from '../helpers/apk-builder.ts';
import { newPackage } from '../helpers/new-package.ts';
import { prng } from '../helpers/prng.ts';

/** Small chunks, so a few hundred packages make many chunks and every update rechunks something. */
const RULE: ChunkingRule = { averageRecords: 4, maxBytes: 3000 };
const ARCHES = ['x86_64', 'aarch64'];
const key = generateRsaKey();
const KEY_NAME = 'reef-indexer-test.rsa.pub';
const SIGNERS: IndexSigner[] = [
  { keyName: KEY_NAME, privateKey: key.privateKey, algorithms: ['RSA256', 'RSA'] },
];

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  dir: string;
  db: Db;
  store: PackageStore;
  indexer: Indexer;
  logs: Array<Record<string, unknown>>;
}

function setup(dir = mkdtempSync(join(tmpdir(), 'reef-indexer-'))): Setup {
  if (!dirs.includes(dir)) dirs.push(dir);
  const db = openDb(join(dir, 'reef.db'));
  migrate(db);
  const store = new PackageStore(SqliteDatabase.over(db), ARCHES);
  const logs: Array<Record<string, unknown>> = [];
  const indexer = new Indexer(store, dir, () => SIGNERS, createLogger('info', logSink(logs)), {
    chunking: RULE,
  });
  return { dir, db, store, indexer, logs };
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

/** The live index file: bytes equal to a build from scratch, and listing exactly the database's packages. */
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
  const bytes = readFileSync(s.indexer.indexPath(k, state.sha256));
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
    const s = setup();
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
    const s = setup();
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
    const s = setup();
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
    const first = setup();
    const k = keyOf('x86_64');
    for (let i = 0; i < 50; i++) await first.store.insert(newPackage(`rep${i}`, '1.0-r0', 'x86_64'));
    await first.indexer.refresh([k]);
    const second = setup(first.dir);
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
    const first = setup();
    const second = setup(first.dir);
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

  test('every index stays incremental: chunks are read back from each live file, not held', async () => {
    const s = setup();
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

  test('a live index file changed or removed on disk: the next build notices and builds in full, still exact', async () => {
    const s = setup();
    for (let i = 0; i < 80; i++) await s.store.insert(newPackage(`d${i}`, '1.0-r0', 'x86_64'));
    const k = keyOf('x86_64');
    await s.indexer.refresh([k]);
    // A flipped byte in the middle of the chunks (the file's own name no longer matches; reef must not sign it again).
    const path = s.indexer.indexPath(k, (await s.store.getIndex(k))!.sha256!);
    const bytes = readFileSync(path);
    bytes[bytes.length - Math.floor(bytes.length / 3)]! ^= 0x01;
    writeFileSync(path, bytes);
    await s.store.insert(newPackage('after-flip', '1.0-r0', 'x86_64'));
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    rmSync(s.indexer.indexPath(k, (await s.store.getIndex(k))!.sha256!));
    await s.store.insert(newPackage('after-rm', '1.0-r0', 'x86_64'));
    await s.indexer.refresh([k]);
    await checkIndex(s, k);
    assert.deepEqual(modes(s), ['full', 'full', 'full']);
    const warnings = s.logs.filter(
      (l) => l.msg === 'index changes did not apply to the cached chunks; full build',
    );
    assert.equal(warnings.length, 2);
    s.db.close();
  });

  test('recover() sweeps index temp files of dead writers, not of a live process', async () => {
    const s = setup();
    await s.store.insert(newPackage('t', '1.0-r0', 'x86_64'));
    await s.indexer.refresh([keyOf('x86_64')]);
    const dir = dirname(s.indexer.indexPath(keyOf('x86_64'), 'x'));
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const files = {
      dead: join(dir, `.index.${dead}.0123456789ab.tmp`),
      live: join(dir, `.index.${process.ppid}.0123456789ab.tmp`),
      other: join(dir, 'unrelated.tmp'),
    };
    for (const f of Object.values(files)) writeFileSync(f, 'partial');
    await s.indexer.recover();
    assert.equal(existsSync(files.dead), false);
    assert.equal(existsSync(files.live), true);
    assert.equal(existsSync(files.other), true);
    s.db.close();
  });

  test('after a restart the chunks are found again in the live file: the first publish is a delta; a stale or changed file gets a full build', async () => {
    const first = setup();
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
    const second = setup(first.dir);
    await second.indexer.rebuildAll();
    assert.equal((await second.store.getIndex(keyOf('x86_64')))!.sha256, before);
    const third = setup(first.dir);
    await third.store.insert(newPackage('after-restart', '1-r0', 'x86_64'));
    await third.indexer.refresh([keyOf('x86_64')]);
    await checkIndex(third, keyOf('x86_64'));
    assert.deepEqual([...modes(second), ...modes(third)], ['delta', 'delta']);
    second.db.close();
    third.db.close();

    // Published while no indexer ran (stale at start): its change is in the database, so still a delta.
    const fourth = setup(first.dir);
    await fourth.store.insert(newPackage('unheard', '1-r0', 'x86_64'));
    const fifth = setup(first.dir);
    await fifth.indexer.recover();
    await checkIndex(fifth, keyOf('x86_64'));
    assert.deepEqual(modes(fifth), ['delta']);
    fourth.db.close();

    // The live file changed on disk: not signed again, a full build.
    const path = fifth.indexer.indexPath(
      keyOf('x86_64'),
      (await fifth.store.getIndex(keyOf('x86_64')))!.sha256!,
    );
    fifth.db.close();
    const bytes = readFileSync(path);
    bytes[bytes.length - 100]! ^= 0x02;
    writeFileSync(path, bytes);
    const sixth = setup(first.dir);
    await sixth.store.insert(newPackage('after-flip', '1-r0', 'x86_64'));
    await sixth.indexer.refresh([keyOf('x86_64')]);
    await checkIndex(sixth, keyOf('x86_64'));
    assert.deepEqual(modes(sixth), ['full']);
    execFileSync('gzip', [
      '-t',
      sixth.indexer.indexPath(keyOf('x86_64'), (await sixth.store.getIndex(keyOf('x86_64')))!.sha256!),
    ]);
    sixth.db.close();
  });

  test('with no key to sign with, no index is written: the build fails and the live index stays', async () => {
    const s = setup();
    let signers = SIGNERS;
    const indexer = new Indexer(s.store, s.dir, () => signers, createLogger('silent'), { chunking: RULE });
    await s.store.insert(newPackage('signed', '1.0-r0', 'x86_64'));
    await indexer.refresh([keyOf('x86_64')]);
    const live = (await s.store.getIndex(keyOf('x86_64')))!.sha256!;
    const liveBytes = readFileSync(indexer.indexPath(keyOf('x86_64'), live));

    for (const none of [[], [{ ...SIGNERS[0]!, algorithms: [] }]] as IndexSigner[][]) {
      signers = none;
      await s.store.insert(newPackage(`unsigned${none.length}`, '1.0-r0', 'x86_64'));
      await assert.rejects(indexer.refresh([keyOf('x86_64')]), { code: 'INDEX_NO_SIGNER' });
      assert.equal((await s.store.getIndex(keyOf('x86_64')))!.sha256, live);
      assert.deepEqual(readdirSync(dirname(indexer.indexPath(keyOf('x86_64'), live))), [`${live}.tar.gz`]);
      assert.ok(readFileSync(indexer.indexPath(keyOf('x86_64'), live)).equals(liveBytes));
    }
    signers = SIGNERS;
    await indexer.refresh([keyOf('x86_64')]);
    await checkIndex({ ...s, indexer }, keyOf('x86_64'));
    s.db.close();
  });
});
