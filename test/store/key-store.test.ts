import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isAppError } from '../../src/errors.ts';
import { loadOrCreateAttestationKey, loadOrCreateSigningKeys } from '../../src/repo/keys.ts';
import type { Database } from '../../src/store/database.ts';
import { KeyEncryption } from '../../src/store/key-encryption.ts';
import { DatabaseKeyStore, FileKeyStore, type KeyStore, openKeyStore } from '../../src/store/key-store.ts';
import { PostgresDatabase } from '../../src/store/postgres-database.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';

const KEK_HEX = randomBytes(32).toString('hex');

function pemPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

describe('key encryption', () => {
  const kek = KeyEncryption.parse(KEK_HEX, 'test');

  test('round trip; a wrong key, another row or a changed byte does not decrypt', () => {
    const secret = Buffer.from('-----BEGIN PRIVATE KEY-----\nxyz\n');
    const sealed = kek.encrypt(secret, 'index:a.rsa.pub');
    assert.equal(sealed.includes(secret), false);
    assert.deepEqual(kek.decrypt(sealed, 'index:a.rsa.pub'), secret);
    // The same plaintext twice: different nonces, different ciphertexts.
    assert.notDeepEqual(kek.encrypt(secret, 'index:a.rsa.pub'), sealed);
    const other = KeyEncryption.parse(randomBytes(32).toString('base64'), 'test');
    assert.notEqual(other.id, kek.id);
    for (const [key, context, bytes] of [
      [other, 'index:a.rsa.pub', sealed],
      [kek, 'index:b.rsa.pub', sealed],
      [kek, 'index:a.rsa.pub', Buffer.concat([sealed.subarray(0, -1), Buffer.from([sealed.at(-1)! ^ 1])])],
    ] as const) {
      assert.throws(
        () => key.decrypt(bytes, context),
        (err) => isAppError(err, 'KEY_ENCRYPTION_KEY_WRONG'),
      );
    }
  });

  test('the key is 32 bytes as hex or base64, from one setting', async () => {
    assert.equal(KeyEncryption.parse(Buffer.from(KEK_HEX, 'hex').toString('base64'), 'x').id, kek.id);
    for (const bad of ['', 'abc', randomBytes(16).toString('hex'), `${KEK_HEX}00`, 'not base64 !']) {
      assert.throws(
        () => KeyEncryption.parse(bad, 'REEF_KEY_ENCRYPTION_KEY'),
        (err) => isAppError(err, 'CONFIG_INVALID') && /REEF_KEY_ENCRYPTION_KEY/.test((err as Error).message),
      );
    }
    const dir = await mkdtemp(join(tmpdir(), 'reef-kek-'));
    try {
      const file = join(dir, 'kek');
      await writeFile(file, `${KEK_HEX}\n`);
      assert.equal(KeyEncryption.fromSettings({ keyEncryptionKeyFile: file })?.id, kek.id);
      assert.throws(
        () => KeyEncryption.fromSettings({ keyEncryptionKeyFile: file, keyEncryptionKey: KEK_HEX }),
        /not both/,
      );
      assert.throws(
        () => KeyEncryption.fromSettings({ keyEncryptionKeyFile: join(dir, 'missing') }),
        (err) => isAppError(err, 'CONFIG_INVALID'),
      );
      assert.equal(KeyEncryption.fromSettings({}), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

interface Engine {
  name: string;
  skip: string | false;
  open(): Promise<{ store: KeyStore; database?: Database; cleanup(): Promise<void> }>;
}

async function sqliteDatabase(): Promise<{ database: Database; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'reef-keys-'));
  const database = new SqliteDatabase(join(dir, 'reef.db'));
  await database.migrate();
  return {
    database,
    async cleanup() {
      await database.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const engines: Engine[] = [
  {
    name: 'files in the data folder',
    skip: false,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'reef-keys-'));
      return { store: new FileKeyStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'the database (SQLite)',
    skip: false,
    async open() {
      const { database, cleanup } = await sqliteDatabase();
      return {
        store: new DatabaseKeyStore(database, KeyEncryption.parse(KEK_HEX, 'test')),
        database,
        cleanup,
      };
    },
  },
  {
    name: 'the database (PostgreSQL)',
    skip: needsPg.skip,
    async open() {
      const url = await freshDatabase('reef-keys');
      const database = new PostgresDatabase(url);
      await database.migrate();
      return {
        store: new DatabaseKeyStore(database, KeyEncryption.parse(KEK_HEX, 'test')),
        database,
        async cleanup() {
          await database.close();
          await dropDatabase(url);
        },
      };
    },
  },
];

for (const engine of engines) {
  describe(`key store: ${engine.name}`, { skip: engine.skip }, () => {
    test('add, retire, restore; names are unique', async () => {
      const { store, database, cleanup } = await engine.open();
      try {
        const a = pemPair();
        const b = pemPair();
        await store.add('index', 'a.rsa.pub', a.privatePem, a.publicPem);
        await store.add('index', 'b.rsa.pub', b.privatePem, b.publicPem);
        await assert.rejects(store.add('index', 'a.rsa.pub', b.privatePem, b.publicPem));
        const active = await store.active('index');
        assert.deepEqual(
          active.map((k) => k.name),
          ['a.rsa.pub', 'b.rsa.pub'],
        );
        assert.equal(active[0]!.privatePem.toString(), a.privatePem);
        assert.deepEqual(await store.active('attestation'), []);
        await store.retire('index', 'a.rsa.pub');
        assert.deepEqual(
          (await store.active('index')).map((k) => k.name),
          ['b.rsa.pub'],
        );
        assert.deepEqual(await store.retired('index'), ['a.rsa.pub']);
        assert.equal((await store.restore('index', 'a.rsa.pub')).toString(), a.privatePem);
        assert.deepEqual(await store.retired('index'), []);
        await assert.rejects(store.restore('index', 'a.rsa.pub'), { code: 'KEY_NOT_FOUND' });
        if (database) {
          // At rest, no private key in the clear.
          const rows = await database.all<{ private_key: Uint8Array }>('SELECT private_key FROM keys');
          assert.equal(rows.length, 2);
          for (const r of rows) assert.equal(Buffer.from(r.private_key).includes('PRIVATE KEY'), false);
        }
      } finally {
        await cleanup();
      }
    });

    test('replicas starting together end with one signing key and one attestation key', async () => {
      const { store, cleanup } = await engine.open();
      try {
        const starts = await Promise.all(
          Array.from({ length: 3 }, () => loadOrCreateSigningKeys(store, 2048)),
        );
        const names = new Set(starts.flatMap((s) => s.keys.map((k) => k.keyName)));
        // Files cannot tell one start from another at once: only the database store promises one.
        if (store instanceof DatabaseKeyStore) assert.equal(names.size, 1, [...names].join());
        const attestation = await Promise.all(
          Array.from({ length: 3 }, () => loadOrCreateAttestationKey(store)),
        );
        if (store instanceof DatabaseKeyStore)
          assert.equal(new Set(attestation.map((a) => a.keyName)).size, 1);
        const again = await loadOrCreateSigningKeys(store, 2048);
        assert.equal(again.created, false);
        assert.ok(names.has(again.keys[0]!.keyName));
        // What is stored parses as the key it was.
        assert.equal(
          createPrivateKey((await store.active('attestation'))[0]!.privatePem).asymmetricKeyType,
          'ec',
        );
      } finally {
        await cleanup();
      }
    });
  });
}

test('a store of another key encryption key refuses to start, naming the setting', async () => {
  const { database, cleanup } = await sqliteDatabase();
  try {
    const pair = pemPair();
    await new DatabaseKeyStore(database, KeyEncryption.parse(KEK_HEX, 't')).add(
      'attestation',
      'x.pub.pem',
      pair.privatePem,
      pair.publicPem,
    );
    const wrong = new DatabaseKeyStore(database, KeyEncryption.parse(randomBytes(32).toString('hex'), 't'));
    await assert.rejects(loadOrCreateAttestationKey(wrong), (err) => {
      assert.ok(isAppError(err, 'KEY_ENCRYPTION_KEY_WRONG'));
      assert.match((err as Error).message, /REEF_KEY_ENCRYPTION_KEY/);
      return true;
    });
  } finally {
    await cleanup();
  }
});

test('a shared database needs the key encryption key; the data folder keeps files', async () => {
  const { database, cleanup } = await sqliteDatabase();
  try {
    assert.throws(
      () => openKeyStore({ dataDir: '/nonexistent', databaseUrl: 'postgres://x/y' }, database),
      (err) =>
        isAppError(err, 'CONFIG_INVALID') && /REEF_KEY_ENCRYPTION_KEY_FILE/.test((err as Error).message),
    );
    const store = openKeyStore(
      { dataDir: '/nonexistent', databaseUrl: 'postgres://x/y', keyEncryptionKey: KEK_HEX },
      database,
    );
    assert.ok(store instanceof DatabaseKeyStore);
    assert.ok(openKeyStore({ dataDir: '/nonexistent' }, database) instanceof FileKeyStore);
  } finally {
    await cleanup();
  }
});

test('file keys keep their modes: private 0600', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reef-keys-'));
  try {
    const store = new FileKeyStore(dir);
    const pair = pemPair();
    await store.add('attestation', 'k.pub.pem', pair.privatePem, pair.publicPem);
    assert.equal((await stat(join(dir, 'keys', 'attestation', 'k.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'keys', 'attestation', 'k.pub.pem'))).mode & 0o777, 0o644);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
