import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { backupDataDir } from '../../src/repo/backup.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer } from '../helpers/server.ts';

test('a backup taken under a publish burst restores every package acknowledged before it began', {
  timeout: 120_000,
}, async () => {
  const server = await startServer();
  const dest = join(mkdtempSync(join(tmpdir(), 'reef-backup-')), 'copy');
  try {
    const packages = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        buildApk({ name: `bk${i}`, files: [{ name: `usr/share/bk${i}`, content: 'y'.repeat(5000 + i) }] }),
      ),
    );
    const acked = new Map<string, string>();
    let next = 0;
    let backupStarted = false;
    let ackedBeforeBackup: string[] = [];
    const worker = async () => {
      while (next < packages.length) {
        const i = next++;
        const r = await publish(server, 'bk', 'musl', packages[i]!);
        assert.equal(r.status, 201);
        acked.set(`bk${i}-1.0.0-r0.apk`, createHash('sha256').update(packages[i]!).digest('hex'));
      }
    };
    const burst = Promise.all(Array.from({ length: 4 }, worker));
    while (acked.size < 20) await new Promise((r) => setTimeout(r, 5));
    ackedBeforeBackup = [...acked.keys()];
    backupStarted = true;
    const report = await backupDataDir(server.services.db, server.dataDir, dest);
    await burst;
    assert.ok(backupStarted);
    assert.ok(report.packages >= ackedBeforeBackup.length);
    assert.equal(report.keys, 1);
    const keyFile = join(dest, 'keys', `${server.services.signingKeys[0]!.keyName.replace(/\.pub$/, '')}`);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'the private key stays private');
    await server.close();

    const restored = await startServer({}, dest);
    try {
      const key = restored.services.signingKeys[0]!;
      const body = Buffer.from(
        await (await fetch(`${restored.url}/bk/musl/x86_64/APKINDEX.tar.gz`)).arrayBuffer(),
      );
      const index = await readIndex(chunked(body), {
        keys: [loadPublicKey(key.keyName, key.publicPem)],
        requireValidSignature: true,
      });
      const listed = new Set(index.records.map((r) => `${r.name}-${r.version}.apk`));
      for (const file of ackedBeforeBackup) {
        assert.ok(listed.has(file), `${file} was acknowledged before the backup`);
        const res = await fetch(`${restored.url}/bk/musl/x86_64/${file}`);
        assert.equal(res.status, 200);
        const sha = createHash('sha256')
          .update(Buffer.from(await res.arrayBuffer()))
          .digest('hex');
        assert.equal(sha, acked.get(file));
      }
      assert.equal(listed.size, report.packages, 'the restored index lists exactly the snapshot');
    } finally {
      await restored.close();
    }
  } finally {
    removeDir(server.dataDir);
    removeDir(join(dest, '..'));
  }
});
