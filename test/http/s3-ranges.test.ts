import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { buildApk } from '../helpers/apk-builder.ts';
import { needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import { publish, removeDir, startServer, type TestServer } from '../helpers/server.ts';

/**
 * Ranges of a large package whose blob is in an object store (a real S3
 * server): served only from an object verified whole, read whole once per
 * object version rather than for every range, and verified again once the
 * object is written behind reef's back.
 */
describe('ranges of a package in an object store', { skip: needsS3.skip }, () => {
  let server: TestServer;
  let apk: Buffer;
  /** Whole-object reads: verifyWhole's, as opposed to the range's own. */
  let wholeReads = 0;
  const url = () => `${server.url}/main/musl/x86_64/big-1.0-r0.apk`;

  before(async () => {
    // No memory cache: every request goes to the store.
    server = await startServer({ ...s3ServerEnv(s3Engine!), REEF_CACHE_BYTES: '0' });
    apk = await buildApk({
      name: 'big',
      version: '1.0-r0',
      depends: [],
      files: [{ name: 'usr/share/big/blob', content: randomBytes(3 * 1024 * 1024) }],
    });
    assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
    const blobs = server.services.blobs;
    const read = blobs.read.bind(blobs);
    blobs.read = (sha256, range) => {
      if (!range) wholeReads++;
      return read(sha256, range);
    };
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('the first range verifies the object whole; later ones do not read it again', async () => {
    for (const [start, end] of [
      [0, 99],
      [1000, 1999],
      [apk.length - 50, apk.length - 1],
    ] as const) {
      const res = await fetch(url(), { headers: { range: `bytes=${start}-${end}` } });
      assert.equal(res.status, 206);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), new Uint8Array(apk.subarray(start, end + 1)));
    }
    assert.equal(wholeReads, 1);
  });

  test('ranges arriving together share one verification', async () => {
    const other = await buildApk({
      name: 'big2',
      version: '1.0-r0',
      depends: [],
      files: [{ name: 'usr/share/big2/blob', content: randomBytes(2 * 1024 * 1024) }],
    });
    assert.equal((await publish(server, 'main', 'musl', other)).status, 201);
    const before = wholeReads;
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        fetch(`${server.url}/main/musl/x86_64/big2-1.0-r0.apk`, {
          headers: { range: `bytes=${i * 100}-${i * 100 + 99}` },
        }),
      ),
    );
    for (const [i, res] of answers.entries()) {
      assert.equal(res.status, 206);
      assert.deepEqual(
        new Uint8Array(await res.arrayBuffer()),
        new Uint8Array(other.subarray(i * 100, i * 100 + 100)),
      );
    }
    assert.equal(wholeReads, before + 1);
  });

  test('an object written again is verified again, and refused when it is not the package', async () => {
    const s3 = server.services.config.s3!;
    const sha256 = (await server.services.store.findPublishedFile(
      { repo: 'main', libc: 'musl', arch: 'x86_64' },
      'big-1.0-r0.apk',
    ))!.sha256;
    const client = new S3Client({
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: s3.pathStyle,
      credentials: s3.credentials,
    });
    const forged = Buffer.from(apk);
    forged[forged.length - 10]! ^= 0xff;
    await client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: `${s3.prefix}blobs/sha256/${sha256.slice(0, 2)}/${sha256}`,
        Body: forged,
      }),
    );
    client.destroy();
    const before = wholeReads;
    const res = await fetch(url(), { headers: { range: 'bytes=0-99' } });
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as { code: string }).code, 'INTERNAL');
    assert.equal(wholeReads, before + 1, 'read whole again');
  });
});
