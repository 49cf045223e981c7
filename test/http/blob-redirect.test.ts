import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { isAppError } from '../../src/errors.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';

/**
 * REEF_BLOB_REDIRECT_SECONDS: package downloads answered with a 302 to a
 * presigned URL of the object store (a real S3 server), after the same read
 * check as a download through reef.
 */

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('REEF_BLOB_URL with a prefix that is not valid percent-encoding is a configuration error', () => {
  assert.throws(
    () => loadConfig({ REEF_DATA_DIR: '/tmp/x', REEF_BLOB_URL: 's3://bucket/bad%zz' }),
    (err) => isAppError(err) && err.code === 'CONFIG_INVALID' && /REEF_BLOB_URL/.test(err.message),
  );
});

test('redirects need an object store to redirect to', () => {
  assert.throws(
    () => loadConfig({ REEF_DATA_DIR: '/tmp/x', REEF_BLOB_REDIRECT_SECONDS: '300' }),
    (err) => isAppError(err) && err.code === 'CONFIG_INVALID' && /REEF_BLOB_URL/.test(err.message),
  );
});

describe('package downloads redirected to the object store', { skip: needsS3.skip }, () => {
  let server: TestServer;
  let apk: Buffer;
  before(async () => {
    server = await startServer({ ...s3ServerEnv(s3Engine!), REEF_BLOB_REDIRECT_SECONDS: '300' });
    apk = await buildApk({ name: 'hello', version: '1.0-r0', depends: [] });
    assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
    const secret = await buildApk({ name: 'secret', version: '1.0-r0', depends: [] });
    assert.equal((await publish(server, 'hidden', 'musl', secret)).status, 201);
    await makePrivate(server, 'hidden');
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('GET of a package: 302 to a presigned URL that serves the same bytes, ranges too; HEAD from reef', async () => {
    const res = await fetch(`${server.url}/main/musl/x86_64/hello-1.0-r0.apk`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('cache-control'), 'private, no-store');
    const presigned = new URL(res.headers.get('location')!);
    assert.equal(presigned.origin, s3Engine!.endpoint, 'the object store serves it');
    assert.equal(presigned.searchParams.get('X-Amz-Expires'), '300');
    // HEAD is answered by reef: a URL presigned for GET is refused for HEAD by the store.
    const head = await fetch(`${server.url}/main/musl/x86_64/hello-1.0-r0.apk`, {
      method: 'HEAD',
      redirect: 'manual',
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(apk.length));
    assert.equal(head.headers.get('etag'), `"${sha256(apk)}"`);
    const followed = await fetch(`${server.url}/main/musl/x86_64/hello-1.0-r0.apk`);
    assert.equal(followed.status, 200);
    assert.equal(sha256(new Uint8Array(await followed.arrayBuffer())), sha256(apk));
    const location = (
      await fetch(`${server.url}/main/musl/x86_64/hello-1.0-r0.apk`, { redirect: 'manual' })
    ).headers.get('location')!;
    const range = await fetch(location, { headers: { range: 'bytes=0-99' } });
    assert.equal(range.status, 206);
    assert.deepEqual(new Uint8Array(await range.arrayBuffer()), new Uint8Array(apk.subarray(0, 100)));
    // The index is reef's own, served as always.
    assert.equal(
      (await fetch(`${server.url}/main/musl/x86_64/APKINDEX.tar.gz`, { redirect: 'manual' })).status,
      200,
    );
  });

  test('a private package: no redirect before the read check passes', async () => {
    const path = `${server.url}/hidden/musl/x86_64/secret-1.0-r0.apk`;
    const anonymous = await fetch(path, { redirect: 'manual' });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('location'), null);
    const reader = await fetch(path, {
      redirect: 'manual',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    assert.equal(reader.status, 302);
    // A URL tampered with (another object, same signature) is refused by the store itself.
    const forged = reader.headers.get('location')!.replace('/blobs/sha256/', '/blobs/sha256/x');
    assert.equal((await fetch(forged)).status, 403);
  });
});
