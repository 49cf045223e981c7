import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, describe, test } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadConfig, type S3Settings } from '../../src/config.ts';
import { isAppError } from '../../src/errors.ts';
import { type BlobInventory, type BlobStore, DiskBlobStore } from '../../src/store/blob-store.ts';
import { S3BlobStore } from '../../src/store/s3-blob-store.ts';
import { freshBucket, needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';

/**
 * One contract every blob store passes unchanged: the data folder, and a real
 * S3 server (Swift's s3api, started by `.ci/run`; skipped without one).
 */

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'reef-blobs-'));
  dirs.push(d);
  return d;
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function put(store: BlobStore, bytes: Buffer): Promise<string> {
  const temp = await store.createTemp();
  // In pieces, as an upload arrives.
  for (let i = 0; i < bytes.length; i += 100_000) await temp.write(bytes.subarray(i, i + 100_000));
  await temp.finish();
  const key = sha256(bytes);
  await store.commit(temp, key);
  return key;
}

/** The bucket and prefix of each S3 store a test opened. */
const settingsOf = new WeakMap<BlobStore, S3Settings>();

interface Engine {
  name: string;
  skip: string | false;
  open(dataDir: string): Promise<BlobStore & BlobInventory & { close?(): void }>;
  /** Writes `bytes` under `rel` of the blob area behind the store's back (a stray, or a blob in the wrong place). */
  plant(store: BlobStore, dataDir: string, rel: string, bytes: Buffer): Promise<void>;
}

