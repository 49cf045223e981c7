import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runVerify } from '../../src/cli/verify.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import { freshBucket, needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import { publish, removeDir, startServer, type TestServer } from '../helpers/server.ts';
import { spdxWithOpenssl } from '../sbom/sbom-fixtures.ts';

/**
 * `reef migrate-storage`: the blobs of an installation moved from the data
 * folder to a real S3 server and back, every package then served with the
 * same bytes and passing `reef verify` (index signature, C:, reef's signed
 * publish record), with the server stopped throughout.
 */

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PACKAGES = ['alpha-1.0-r0', 'beta-2.0-r0'];

async function verifyPackage(url: string): Promise<number> {
  const sink = { write: () => true };
  return runVerify([url], { env: {}, stdout: sink, stderr: sink });
}

describe('reef migrate-storage', { skip: needsS3.skip }, () => {
  let dataDir: string;
  const bytes = new Map<string, string>();
  let s3Env: Record<string, string>;
  /** The object store's settings without REEF_BLOB_URL: blobs still in the data folder. */
  let awsEnv: Record<string, string>;
  let bucketUrl: string;

  /** A server on the data folder (with `env`), every package downloaded and verified, then stopped. */
  async function serveAndCheck(env: Record<string, string>): Promise<void> {
    const server: TestServer = await startServer({ ...env, REEF_CACHE_BYTES: '0' }, dataDir);
    try {
      for (const name of PACKAGES) {
        const url = `${server.url}/main/musl/x86_64/${name}.apk`;
        const res = await fetch(url);
        assert.equal(res.status, 200, name);
        assert.equal(
          sha256(new Uint8Array(await res.arrayBuffer())),
          bytes.get(name),
          `${name}: the same bytes`,
        );
        assert.equal((await fetch(`${url}.spdx.json`)).status, 200, `${name}: its SBOM`);
        assert.equal(await verifyPackage(url), 0, `${name}: reef verify`);
      }
    } finally {
      await server.close();
    }
  }

  before(async () => {
    s3Env = s3ServerEnv(s3Engine!, freshBucket('reef-migrate'));
    const { REEF_BLOB_URL, ...rest } = s3Env;
    bucketUrl = REEF_BLOB_URL!;
    awsEnv = rest;
    const server = await startServer();
    dataDir = server.dataDir;
    try {
      for (const name of PACKAGES) {
        const [pkg, version, release] = name.split('-') as [string, string, string];
        const apk = await buildApk({
          name: pkg,
          version: `${version}-${release}`,
          depends: [],
          sbom: spdxWithOpenssl(pkg, `${version}-${release}`, '3.0.8-r0'),
        });
        bytes.set(name, sha256(apk));
        assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
      }
      // Not while a server has the database.
      const busy = await reef(['migrate-storage', '--data', dataDir, '--to', bucketUrl], awsEnv);
      assertExit(busy, 1);
      assert.match(busy.stderr, /DATA_DIR_BUSY|stop it/);
    } finally {
      await server.close();
    }
  });
  after(() => removeDir(dataDir));

  test('to the object store: every blob copied and verified, served from there alone', async () => {
    const run = await reef(['migrate-storage', '--data', dataDir, '--to', bucketUrl], awsEnv);
    assertExit(run, 0);
    // Two packages, each with its embedded SBOM and reef's attestation.
    assert.match(run.stdout, /^copied 6 blobs \(\d+ bytes\)/);
    const again = await reef(['migrate-storage', '--data', dataDir, '--to', bucketUrl], awsEnv);
    assertExit(again, 0);
    assert.match(again.stdout, /^copied 0 blobs \(0 bytes\) .*; 6 were there already/);
    // Served from the object store alone.
    rmSync(join(dataDir, 'blobs'), { recursive: true });
    await serveAndCheck(s3Env);
  });

  test('back to the data folder', async () => {
    const run = await reef(['migrate-storage', '--data', dataDir, '--to', 'data-folder'], s3Env);
    assertExit(run, 0);
    assert.match(run.stdout, /^copied 6 blobs/);
    assert.equal(readdirSync(join(dataDir, 'blobs', 'sha256')).length > 0, true);
    await serveAndCheck({});
  });

  test('a corrupt source blob stops the copy, and never reaches the target', async () => {
    const target = s3ServerEnv(s3Engine!, freshBucket('reef-migrate-bad'));
    // A package's blob: the folder also holds index blobs, which a move leaves to be rebuilt.
    const victim = bytes.get(PACKAGES[0]!)!;
    writeFileSync(join(dataDir, 'blobs', 'sha256', victim.slice(0, 2), victim), 'not the blob');
    const { REEF_BLOB_URL: targetUrl, ...targetAws } = target;
    const run = await reef(['migrate-storage', '--data', dataDir, '--to', targetUrl!], targetAws);
    assertExit(run, 1);
    assert.match(run.stderr, new RegExp(`STORAGE_CORRUPT|${victim}`));
    const server = await startServer(target, dataDir);
    try {
      assert.equal(await server.services.blobs.has(victim), false);
    } finally {
      await server.close();
    }
  });

  test('bad usage', async () => {
    assertExit(await reef(['migrate-storage', '--data', dataDir]), 2);
    assertExit(await reef(['migrate-storage', '--data', dataDir, '--to', 'ftp://x']), 2);
    assertExit(await reef(['migrate-storage', '--data', dataDir, '--to', 'data-folder']), 2);
  });
});
