import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import type { AppError } from '../../src/errors.ts';
import { generateSigningKey, initSigningKey, restoreSigningKey } from '../../src/repo/keys.ts';
import { FileKeyStore } from '../../src/store/key-store.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN } from '../helpers/server.ts';

async function fetchIndex(url: string) {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

describe('start-up recovery and keys', () => {
  test('a missing index blob is rebuilt at start, byte-identical', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-restart-'));
    try {
      let server = await startServer({}, dataDir);
      assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'one' }))).status, 201);
      const before = await fetchIndex(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`);
      const { sha256 } = (await server.services.store.getIndex({ repo: 'r', libc: 'musl', arch: 'x86_64' }))!;
      await server.services.blobs.delete(sha256!);
      await server.close();
      server = await startServer({}, dataDir);
      const after = await fetchIndex(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`);
      assert.ok(after.equals(before), 'same database state gives the same bytes');
      assert.ok(await server.services.blobs.has(sha256!));
      await server.close();
    } finally {
      removeDir(dataDir);
    }
  });

  test('a data folder of reef before indexes were blobs: each index is stored as a blob, the old files go', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-old-layout-'));
    try {
      let server = await startServer({}, dataDir);
      assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'old' }))).status, 201);
      const before = await fetchIndex(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`);
      const { sha256 } = (await server.services.store.getIndex({ repo: 'r', libc: 'musl', arch: 'x86_64' }))!;
      // As the older reef left it: the index a file of indexes/, no blob, no list of replaced blobs.
      await server.services.blobs.delete(sha256!);
      await server.services.database.run('DELETE FROM superseded_index_blobs');
      await server.close();
      const dir = join(dataDir, 'indexes', 'r', 'musl', 'x86_64');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${sha256}.tar.gz`), before);
      server = await startServer({}, dataDir);
      const after = await fetchIndex(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`);
      assert.ok(after.equals(before), 'same database state gives the same bytes');
      assert.equal(existsSync(join(dataDir, 'indexes')), false);
      await server.close();
    } finally {
      removeDir(dataDir);
    }
  });

  test('a key added to the data folder co-signs every index after restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-keys-'));
    try {
      let server = await startServer({ REEF_INDEX_SHA1: 'false' }, dataDir);
      assert.equal(
        (await publish(server, 'r', 'glibc', await buildApk({ name: 'two', depends: [] }))).status,
        201,
      );
      const oldKey = server.services.signingKeys[0]!;
      await server.close();
      const newKey = await generateSigningKey(new FileKeyStore(dataDir), 2048, 'next');
      server = await startServer({ REEF_INDEX_SHA1: 'false' }, dataDir);
      const index = await readIndex(
        chunked(await fetchIndex(`${server.url}/r/glibc/x86_64/APKINDEX.tar.gz`)),
        {
          keys: [
            loadPublicKey(oldKey.keyName, oldKey.publicPem),
            loadPublicKey(newKey.keyName, newKey.publicPem),
          ],
        },
      );
      assert.deepEqual(index.verification?.checks.map((c) => [c.keyName, c.verdict]).sort(), [
        [newKey.keyName, 'verified'],
        [oldKey.keyName, 'verified'],
      ]);
      const keys = (await (await fetch(`${server.url}/keys`)).json()) as { keys: string[] };
      assert.deepEqual(keys.keys.sort(), [newKey.keyName, oldKey.keyName].sort());
      await server.close();
    } finally {
      removeDir(dataDir);
    }
  });

  test('no active key after indexes were signed: the server refuses to start until a key is restored or chosen', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-nokey-'));
    const verifiedBy = async (url: string, pems: Array<{ keyName: string; publicPem: string }>) => {
      const index = await readIndex(chunked(await fetchIndex(`${url}/r/musl/x86_64/APKINDEX.tar.gz`)), {
        keys: pems.map((k) => loadPublicKey(k.keyName, k.publicPem)),
        requireValidSignature: true,
      });
      return index.verification?.checks.filter((c) => c.verdict === 'verified').map((c) => c.keyName);
    };
    try {
      let server = await startServer({ REEF_INDEX_SHA1: 'false' }, dataDir);
      assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'kept' }))).status, 201);
      const oldKey = server.services.signingKeys[0]!;
      await server.close();
      const keysDir = join(dataDir, 'keys');
      const base = oldKey.keyName.replace(/\.pub$/, '');
      // What two retirements at once used to leave: every key in retired/.
      mkdirSync(join(keysDir, 'retired'), { recursive: true });
      for (const f of [base, `${base}.pub`]) renameSync(join(keysDir, f), join(keysDir, 'retired', f));
      const activeKeys = () => readdirSync(keysDir).filter((f) => f.endsWith('.rsa'));

      await assert.rejects(startServer({}, dataDir), (err: AppError) => {
        assert.equal(err.code, 'KEY_NONE_ACTIVE');
        assert.deepEqual(err.details, { retired: [oldKey.keyName], signedBefore: [oldKey.keyName] });
        assert.ok(err.message.includes(`reef key restore ${oldKey.keyName}`), err.message);
        return true;
      });
      assert.deepEqual(activeKeys(), [], 'no key no client trusts was generated');

      await restoreSigningKey(new FileKeyStore(dataDir), oldKey.keyName);
      server = await startServer({ REEF_INDEX_SHA1: 'false' }, dataDir);
      assert.deepEqual(await verifiedBy(server.url, [oldKey]), [oldKey.keyName]);
      await server.close();

      // No index key at all (lost): the database still knows the indexes were signed.
      for (const f of readdirSync(keysDir).filter((f) => f.includes('.rsa'))) rmSync(join(keysDir, f));
      rmSync(join(keysDir, 'retired'), { recursive: true });
      await assert.rejects(startServer({}, dataDir), (err: AppError) => {
        assert.equal(err.code, 'KEY_NONE_ACTIVE');
        assert.deepEqual(err.details, { retired: [], signedBefore: [oldKey.keyName] });
        return true;
      });
      assert.deepEqual(activeKeys(), []);
      const chosen = await initSigningKey(new FileKeyStore(dataDir), 2048);
      await assert.rejects(initSigningKey(new FileKeyStore(dataDir), 2048), { code: 'KEY_INVALID' });
      server = await startServer({ REEF_INDEX_SHA1: 'false' }, dataDir);
      assert.deepEqual(await verifiedBy(server.url, [oldKey, chosen]), [chosen.keyName]);
      await server.close();
    } finally {
      removeDir(dataDir);
    }
  });

  test('a package corrupted on disk is refused, never served', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-corrupt-'));
    try {
      let server = await startServer({}, dataDir);
      const published = await publish(server, 'r', 'musl', await buildApk({ name: 'rot' }));
      assert.equal(published.status, 201);
      await server.close();
      const sha = String(published.json.sha256);
      const blob = join(dataDir, 'blobs', 'sha256', sha.slice(0, 2), sha);
      const bytes = readFileSync(blob);
      bytes[bytes.length - 10]! ^= 0xff;
      writeFileSync(blob, bytes);
      server = await startServer({}, dataDir);
      const res = await fetch(`${server.url}/r/musl/x86_64/rot-1.0.0-r0.apk`);
      assert.equal(res.status, 500);
      assert.equal(((await res.json()) as { code: string }).code, 'INTERNAL');
      assert.ok(server.logs.some((l) => l.includes('STORAGE_CORRUPT')));
      await server.close();
    } finally {
      removeDir(dataDir);
    }
  });

  test('health endpoints answer, and no token reaches the logs', async () => {
    const server = await startServer();
    try {
      assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { status: 'ok' });
      assert.deepEqual(await (await fetch(`${server.url}/readyz`)).json(), { status: 'ready' });
      // A database that does not answer makes the server not ready (and only that).
      const ping = server.services.pingDatabase;
      server.services.pingDatabase = async () => {
        throw new Error('the database cannot be reached');
      };
      const unavailable = await fetch(`${server.url}/readyz`);
      assert.equal(unavailable.status, 503);
      assert.deepEqual(await unavailable.json(), { status: 'database unavailable' });
      server.services.pingDatabase = ping;
      assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
      await publish(server, 'r', 'musl', await buildApk({ name: 'logged' }));
      await fetch(`${server.url}/api/v1/repos/r/musl/packages`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`u:${TEST_TOKEN}`).toString('base64')}` },
        body: 'x',
      });
      assert.ok(server.logs.some((l) => l.includes('package published')));
      assert.ok(!server.logs.some((l) => l.includes(TEST_TOKEN)), 'the token never appears in the logs');
      assert.ok(!server.logs.some((l) => l.includes(Buffer.from(`u:${TEST_TOKEN}`).toString('base64'))));
    } finally {
      await server.close();
      removeDir(server.dataDir);
    }
  });

  test('the admin token is generated once, stored hashed, and works', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-token-'));
    try {
      const { loadConfig } = await import('../../src/config.ts');
      const { createServices } = await import('../../src/repo/services.ts');
      const { createLogger } = await import('../../src/log.ts');
      const config = loadConfig({ REEF_DATA_DIR: dataDir, REEF_KEY_BITS: '2048', REEF_LOG_LEVEL: 'silent' });
      const first = await createServices(config, createLogger('silent'));
      const token = first.generatedAdminToken ?? '';
      assert.ok(token.startsWith('reef_'));
      const stored = await first.database.all<{ hash: string }>('SELECT hash FROM tokens');
      assert.equal(stored.length, 1);
      assert.notEqual(stored[0]!.hash, token);
      assert.deepEqual((await first.tokens.verify(token))?.scopes, ['*:admin']);
      assert.equal(await first.tokens.verify(`${token}x`), undefined);
      await first.close();
      const second = await createServices(config, createLogger('silent'));
      assert.equal(second.generatedAdminToken, undefined, 'shown only at the first start');
      assert.ok(await second.tokens.verify(token));
      await second.close();
    } finally {
      removeDir(dataDir);
    }
  });
});
