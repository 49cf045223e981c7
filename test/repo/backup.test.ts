import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { backupDataDir } from '../../src/repo/backup.ts';
import { sqliteOf } from '../../src/store/sqlite-database.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { spawnServer } from '../helpers/child-server.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import { publish, publishForm, removeDir, startServer } from '../helpers/server.ts';
import { signWithKey, slsaStatement } from '../helpers/sigstore-ca.ts';

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
    const report = await backupDataDir(
      sqliteOf(server.services.database),
      server.dataDir,
      dest,
      server.services.blobs,
    );
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
    // Every blob a row of the snapshot names came along: SBOMs and attestations written
    // between the first pass and the snapshot too, not only packages.
    const fsck = await reef(['fsck', '--data', dest, '--json']);
    assert.deepEqual(JSON.parse(fsck.stdout).problems, []);
    assertExit(fsck, 0);
  } finally {
    removeDir(server.dataDir);
    removeDir(join(dest, '..'));
  }
});

test('a backup keeps the attestation key: every earlier package verifies when served from it', {
  timeout: 180_000,
}, async () => {
  const work = mkdtempSync(join(tmpdir(), 'reef-backup-keys-'));
  const dest = join(work, 'copy');
  const server = await startServer();
  try {
    const publisher = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publisherPem = publisher.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      const apk = await buildApk({ name: `att${i}`, version: '1.0.0-r0' });
      const parts: Record<string, Buffer> = { package: apk };
      if (i === 0) {
        // Publisher provenance too: its blob, and the re-issued attestation, belong in the backup.
        const sha256 = createHash('sha256').update(apk).digest('hex');
        const statement = Buffer.from(
          JSON.stringify(slsaStatement({ name: `att${i}-1.0.0-r0.apk`, sha256 })),
        );
        parts.provenance = Buffer.from(
          JSON.stringify(await signWithKey(statement, publisher.privateKey, publisherPem)),
        );
      }
      const res = await publishForm(server, 'main', 'musl', parts);
      assert.equal(res.status, 201, JSON.stringify(res.json));
      files.push(`att${i}-1.0.0-r0.apk`);
    }
    // What clients hold: the keys as the original server served them.
    const listing = (await (await fetch(`${server.url}/keys`)).json()) as {
      keys: string[];
      attestation: string;
    };
    const attestationPem = join(work, listing.attestation);
    writeFileSync(
      attestationPem,
      Buffer.from(await (await fetch(`${server.url}/keys/${listing.attestation}`)).arrayBuffer()),
    );
    const indexKey = join(work, listing.keys[0]!);
    writeFileSync(
      indexKey,
      Buffer.from(await (await fetch(`${server.url}/keys/${listing.keys[0]}`)).arrayBuffer()),
    );

    // An upload in progress on the running server: the backup beside it must leave it alone.
    const upload = join(server.dataDir, 'tmp', 'upload-in-progress');
    writeFileSync(upload, 'half a package');
    assertExit(await reef(['backup', dest, '--data', server.dataDir]), 0);
    assert.ok(existsSync(upload), "the server's temp files are not the backup's to remove");
    for (const file of readdirSync(join(dest, 'keys'), { recursive: true, withFileTypes: true })) {
      if (!file.isFile()) continue;
      const mode = statSync(join(file.parentPath, file.name)).mode & 0o777;
      const isPrivate =
        file.name.endsWith('.rsa') || (file.name.endsWith('.pem') && !file.name.endsWith('.pub.pem'));
      if (isPrivate) assert.equal(mode, 0o600, `${file.name} stays private`);
    }
    await server.close();

    const restored = await spawnServer(dest);
    try {
      for (const file of files) {
        const url = `${restored.url}/main/musl/x86_64/${file}`;
        // As a client that trusts the keys it was given before the restore…
        const pinned = await reef(['verify', url, '--key', indexKey, '--attestation-key', attestationPem]);
        assertExit(pinned, 0);
        assert.match(pinned.stdout, /^ok +attestation /m);
        // …and as one that takes the keys the restored server serves.
        assertExit(await reef(['verify', url]), 0);
      }
    } finally {
      await restored.stop();
    }
    const fsck = await reef(['fsck', '--data', dest, '--json']);
    assertExit(fsck, 0);
    assert.deepEqual(JSON.parse(fsck.stdout).problems, []);
  } finally {
    await server.close().catch(() => {});
    removeDir(server.dataDir);
    removeDir(work);
  }
});

test('a start refuses to make a new attestation key once attestations exist', {
  timeout: 120_000,
}, async () => {
  const server = await startServer();
  const dataDir = server.dataDir;
  try {
    assert.equal((await publish(server, 'main', 'musl', await buildApk({ name: 'lost' }))).status, 201);
    await server.close();
    removeDir(join(dataDir, 'keys', 'attestation'));
    const refused = await spawnServer(dataDir).then(
      async (s) => {
        await s.stop();
        return undefined;
      },
      (err: Error) => err.message,
    );
    assert.ok(refused, 'the server did not start');
    assert.match(refused, /KEY_ATTESTATION_MISSING/);
    const attestationDir = join(dataDir, 'keys', 'attestation');
    assert.deepEqual(
      (existsSync(attestationDir) ? readdirSync(attestationDir) : []).filter((f) => f.endsWith('.pem')),
      [],
      'no key was generated',
    );
    // A fresh folder still gets its key at first start.
    const fresh = await startServer();
    try {
      assert.match(fresh.services.attestationKey.keyName, /^reef-attestation-[0-9a-f]+\.pub\.pem$/);
    } finally {
      await fresh.close();
      removeDir(fresh.dataDir);
    }
  } finally {
    removeDir(dataDir);
  }
});
