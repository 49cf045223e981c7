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

test('two keys retired at once: one answers 200, the other KEY_INVALID; the index stays signed', async () => {
  const server = await startServer({ REEF_INDEX_SHA1: 'false' });
  const work = mkdtempSync(join(tmpdir(), 'reef-retire-race-'));
  try {
    assert.equal((await publish(server, 'r', 'musl', await buildApk({ name: 'race' }))).status, 201);
    const generated = await fetch(`${server.url}/api/v1/keys`, { method: 'POST', headers: admin });
    assert.equal(generated.status, 201);
    const names = server.services.signingKeys.map((k) => k.keyName);
    const pems = Object.fromEntries(server.services.signingKeys.map((k) => [k.keyName, k.publicPem]));
    assert.equal(names.length, 2);

    const answers = await Promise.all(
      names.map(async (name) => {
        const res = await fetch(`${server.url}/api/v1/keys/${name}/retire`, {
          method: 'POST',
          headers: admin,
        });
        return { name, status: res.status, code: ((await res.json()) as { code?: string }).code };
      }),
    );
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400], JSON.stringify(answers));
    assert.equal(answers.find((a) => a.status === 400)!.code, 'KEY_INVALID');
    const kept = answers.find((a) => a.status === 400)!.name;

    const listed = (await (await fetch(`${server.url}/api/v1/keys`, { headers: admin })).json()) as {
      keys: Array<{ name: string }>;
    };
    assert.deepEqual(
      listed.keys.map((k) => k.name),
      [kept],
    );
    const res = await fetch(`${server.url}/r/musl/x86_64/APKINDEX.tar.gz`);
    assert.equal(res.status, 200);
    const indexFile = join(work, 'APKINDEX.tar.gz');
    writeFileSync(indexFile, Buffer.from(await res.arrayBuffer()));
    assert.deepEqual(opensslVerifyIndex(indexFile, pems, work), [`.SIGN.RSA256.${kept}`]);
  } finally {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  }
});
