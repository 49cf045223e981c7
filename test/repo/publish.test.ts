import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fsck } from '../../src/repo/fsck.ts';
import { deletePackage, KeyedLock, publishPackage } from '../../src/repo/publish.ts';
import type { BlobStore, TempBlob } from '../../src/store/blob-store.ts';
import { sqliteOf } from '../../src/store/sqlite-database.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { publishForm, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { sampleSpdx } from '../sbom/sbom-fixtures.ts';

/** A melange-shaped SBOM of crane 0.20.2-r1. */
const GOLDEN = Buffer.from(JSON.stringify(sampleSpdx('crane', '0.20.2-r1'), null, 2));
const GOLDEN_SHA256 = createHash('sha256').update(GOLDEN).digest('hex');

/**
 * The server's own blob store, passed through, except that the commit of
 * `armAfter`'s blob, once done, does not return until `release()`: a
 * publish held between storing that blob and inserting its row (the
 * publish's other blobs are stored beside it meanwhile).
 */
class HeldBlobStore implements BlobStore {
  private held = false;
  private gate!: () => void;
  /** Settles when a publish is being held. */
  readonly holding: Promise<void>;
  private startHolding!: () => void;
  /** Settles when `delete` is called for `armAfter`'s blob. */
  readonly deletedArmed: Promise<void>;
  private sawDelete!: () => void;

  constructor(
    private readonly inner: BlobStore,
    private readonly armAfter: string,
  ) {
    this.holding = new Promise((resolve) => {
      this.startHolding = resolve;
    });
    this.deletedArmed = new Promise((resolve) => {
      this.sawDelete = resolve;
    });
  }

  release(): void {
    this.gate?.();
  }

  createTemp(): Promise<TempBlob> {
    return this.inner.createTemp();
  }

  async commit(temp: TempBlob, sha256: string): Promise<void> {
    await this.inner.commit(temp, sha256);
    if (sha256 === this.armAfter && !this.held) {
      this.held = true;
      const opened = new Promise<void>((resolve) => {
        this.gate = resolve;
      });
      this.startHolding();
      await opened;
    }
  }

  version(sha256: string) {
    return this.inner.version(sha256);
  }

  close() {
    this.inner.close();
  }

  has(sha256: string) {
    return this.inner.has(sha256);
  }
  size(sha256: string) {
    return this.inner.size(sha256);
  }
  read(sha256: string, range?: { start: number; end: number }) {
    return this.inner.read(sha256, range);
  }
  readAll(sha256: string) {
    return this.inner.readAll(sha256);
  }
  async delete(sha256: string): Promise<void> {
    if (sha256 === this.armAfter) this.sawDelete();
    await this.inner.delete(sha256);
  }
}

/** Files under the content-addressed blob folder. */
function blobFiles(dataDir: string): string[] {
  const root = join(dataDir, 'blobs', 'sha256');
  return readdirSync(root).flatMap((dir) => readdirSync(join(root, dir)));
}

async function assertClean(server: TestServer): Promise<void> {
  const report = await fsck(server.dataDir, { graceMs: 0, recheckDelayMs: 0 });
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.garbage, []);
}

/** A test with its own server, closed and removed after. */
async function withServer(fn: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await startServer();
  try {
    await fn(server);
  } finally {
    await server.close();
    removeDir(server.dataDir);
  }
}

