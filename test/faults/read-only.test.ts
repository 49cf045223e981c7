import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

/**
 * A data folder that becomes read-only under a running server: a real
 * read-only mount, not a mock and not chmod (the tests run as root, for whom
 * permissions stop nothing). The folder is a small tmpfs, remounted `ro` and
 * then `rw` again. Linux refuses to remount a file system read-only while a
 * file on it is open for writing, and SQLite keeps its database open: so
 * reef.db is a symlink to a file elsewhere (SQLite follows it and keeps its
 * WAL beside the real file), and everything else (uploads, blobs, indexes,
 * keys) lives on the mount that goes read-only.
 */

async function remount(dir: string, mode: 'ro' | 'rw'): Promise<void> {
  // A request in flight may hold a file open for a moment (EBUSY): try again.
  for (let attempt = 1; ; attempt++) {
    try {
      execFileSync('mount', ['-o', `remount,${mode}`, dir], { stdio: 'pipe' });
      return;
    } catch (err) {
      if (attempt === 20) throw err;
      await sleep(50);
    }
  }
}

/** /readyz until it answers `status` (its probe keeps an answer for a few seconds). */
async function readyzUntil(server: TestServer, status: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(`${server.url}/readyz`);
    const body = (await res.json()) as Record<string, unknown>;
    if (res.status === status) return body;
    assert.ok(Date.now() < deadline, `/readyz still answers ${res.status} ${JSON.stringify(body)}`);
    await sleep(200);
  }
}

const admin = { authorization: `Bearer ${TEST_TOKEN}` };

test('a data folder gone read-only: writes answer 503 STORAGE_READ_ONLY, /readyz is not ready, reads go on; both recover', {
  timeout: 120_000,
}, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-ro-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', dataDir], { stdio: 'pipe' });
  } catch (err) {
    rmdirSync(dataDir);
    t.skip(`this machine refuses a tmpfs mount (${(err as Error).message.split('\n')[0]})`);
    return;
  }
  const dbDir = mkdtempSync(join(tmpdir(), 'reef-ro-db-'));
  symlinkSync(join(dbDir, 'reef.db'), join(dataDir, 'reef.db'));
  let server: TestServer | undefined;
  let readOnly = false;
  try {
    server = await startServer({}, dataDir);
    assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'before' }))).status, 201);
    assert.deepEqual(await readyzUntil(server, 200), { status: 'ready' });

    await remount(dataDir, 'ro');
    readOnly = true;
    const refused = await publish(server, 'r', 'musl', await buildApk({ name: 'during' }));
    assert.deepEqual([refused.status, refused.json.code], [503, 'STORAGE_READ_ONLY']);
    assert.ok(!String(refused.json.message).includes(dataDir), 'the message names no path');
    const key = await fetch(`${server.url}/api/v1/keys`, { method: 'POST', headers: admin });
    assert.deepEqual([key.status, ((await key.json()) as { code: string }).code], [503, 'STORAGE_READ_ONLY']);
    const notReady = await readyzUntil(server, 503);
    assert.equal(notReady.code, 'STORAGE_READ_ONLY');
    // Reads need no writing.
    assert.equal((await fetch(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`)).status, 200);
    assert.equal((await fetch(`${server.url}/r/musl/x86_64/before-1.0.0-r0.apk`)).status, 200);

    await remount(dataDir, 'rw');
    readOnly = false;
    assert.deepEqual(await readyzUntil(server, 200), { status: 'ready' });
    assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'during' }))).status, 201);
    const index = await fetch(`${server.url}/r/musl/x86_64/during-1.0.0-r0.apk`);
    assert.equal(index.status, 200);
    await index.arrayBuffer();
  } finally {
    if (readOnly) await remount(dataDir, 'rw');
    await server?.close();
    execFileSync('umount', [dataDir]);
    rmdirSync(dataDir);
    removeDir(dbDir);
  }
});
