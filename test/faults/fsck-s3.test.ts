import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { buildApk } from '../helpers/apk-builder.ts';
import { needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import { publish, removeDir, startServer } from '../helpers/server.ts';

/**
 * `reef fsck` with REEF_BLOB_URL: the blobs are objects of a real S3 server
 * (Swift's s3api; skipped without one), damaged and littered here with the
 * AWS SDK, not through reef.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface JsonReport {
  serverRunning: boolean;
  checked: { packages: number; attestations: number; blobs: number; indexes: number };
  problems: Array<{ code: string; subject: string; path?: string }>;
  garbage: Array<{ code: string; path: string }>;
  removed: string[];
  exitCode: number;
}

/** sha256sum, not reef, says where a blob lives. */
function sha256sum(bytes: Buffer): string {
  return execFileSync('sha256sum', { input: bytes }).toString().split(' ')[0]!;
}

describe('reef fsck with blobs in an object store', { skip: needsS3.skip, timeout: 180_000 }, () => {
  let env: Record<string, string>;
  let bucket: string;
  let client: S3Client;
  let dataDir: string;
  let small: Buffer;
  let large: Buffer;

  /** `reef fsck` as an operator runs it, with the server's object store settings. */
  function fsckCli(...args: string[]): Promise<Run> {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REEF_')));
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        ['bin/reef.js', 'fsck', '--data', dataDir, ...args],
        { cwd: ROOT, env: { ...base, ...env }, timeout: 60_000 },
        (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
        },
      );
    });
  }

  async function fsckJson(...args: string[]): Promise<{ run: Run; report: JsonReport }> {
    const run = await fsckCli('--json', ...args);
    assert.ok(run.stdout.startsWith('{'), `fsck printed JSON\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    return { run, report: JSON.parse(run.stdout) as JsonReport };
  }

  const keyOf = (sha256: string) => `reef/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
  const locationOf = (key: string) => `s3://${bucket}/${key}`;
  const put = (key: string, body: Buffer) =>
    client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const exists = (key: string) =>
    client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
      () => true,
      () => false,
    );

  before(async () => {
    env = s3ServerEnv(s3Engine!);
    bucket = new URL(env.REEF_BLOB_URL!).hostname;
    client = new S3Client({
      region: s3Engine!.region,
      endpoint: s3Engine!.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3Engine!.accessKeyId, secretAccessKey: s3Engine!.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    small = await buildApk({
      name: 'fsck-s3-small',
      files: [{ name: 'usr/share/a', content: 'a'.repeat(5000) }],
    });
    // Random bytes do not compress: hashed as it streams from the store, in many chunks.
    large = await buildApk({
      name: 'fsck-s3-large',
      files: [{ name: 'usr/share/big', content: randomBytes(2 << 20) }],
    });
    const server = await startServer(env);
    dataDir = server.dataDir;
    try {
      for (const apk of [small, large]) assert.equal((await publish(server, 'fs3', 'musl', apk)).status, 201);
    } finally {
      await server.close();
    }
    assert.ok(await exists(keyOf(sha256sum(small))));
  });

  after(() => {
    client?.destroy();
    if (dataDir) removeDir(dataDir);
  });

  test('a healthy store: exit 0, every object counted and verified', async () => {
    const { run, report } = await fsckJson();
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.garbage, []);
    assert.equal(report.checked.packages, 2);
    assert.equal(report.checked.attestations, 2);
    // Every object under the prefix is referenced: a package, its SBOM or its attestation (counted),
    // or an index: a live one, or one replaced by the second publish and kept for the grace.
    const listed = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'reef/blobs/sha256/' }),
    );
    const db = new Database(join(dataDir, 'reef.db'), { readonly: true });
    const indexShas = new Set(
      (
        db
          .prepare('SELECT sha256 FROM indexes UNION SELECT sha256 FROM superseded_index_blobs')
          .all() as Array<{ sha256: string }>
      ).map((r) => r.sha256),
    );
    db.close();
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    const indexKeys = keys.filter((k) => indexShas.has(k.slice(k.lastIndexOf('/') + 1)));
    assert.ok(indexKeys.length >= 2, 'the live index and the one it replaced are objects');
    assert.equal(report.checked.blobs, keys.length - indexKeys.length);
    const human = await fsckCli();
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`with blobs in s3://${bucket}/reef`));
    assert.match(human.stdout, /ok: no damage, no garbage/);
  });

  test('an object overwritten with other bytes is BLOB_CORRUPT, named by its s3:// location', async () => {
    const sha = sha256sum(small);
    const flipped = Buffer.from(small);
    flipped[100] = flipped[100]! ^ 0xff;
    await put(keyOf(sha), flipped);
    try {
      const { run, report } = await fsckJson();
      assert.equal(run.code, 1);
      assert.deepEqual(
        report.problems.map((p) => [p.code, p.path]),
        [['BLOB_CORRUPT', locationOf(keyOf(sha))]],
      );
    } finally {
      await put(keyOf(sha), small);
    }
    assert.equal((await fsckCli()).code, 0);
  });

  test('a deleted object is BLOB_MISSING; a truncated one BLOB_SIZE_MISMATCH', async () => {
    const smallSha = sha256sum(small);
    const largeSha = sha256sum(large);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(smallSha) }));
    await put(keyOf(largeSha), large.subarray(0, large.length - 1));
    try {
      const { run, report } = await fsckJson();
      assert.equal(run.code, 1);
      assert.deepEqual(report.problems.map((p) => `${p.code} ${p.path}`).sort(), [
        `BLOB_MISSING ${locationOf(keyOf(smallSha))}`,
        `BLOB_SIZE_MISMATCH ${locationOf(keyOf(largeSha))}`,
      ]);
    } finally {
      await put(keyOf(smallSha), small);
      await put(keyOf(largeSha), large);
    }
    assert.equal((await fsckCli()).code, 0);
  });

  test('garbage objects: exit 3; --repair removes them, and refuses while a server has the folder', async () => {
    const strayBytes = Buffer.from('nothing references me');
    const unreferenced = keyOf(sha256sum(strayBytes));
    // Under the blob area, but no blob's place: the wrong two-digit folder.
    const stray = `reef/blobs/sha256/zz/${sha256sum(strayBytes)}`;
    // Outside the blob area: not reef's to judge, never listed.
    const outside = 'reef/other/keep-me';
    await put(unreferenced, strayBytes);
    await put(stray, strayBytes);
    await put(outside, strayBytes);

    const { run, report } = await fsckJson();
    assert.equal(run.code, 3, run.stdout);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(
      report.garbage.map((g) => `${g.code} ${g.path}`).sort(),
      [`STRAY_FILE ${locationOf(stray)}`, `UNREFERENCED_BLOB ${locationOf(unreferenced)}`].sort(),
    );

    const server = await startServer(env, dataDir);
    try {
      const busy = await fsckCli('--repair');
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /DATA_DIR_BUSY/);
      assert.ok((await exists(unreferenced)) && (await exists(stray)));
      // Next to a live server, objects younger than the grace (by LastModified) are work in progress.
      const live = await fsckJson();
      assert.equal(live.report.serverRunning, true);
      assert.deepEqual(live.report.garbage, []);
      assert.equal(live.run.code, 0);
      // With no grace they count, but a check still removes nothing.
      const graceless = await fsckJson('--grace', '0');
      assert.equal(graceless.run.code, 3);
      assert.equal(graceless.report.garbage.length, 2);
      assert.deepEqual(graceless.report.removed, []);
    } finally {
      await server.close();
    }

    const repaired = await fsckJson('--repair');
    assert.equal(repaired.run.code, 0, repaired.run.stdout);
    assert.deepEqual(repaired.report.removed.sort(), [locationOf(stray), locationOf(unreferenced)].sort());
    assert.ok(!(await exists(unreferenced)) && !(await exists(stray)));
    assert.ok(await exists(outside));
    assert.equal((await fsckCli()).code, 0);
    // Referenced objects are untouched.
    assert.ok(await exists(keyOf(sha256sum(small))));
  });
});
