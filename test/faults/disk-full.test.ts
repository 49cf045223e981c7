import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { fsck } from '../../src/repo/fsck.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { type ChildServer, spawnServer } from '../helpers/child-server.ts';
import { publish, removeDir, startServer } from '../helpers/server.ts';

/**
 * A publish that runs out of space: a real filesystem condition, not a mock.
 * Where the machine lets us mount, the data folder is a small tmpfs (ENOSPC);
 * everywhere, a second test lowers the running server's RLIMIT_FSIZE with
 * prlimit (no privileges needed for one's own child), so writes past the limit
 * fail with EFBIG. Whatever stage a publish dies in (temp file, blob, SBOM,
 * SQLite's WAL, the index), it must answer 507 STORAGE_FULL or 500, leave
 * nothing behind, and reads must go on working.
 */

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Attempt {
  file: string;
  bytes: Buffer;
  status: number;
  code: unknown;
}

async function packages(prefix: string, sizes: number[]): Promise<Array<{ file: string; bytes: Buffer }>> {
  return Promise.all(
    sizes.map(async (size, i) => ({
      file: `${prefix}${i}-1.0.0-r0.apk`,
      // Random content does not compress: the file is about `size` bytes.
      bytes: await buildApk({
        name: `${prefix}${i}`,
        files: [{ name: `usr/share/${prefix}${i}`, content: randomBytes(size) }],
      }),
    })),
  );
}

async function attemptAll(
  server: ChildServer,
  pkgs: Array<{ file: string; bytes: Buffer }>,
): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  for (const p of pkgs) {
    const res = await publish(server, 'full', 'musl', p.bytes);
    attempts.push({ ...p, status: res.status, code: res.json.code });
  }
  return attempts;
}

/**
 * Package bytes a failed publish left in the blob store. publish.ts commits the
 * blob before the row; when SQLite then fails (SQLITE_IOERR_WRITE or SQLITE_FULL: a 500) nothing
 * removes it. fsck reports these as unreferenced blobs; the TODO test below
 * keeps the finding visible until publish.ts collects them on failure.
 */
const leftoverBlobs = new Set<string>();

/** What a full disk may do to a publish, and what it may not leave behind. */
async function checkAfter(
  server: ChildServer,
  dataDir: string,
  attempts: Attempt[],
  context: string,
): Promise<void> {
  for (const a of attempts) {
    assert.ok(
      [201, 500, 503, 507].includes(a.status),
      `${context}: ${a.file} answered ${a.status} ${String(a.code)}`,
    );
    if (a.status === 507) assert.equal(a.code, 'STORAGE_FULL', context);
    if (a.status === 503) assert.equal(a.code, 'PUBLISH_INDEX_PENDING', context);
  }
  assert.deepEqual(readdirSync(join(dataDir, 'tmp')), [], `${context}: no temp upload left`);
  const keys = (await (await fetch(`${server.url}/keys`)).json()) as { keys: string[] };
  const pems = await Promise.all(
    keys.keys.map(async (k) => loadPublicKey(k, await (await fetch(`${server.url}/keys/${k}`)).text())),
  );
  const acked = attempts.filter((a) => a.status === 201);
  const res = await fetch(`${server.url}/full/musl/x86_64/APKINDEX.tar.gz`);
  const listed = new Set<string>();
  if (res.status === 200) {
    const index = await readIndex(chunked(Buffer.from(await res.arrayBuffer())), {
      keys: pems,
      requireValidSignature: true,
    });
    for (const r of index.records) listed.add(`${r.name}-${r.version}.apk`);
  } else {
    assert.equal(res.status, 404, `${context}: index`);
  }
  for (const a of attempts) {
    const got = await fetch(`${server.url}/full/musl/x86_64/${a.file}`);
    const blob = join(dataDir, 'blobs', 'sha256', sha256(a.bytes).slice(0, 2), sha256(a.bytes));
    if (a.code === 'PUBLISH_INDEX_PENDING') {
      // Stored, and said so: listed once an index build succeeds, then served whole.
      if (listed.has(a.file)) {
        assert.equal(
          sha256(Buffer.from(await got.arrayBuffer())),
          sha256(a.bytes),
          `${context}: ${a.file} bytes`,
        );
      } else {
        await got.arrayBuffer();
      }
    } else if (a.status === 201) {
      assert.ok(listed.has(a.file), `${context}: ${a.file} acknowledged and listed`);
      assert.equal(got.status, 200, `${context}: ${a.file}`);
      assert.equal(
        sha256(Buffer.from(await got.arrayBuffer())),
        sha256(a.bytes),
        `${context}: ${a.file} bytes`,
      );
    } else {
      assert.ok(!listed.has(a.file), `${context}: ${a.file} failed (${a.status}) but is listed`);
      assert.equal(got.status, 404, `${context}: ${a.file} failed but is served`);
      await got.arrayBuffer();
      if (existsSync(blob)) leftoverBlobs.add(`${a.file} (${a.status} ${String(a.code)})`);
    }
  }
  assert.ok(acked.length > 0, `${context}: something was published before the disk filled`);
}

async function restartAndCheck(dataDir: string, attempts: Attempt[], context: string): Promise<void> {
  // A failed publish must not come back at the next start (no half-written row gets indexed).
  const again = await spawnServer(dataDir, { bundled: true });
  try {
    await checkAfter(again, dataDir, attempts, `${context}, after a restart with room`);
  } finally {
    await again.stop();
  }
  const report = await fsck(dataDir);
  assert.deepEqual(report.problems, [], context);
  assert.deepEqual(
    report.garbage.filter((g) => g.code === 'TEMP_FILE'),
    [],
    `${context}: temp files`,
  );
}

