import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { runVerify } from '../../src/cli/verify.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import { needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import { publish, removeDir, startServer } from '../helpers/server.ts';

/**
 * `reef backup` of an installation whose blobs are in an object store (a
 * real S3 server): the backup is a self-contained data folder, blobs
 * included, that starts as an embedded installation serving the same bytes.
 */

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sink = { write: () => true };

test('a backup of an S3 installation restores as a data folder with every blob', needsS3, async () => {
  const s3Env = s3ServerEnv(s3Engine!);
  const server = await startServer(s3Env);
  const root = mkdtempSync(join(tmpdir(), 'reef-backup-s3-'));
  try {
    const sums = new Map<string, string>();
    for (const name of ['one', 'two', 'three']) {
      const apk = await buildApk({ name, version: '1.0-r0', depends: [] });
      sums.set(name, sha256(apk));
      assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
    }
    assert.ok(!existsSync(join(server.dataDir, 'blobs')), 'no blob in the data folder');
    // Beside the running server, as an operator runs it.
    const dest = join(root, 'copy');
    const run = await reef(['backup', dest, '--data', server.dataDir], s3Env);
    assertExit(run, 0);
    // Each package: its file, its generated SBOM and reef's attestation; and the live index.
    assert.match(run.stdout, / 3 packages, 10 blobs \(\d+ bytes\), 1 indexes,/);
    const index = Buffer.from(
      await (await fetch(`${server.url}/main/musl/x86_64/APKINDEX.tar.gz`)).arrayBuffer(),
    );

    // Restored without REEF_BLOB_URL: an embedded installation.
    const restored = await startServer({ REEF_BLOB_URL: '' }, dest);
    try {
      const res = await fetch(`${restored.url}/main/musl/x86_64/APKINDEX.tar.gz`);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(index), 'the index copied, byte for byte');
      for (const [name, sum] of sums) {
        const url = `${restored.url}/main/musl/x86_64/${name}-1.0-r0.apk`;
        const res = await fetch(url);
        assert.equal(sha256(new Uint8Array(await res.arrayBuffer())), sum, name);
        assert.equal(
          await runVerify([url], { env: {}, stdout: sink, stderr: sink }),
          0,
          `${name}: reef verify`,
        );
      }
    } finally {
      await restored.close();
    }

    // An object whose bytes are not its address fails the backup, by name.
    const victim = sums.get('two')!;
    const client = new S3Client({
      region: s3Engine!.region,
      endpoint: s3Engine!.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3Engine!.accessKeyId, secretAccessKey: s3Engine!.secretAccessKey },
    });
    const config = server.services.config.s3!;
    await client.send(
      new PutObjectCommand({
        Bucket: config.bucket,
        Key: `${config.prefix}blobs/sha256/${victim.slice(0, 2)}/${victim}`,
        Body: 'not the package',
      }),
    );
    client.destroy();
    const bad = await reef(['backup', join(root, 'bad'), '--data', server.dataDir], s3Env);
    assertExit(bad, 1);
    assert.match(bad.stderr, new RegExp(`STORAGE_CORRUPT.*${victim}`));
  } finally {
    await server.close();
    removeDir(server.dataDir);
    removeDir(root);
  }
});