const engines: Engine[] = [
  {
    name: 'the data folder',
    skip: false,
    async open(dataDir) {
      const store = new DiskBlobStore(dataDir);
      await store.init();
      return store;
    },
    async plant(_store, dataDir, rel, bytes) {
      const path = join(dataDir, 'blobs', 'sha256', rel);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bytes);
    },
  },
  {
    name: 'an S3 server',
    skip: needsS3.skip,
    async open(dataDir) {
      const config = loadConfig({ REEF_DATA_DIR: dataDir, ...s3ServerEnv(s3Engine!) });
      const store = new S3BlobStore(config.s3!, dataDir);
      await store.init();
      settingsOf.set(store, config.s3!);
      return store;
    },
    async plant(store, _dataDir, rel, bytes) {
      const s3 = settingsOf.get(store)!;
      const client = new S3Client({
        region: s3.region,
        endpoint: s3.endpoint,
        forcePathStyle: s3.pathStyle,
        credentials: s3.credentials,
      });
      await client.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix}blobs/sha256/${rel}`, Body: bytes }),
      );
      client.destroy();
    },
  },
];

for (const engine of engines) {
  describe(`blob store contract: ${engine.name}`, { skip: engine.skip }, () => {
    test('a committed blob reads back whole and by range; its size is known', async () => {
      const dataDir = tempDir();
      const store = await engine.open(dataDir);
      try {
        const bytes = randomBytes(300_000);
        const key = await put(store, bytes);
        assert.equal(await store.has(key), true);
        assert.equal(await store.size(key), bytes.length);
        assert.equal(sha256(await store.readAll(key)), key);
        assert.equal(sha256(await buffer(store.read(key))), key);
        // Ranges are inclusive, as HTTP's.
        const part = await buffer(store.read(key, { start: 1000, end: 1999 }));
        assert.deepEqual(part, bytes.subarray(1000, 2000));
        assert.deepEqual(await buffer(store.read(key, { start: 0, end: 0 })), bytes.subarray(0, 1));
        // The spool is empty once the blob is committed.
        assert.deepEqual(readdirSync(join(dataDir, 'tmp')), []);
      } finally {
        store.close?.();
      }
    });

    test('committing the same bytes again is a no-op; a discarded temp leaves nothing', async () => {
      const dataDir = tempDir();
      const store = await engine.open(dataDir);
      try {
        const bytes = randomBytes(10_000);
        const key = await put(store, bytes);
        assert.equal(await put(store, bytes), key);
        assert.deepEqual(await store.readAll(key), bytes);
        const temp = await store.createTemp();
        await temp.write(randomBytes(100));
        await temp.finish();
        assert.ok(existsSync(temp.path), 'uploads are spooled to a local file');
        await temp.discard();
        assert.deepEqual(readdirSync(join(dataDir, 'tmp')), []);
      } finally {
        store.close?.();
      }
    });

    test('a blob larger than one upload part (multipart in S3) is intact', async () => {
      const store = await engine.open(tempDir());
      try {
        const bytes = randomBytes(12 * 1024 * 1024 + 12345);
        const key = await put(store, bytes);
        assert.equal(await store.size(key), bytes.length);
        assert.equal(sha256(await buffer(store.read(key))), key);
        const tail = await buffer(store.read(key, { start: bytes.length - 10, end: bytes.length - 1 }));
        assert.deepEqual(tail, bytes.subarray(bytes.length - 10));
      } finally {
        store.close?.();
      }
    });

    test('a missing or deleted blob: has false, size undefined, delete again is fine, read fails', async () => {
      const store = await engine.open(tempDir());
      try {
        const key = await put(store, randomBytes(1000));
        await store.delete(key);
        assert.equal(await store.has(key), false);
        assert.equal(await store.size(key), undefined);
        await store.delete(key);
        await assert.rejects(buffer(store.read(key)));
        await assert.rejects(store.readAll(key));
      } finally {
        store.close?.();
      }
    });

    test('list: every blob once with its size; strays apart; a stray is deleted only inside the blob area', async () => {
      const dataDir = tempDir();
      const store = await engine.open(dataDir);
      try {
        const keys = [await put(store, randomBytes(10)), await put(store, randomBytes(2000))];
        const misplaced = sha256(Buffer.from('misplaced'));
        await engine.plant(store, dataDir, `zz/${misplaced}`, Buffer.from('misplaced'));
        await engine.plant(store, dataDir, 'ab/not-a-digest', Buffer.from('junk'));
        const listed = [];
        for await (const entry of store.list()) listed.push(entry);
        const blobs = listed.filter((e) => e.kind === 'blob');
        assert.deepEqual(blobs.map((b) => b.sha256).sort(), [...keys].sort());
        for (const b of blobs) {
          assert.equal(b.size, await store.size(b.sha256));
          assert.equal(b.location, store.locationOf(b.sha256));
          assert.ok(Math.abs(b.modifiedAt - Date.now()) < 10 * 60_000, 'a plausible modification time');
        }
        const strays = listed.filter((e) => e.kind === 'stray');
        assert.equal(strays.length, 2, JSON.stringify(listed));
        for (const stray of strays) await store.deleteStray(stray.location);
        const after = [];
        for await (const entry of store.list()) after.push(entry);
        assert.deepEqual(
          after.filter((e) => e.kind === 'stray'),
          [],
        );
        assert.equal(after.length, 2, 'the blobs stay');
        // SECURITY: a location that is not under the blob area is refused.
        const outside = store.locationOf(keys[0]!).replace(/blobs\/sha256\/.*$/, 'reef.db');
        await assert.rejects(store.deleteStray(outside));
        assert.equal(await store.has(keys[0]!), true);
      } finally {
        store.close?.();
      }
    });

    test('only SHA-256 digests are keys: nothing else becomes a path or an object name', async () => {
      const store = await engine.open(tempDir());
      try {
        for (const bad of ['../../etc/passwd', 'A'.repeat(64), `${'0'.repeat(63)}/`, '']) {
          await assert.rejects(store.readAll(bad), (err) => isAppError(err) && err.code === 'INTERNAL');
          assert.throws(
            () => store.read(bad),
            (err) => isAppError(err) && err.code === 'INTERNAL',
          );
        }
      } finally {
        store.close?.();
      }
    });
  });
}

describe('S3 blob store: its bucket and its failures', { skip: needsS3.skip }, () => {
  test('a missing bucket is created at start; a second store on it starts too', async () => {
    const dataDir = tempDir();
    const env = s3ServerEnv(s3Engine!, freshBucket('reef-create'));
    const config = loadConfig({ REEF_DATA_DIR: dataDir, ...env });
    const first = new S3BlobStore(config.s3!, dataDir);
    await first.init();
    const key = await put(first, Buffer.from('shared'));
    const second = new S3BlobStore(config.s3!, tempDir());
    await second.init();
    assert.deepEqual(
      await second.readAll(key),
      Buffer.from('shared'),
      'a replica reads what the other wrote',
    );
    first.close();
    second.close();
  });

  test('wrong credentials stop the start with a message; an unreachable server is STORAGE_UNAVAILABLE', async () => {
    const dataDir = tempDir();
    const wrong = loadConfig({
      REEF_DATA_DIR: dataDir,
      ...s3ServerEnv(s3Engine!),
      AWS_SECRET_ACCESS_KEY: 'not-the-secret',
    });
    const denied = new S3BlobStore(wrong.s3!, dataDir);
    await assert.rejects(denied.init(), (err) => isAppError(err) && /bucket/.test(err.message));
    // The secret is never part of what the error says.
    await denied.init().catch((err: Error) => assert.ok(!err.message.includes('not-the-secret')));
    denied.close();

    const gone = loadConfig({
      REEF_DATA_DIR: dataDir,
      ...s3ServerEnv(s3Engine!),
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
    });
    const store = new S3BlobStore(gone.s3!, dataDir);
    await assert.rejects(
      store.size('0'.repeat(64)),
      (err) => isAppError(err) && err.code === 'STORAGE_UNAVAILABLE',
    );
    store.close();
  });
});
