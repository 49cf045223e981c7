import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { isAppError } from '../../src/errors.ts';
import { type BlobStore, DiskBlobStore } from '../../src/store/blob-store.ts';
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

interface Engine {
  name: string;
  skip: string | false;
  open(dataDir: string): Promise<BlobStore & { close?(): void }>;
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
  },
  {
    name: 'an S3 server',
    skip: needsS3.skip,
    async open(dataDir) {
      const config = loadConfig({ REEF_DATA_DIR: dataDir, ...s3ServerEnv(s3Engine!) });
      const store = new S3BlobStore(config.s3!, dataDir);
      await store.init();
      return store;
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