test('disk full (tmpfs): 507 or 500, nothing partial, reads go on', { timeout: 120_000 }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', dataDir], { stdio: 'pipe' });
  } catch (err) {
    rmdirSync(dataDir);
    t.skip(
      `this machine refuses a tmpfs mount (${(err as Error).message.split('\n')[0]}); the RLIMIT_FSIZE test covers it`,
    );
    return;
  }
  let server: ChildServer | undefined;
  try {
    server = await spawnServer(dataDir, { bundled: true });
    // Growing packages until the 6 MiB are gone, then small ones into whatever is left.
    const big = await packages(
      'big',
      [300_000, 600_000, 900_000, 1_200_000, 1_500_000, 1_800_000, 2_100_000],
    );
    const small = await packages('small', [40_000, 20_000, 10_000, 5_000, 2_000]);
    const attempts = await attemptAll(server, [...big, ...small]);
    assert.ok(
      attempts.some((a) => a.status === 507),
      `the disk filled: ${attempts.map((a) => a.status).join(' ')}`,
    );
    await checkAfter(server, dataDir, attempts, 'tmpfs full');
    await server.stop();
    server = undefined;
    // Room again (the mount grows), then a restart: the failures stay failures.
    execFileSync('mount', ['-o', 'remount,size=64m', dataDir]);
    await restartAndCheck(dataDir, attempts, 'tmpfs');
    t.diagnostic(`statuses: ${attempts.map((a) => `${a.file.split('-')[0]}=${a.status}`).join(' ')}`);
  } finally {
    await server?.stop('SIGKILL');
    execFileSync('umount', [dataDir]);
    rmdirSync(dataDir);
  }
});

test('file size limit (RLIMIT_FSIZE, unprivileged): 507 or 500, nothing partial, reads go on', {
  timeout: 120_000,
}, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-fsize-'));
  let server: ChildServer | undefined;
  try {
    server = await spawnServer(dataDir, { bundled: true });
    const before = await attemptAll(server, await packages('pre', [20_000, 30_000]));
    assert.deepEqual(
      before.map((a) => a.status),
      [201, 201],
    );
    // From now on no file of the server may grow past 384 KiB: blobs, temp files, the WAL.
    execFileSync('prlimit', ['--pid', String(server.child.pid), '--fsize=393216:393216']);
    const attempts = [
      ...before,
      ...(await attemptAll(
        server,
        await packages('lim', [800_000, 30_000, 500_000, 30_000, 30_000, 30_000, 30_000, 30_000, 600_000]),
      )),
    ];
    const big = attempts.filter((a) => a.bytes.length > 393_216);
    assert.deepEqual(
      big.map((a) => [a.status, a.code]),
      big.map(() => [507, 'STORAGE_FULL']),
      'a package past the limit cannot be stored',
    );
    await checkAfter(server, dataDir, attempts, 'RLIMIT_FSIZE');
    const failures = server
      .output()
      .split('\n')
      .filter((l) => l.includes('"request failed"'))
      .map((l) => (JSON.parse(l) as { err?: { code?: string; type?: string } }).err)
      .map((e) => e?.code ?? e?.type);
    t.diagnostic(`server errors: ${failures.join(' ')}`);
    await server.stop();
    server = undefined;
    await restartAndCheck(dataDir, attempts, 'RLIMIT_FSIZE');
    t.diagnostic(`statuses: ${attempts.map((a) => `${a.file.split('-')[0]}=${a.status}`).join(' ')}`);
  } finally {
    await server?.stop('SIGKILL');
    removeDir(dataDir);
  }
});

test('disk full: a failed publish leaves no package bytes behind', () => {
  assert.deepEqual([...leftoverBlobs], []);
});

test('an index that cannot be written: the publish fails, its row and blobs are taken back, and it never appears', async () => {
  const server = await startServer();
  try {
    const ok = await buildApk({ name: 'first', version: '1.0-r0', arch: 'riscv64', depends: [] });
    assert.equal((await publish(server, 'full', 'musl', ok)).status, 201);
    // The blob store fails to take the next index (an I/O error as the disk would report it), and
    // only that: the package's own blobs and the database write as ever. The index is told from the
    // other blobs by its signature entry, named after the server's signing key.
    const { blobs } = server.services;
    const commit = blobs.commit.bind(blobs);
    const signature = `.SIGN.RSA256.${server.services.signingKeys[0]!.keyName}`;
    let failing = true;
    blobs.commit = async (temp, digest) => {
      if (failing && gunzipSync(readFileSync(temp.path)).includes(signature)) {
        await temp.discard();
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }
      return commit(temp, digest);
    };
    const apk = await buildApk({ name: 'blocked', version: '1.0-r0', arch: 'aarch64', depends: [] });
    const res = await publish(server, 'full', 'musl', apk);
    assert.equal(res.status, 500, JSON.stringify(res.json));
    const pkg = await server.services.store.find(
      { repo: 'full', libc: 'musl', arch: 'aarch64' },
      'blocked',
      '1.0-r0',
    );
    assert.equal(pkg, undefined, 'the row was taken back');
    assert.equal(
      await server.services.store.slotHolder(
        { repo: 'full', libc: 'musl', arch: 'aarch64' },
        'blocked',
        '1.0-r0',
      ),
      undefined,
      'no version reserved',
    );
    assert.equal(await server.services.blobs.has(sha256(apk)), false, 'its bytes were collected');
    // The store takes blobs again: the same file publishes, and the first package's index never moved.
    failing = false;
    assert.equal((await publish(server, 'full', 'musl', apk)).status, 201);
    assert.equal((await fetch(`${server.url}/full/musl/riscv64/first-1.0-r0.apk`)).status, 200);
  } finally {
    await server.close();
    removeDir(server.dataDir);
  }
});
