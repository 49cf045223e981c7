import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { spawnServer } from '../helpers/child-server.ts';
import { publish, removeDir, TEST_TOKEN } from '../helpers/server.ts';

test('SIGKILL during a publish burst loses no acknowledged package', { timeout: 120_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-crash-'));
  try {
    const packages = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        buildApk({
          name: `crash${i}`,
          files: [{ name: `usr/share/crash${i}`, content: 'x'.repeat(20_000 + i) }],
        }),
      ),
    );
    const first = await spawnServer(dataDir);
    const acked = new Map<string, Buffer>();
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < packages.length && !killed) {
        const i = next++;
        try {
          const r = await publish(first, 'crash', 'musl', packages[i]!);
          if (r.status === 201) acked.set(`crash${i}-1.0.0-r0.apk`, packages[i]!);
          if (acked.size >= 15 && !killed) {
            killed = true;
            first.child.kill('SIGKILL');
          }
        } catch {
          // The connection died with the server: not acknowledged.
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    assert.ok(killed, 'the server was killed mid-burst');
    await first.exited;

    const second = await spawnServer(dataDir);
    try {
      assert.deepEqual(readdirSync(join(dataDir, 'tmp')), [], 'no temp files survive a restart');
      const keys = (await (await fetch(`${second.url}/keys`)).json()) as { keys: string[] };
      const pem = await (await fetch(`${second.url}/keys/${keys.keys[0]}`)).text();
      const body = Buffer.from(
        await (await fetch(`${second.url}/crash/musl/x86_64/APKINDEX.tar.gz`)).arrayBuffer(),
      );
      const index = await readIndex(chunked(body), {
        keys: [loadPublicKey(keys.keys[0]!, pem)],
        requireValidSignature: true,
      });
      const listed = new Set(index.records.map((r) => `${r.name}-${r.version}.apk`));
      for (const [file, bytes] of acked) {
        assert.ok(listed.has(file), `${file} was acknowledged and must be listed`);
        const res = await fetch(`${second.url}/crash/musl/x86_64/${file}`);
        assert.equal(res.status, 200);
        const got = Buffer.from(await res.arrayBuffer());
        assert.equal(
          createHash('sha256').update(got).digest('hex'),
          createHash('sha256').update(bytes).digest('hex'),
        );
      }
      // The index agrees with the database: it lists exactly the published rows.
      const api = (await (
        await fetch(`${second.url}/api/v1/repos/crash/musl/x86_64/packages?limit=1000`)
      ).json()) as {
        packages: Array<{ filename: string }>;
      };
      assert.deepEqual([...listed].sort(), api.packages.map((p) => p.filename).sort());
    } finally {
      await second.stop();
    }
  } finally {
    removeDir(dataDir);
  }
});

test('SIGTERM lets an upload in flight finish, then exits cleanly', { timeout: 60_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-term-'));
  try {
    const server = await spawnServer(dataDir);
    const apk = await buildApk({
      name: 'inflight',
      files: [{ name: 'usr/share/x', content: 'z'.repeat(100_000) }],
    });
    const half = Math.floor(apk.length / 2);
    let sentHalf!: () => void;
    const halfSent = new Promise<void>((r) => {
      sentHalf = r;
    });
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new Uint8Array(apk.subarray(0, half)));
        sentHalf();
        await new Promise((r) => setTimeout(r, 700));
        controller.enqueue(new Uint8Array(apk.subarray(half)));
        controller.close();
      },
    });
    const upload = fetch(`${server.url}/api/v1/repos/term/musl/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
      body,
      duplex: 'half',
    } as RequestInit);
    await halfSent;
    await new Promise((r) => setTimeout(r, 100));
    const exited = server.stop();
    const res = await upload;
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal((await exited).code, 0);
    // The package survived the shutdown.
    const again = await spawnServer(dataDir);
    try {
      assert.equal((await fetch(`${again.url}/term/musl/x86_64/inflight-1.0.0-r0.apk`)).status, 200);
    } finally {
      await again.stop();
    }
  } finally {
    removeDir(dataDir);
  }
});
