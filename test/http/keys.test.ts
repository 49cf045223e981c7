import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import { opensslVerifyIndex, publish, removeDir, startServer, TEST_TOKEN } from '../helpers/server.ts';

const admin = { authorization: `Bearer ${TEST_TOKEN}` };

test('key rotation: a new key co-signs every index, then the old one is retired', async () => {
  const server = await startServer({ REEF_INDEX_SHA1: 'false' });
  const work = mkdtempSync(join(tmpdir(), 'reef-rotate-'));
  const indexFile = join(work, 'APKINDEX.tar.gz');
  const fetchIndex = async () => {
    const res = await fetch(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`);
    assert.equal(res.status, 200);
    writeFileSync(indexFile, Buffer.from(await res.arrayBuffer()));
  };
  try {
    assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'rot' }))).status, 201);
    const oldKey = server.services.signingKeys[0]!;
    const pems: Record<string, string> = { [oldKey.keyName]: oldKey.publicPem };

    const generated = await fetch(`${server.url}/api/v1/keys`, { method: 'POST', headers: admin });
    assert.equal(generated.status, 201);
    const newKey = (await generated.json()) as { name: string; publicKey: string; resigned: number };
    assert.equal(newKey.resigned, 1);
    pems[newKey.name] = await (await fetch(`${server.url}/keys/${newKey.name}`)).text();
    assert.equal(pems[newKey.name], newKey.publicKey);

    await fetchIndex();
    assert.deepEqual(
      opensslVerifyIndex(indexFile, pems, work).sort(),
      [`.SIGN.RSA256.${newKey.name}`, `.SIGN.RSA256.${oldKey.keyName}`].sort(),
    );

    const retired = await fetch(`${server.url}/api/v1/keys/${oldKey.keyName}/retire`, {
      method: 'POST',
      headers: admin,
    });
    assert.equal(retired.status, 200);
    await fetchIndex();
    assert.deepEqual(opensslVerifyIndex(indexFile, pems, work), [`.SIGN.RSA256.${newKey.name}`]);
    assert.equal((await fetch(`${server.url}/keys/${oldKey.keyName}`)).status, 404);
    const last = await fetch(`${server.url}/api/v1/keys/${newKey.name}/retire`, {
      method: 'POST',
      headers: admin,
    });
    assert.equal(last.status, 400, 'the last key cannot be retired');
    assert.equal(((await last.json()) as { code: string }).code, 'KEY_INVALID');
  } finally {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  }
});