test('a delete between a publish storing a shared SBOM and inserting its row keeps the SBOM', () =>
  withServer(async (server) => {
    // One SBOM sent with two builds of crane (other bytes, other repositories).
    const first = await buildApk({
      name: 'crane',
      version: '0.20.2-r1',
      description: 'first build',
      depends: [],
    });
    const second = await buildApk({
      name: 'crane',
      version: '0.20.2-r1',
      description: 'second build',
      depends: [],
    });
    const a = await publishForm(server, 'shared-a', 'glibc', { package: first, sbom: GOLDEN });
    assert.equal(a.status, 201, JSON.stringify(a.json));

    const blobs = new HeldBlobStore(server.services.blobs, GOLDEN_SHA256);
    const deps = { ...server.services, blobs };
    const publishing = publishPackage(deps, { repo: 'shared-b', libc: 'glibc' }, chunked(second), {
      extras: async () => ({ sbom: GOLDEN }),
    });
    // The second publish has stored the SBOM blob and not yet inserted its row.
    await blobs.holding;
    const deleting = deletePackage(
      deps,
      { repo: 'shared-a', libc: 'glibc', arch: 'x86_64' },
      'crane',
      '0.20.2-r1',
    );
    // Without blob locks held through the insert, the delete collects the SBOM now; with them it waits.
    await Promise.race([deleting, blobs.deletedArmed, new Promise((r) => setTimeout(r, 1000))]);
    blobs.release();
    assert.equal((await publishing).outcome, 'created');
    await deleting;

    const sbom = await fetch(
      `${server.url}/api/v1/packages/shared-b/glibc/x86_64/crane/0.20.2-r1/sbom?format=original`,
    );
    assert.equal(sbom.status, 200);
    assert.ok(Buffer.from(await sbom.arrayBuffer()).equals(GOLDEN));
    const exported = await fetch(`${server.url}/api/v1/sbom/export?repo=shared-b`);
    assert.equal(exported.status, 200);
    const lines = (await exported.text()).split('\n').filter(Boolean);
    assert.equal(lines.length, 1);
    assert.deepEqual(JSON.parse(lines[0]!).sbom, JSON.parse(GOLDEN.toString('utf8')));
    await assertClean(server);
  }));

test('PUT …/sbom collects the SBOM it replaces, and a failed one leaves no blob behind', () =>
  withServer(async (server) => {
    const pkg = await buildApk({ name: 'crane', version: '0.20.2-r1', description: 'replaced', depends: [] });
    const r = await publishForm(server, 'replace', 'glibc', { package: pkg });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const url = `${server.url}/api/v1/packages/replace/glibc/x86_64/crane/0.20.2-r1/sbom`;
    const put = (body: Buffer) =>
      fetch(url, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: new Uint8Array(body),
      });
    const files = blobFiles(server.dataDir).length;
    // The generated SBOM, then the golden one, then the same document spelled on one line.
    const oneLine = Buffer.from(JSON.stringify(JSON.parse(GOLDEN.toString('utf8'))));
    for (const body of [GOLDEN, oneLine]) {
      const res = await put(body);
      assert.equal(res.status, 200, await res.text());
      assert.equal(blobFiles(server.dataDir).length, files, 'one SBOM blob replaced by one');
      await assertClean(server);
    }

    sqliteOf(server.services.database).exec(
      `CREATE TRIGGER refuse_sbom BEFORE UPDATE ON sboms BEGIN SELECT RAISE(ABORT, 'refused'); END`,
    );
    try {
      assert.equal((await put(GOLDEN)).status, 500);
    } finally {
      sqliteOf(server.services.database).exec('DROP TRIGGER refuse_sbom');
    }
    assert.equal(blobFiles(server.dataDir).length, files);
    const served = await fetch(`${url}?format=original`);
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(oneLine), 'the SBOM before the failure stays');
    await assertClean(server);
  }));

test('KeyedLock.runAll: callers sharing keys in any order exclude each other and never deadlock', {
  timeout: 10_000,
}, async () => {
  const locks = new KeyedLock();
  const inside = new Set<string>();
  const clashes: string[] = [];
  const hold = (keys: string[]) => async () => {
    for (const k of keys) if (inside.has(k)) clashes.push(k);
    for (const k of keys) inside.add(k);
    await new Promise((r) => setTimeout(r, 1));
    for (const k of keys) inside.delete(k);
  };
  const orders = [['a', 'b', 'c'], ['c', 'b', 'a', 'a'], ['b']];
  await Promise.all(
    Array.from({ length: 60 }, (_, i) => {
      const keys = orders[i % 3]!;
      return keys.length === 1 ? locks.run(keys[0]!, hold(keys)) : locks.runAll(keys, hold(keys));
    }),
  );
  assert.deepEqual(clashes, []);
});
