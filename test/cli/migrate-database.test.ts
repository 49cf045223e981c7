import assert from 'node:assert/strict';
import { createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { runVerify } from '../../src/cli/verify.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import { freshBucket, needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import {
  createToken,
  opensslVerifyIndex,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { spdxWithOpenssl } from '../sbom/sbom-fixtures.ts';

/**
 * `reef migrate-storage --to-database`: an embedded installation (SQLite,
 * blobs and keys in the data folder) moved whole to PostgreSQL and S3, then
 * back into a new data folder. Each step is checked against what the
 * installation served before (key bytes, package bytes, signed indexes, a
 * token) and, as an oracle independent of the copy, by reading every table
 * of both databases with their own drivers and comparing them row for row,
 * and the keys by decrypting the database's rows here.
 */

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PACKAGES = ['alpha-1.0-r0', 'beta-2.0-r0', 'gamma-3.0-r0'];
const skip = needsPg.skip || needsS3.skip;

type Row = Record<string, unknown>;
type Tables = Map<string, string[]>;

/** A value as text both drivers agree on: integers as digits (pg gives BIGINT as text), bytes as hex. */
function normal(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array)
    return `bytes:${Buffer.from(value).toString('hex')}`;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return value;
}

/** Every row of every table, each a sorted JSON text: column order does not matter, values do. */
function rowsOf(rows: Row[]): string[] {
  return rows
    .map((r) =>
      JSON.stringify(
        Object.keys(r)
          .sort()
          .map((k) => [k, normal(r[k])]),
      ),
    )
    .sort();
}

/** The PostgreSQL tables that hold data, and their rows (schema_migrations and keys apart). */
async function readPostgres(url: string): Promise<{ tables: Tables; keys: Row[] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const names = (
      await client.query<{ name: string }>(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
      )
    ).rows.map((r) => r.name);
    const tables: Tables = new Map();
    for (const name of names) {
      if (name === 'schema_migrations' || name === 'keys') continue;
      tables.set(name, rowsOf((await client.query(`SELECT * FROM "${name}"`)).rows));
    }
    const keys = (await client.query('SELECT * FROM keys ORDER BY kind, name')).rows;
    return { tables, keys };
  } finally {
    await client.end();
  }
}

/** The same for a data folder's reef.db: every table PostgreSQL has, and the full-text tables it lacks. */
function readSqlite(dataDir: string, names: Iterable<string>): { tables: Tables; others: string[] } {
  const db = new Sqlite(join(dataDir, 'reef.db'), { readonly: true });
  try {
    const tables: Tables = new Map();
    for (const name of names) tables.set(name, rowsOf(db.prepare(`SELECT * FROM "${name}"`).all() as Row[]));
    const all = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[]).map(
      (r) => r.name as string,
    );
    const keysRows = (db.prepare('SELECT count(*) AS n FROM keys').get() as { n: number }).n;
    assert.equal(keysRows, 0, 'the embedded keys table stays empty: keys are files');
    return { tables, others: all.filter((n) => !tables.has(n) && n !== 'schema_migrations' && n !== 'keys') };
  } finally {
    db.close();
  }
}

/**
 * Both databases hold the same rows in every table. Each side records its own
 * `storage.migrate` audit line after the copy: those are compared by count.
 */
async function assertSameRows(pgUrl: string, dataDir: string, after = 'storage.migrate'): Promise<void> {
  const { tables: fromPg } = await readPostgres(pgUrl);
  const { tables: fromSqlite, others } = readSqlite(dataDir, fromPg.keys());
  // What SQLite has beyond PostgreSQL's tables is its full-text search, derived from packages.
  for (const name of others) assert.match(name, /^package_search|^sqlite_/, `table ${name} only in SQLite`);
  assert.ok(fromPg.has('packages') && fromPg.has('audit_log') && fromPg.has('index_changes'));
  for (const [name, rows] of fromPg) {
    const theirs = fromSqlite.get(name)!;
    if (name === 'audit_log') {
      // Recorded after the copy, on one side or both.
      const copied = (list: string[]) => list.filter((r) => !r.includes(`"${after}"`));
      assert.deepEqual(copied(theirs), copied(rows), 'audit_log rows');
      assert.ok(copied(rows).length < rows.length, `the ${after} is in the audit log`);
    } else {
      assert.deepEqual(theirs, rows, `${name}: the same rows`);
    }
  }
}

/** AES-256-GCM as reef's key encryption writes it (`v1` | nonce | tag | ciphertext), opened here. */
function decrypt(kek: string, sealed: Buffer, context: string): Buffer {
  assert.equal(sealed.subarray(0, 2).toString(), 'v1');
  const decipher = createDecipheriv('aes-256-gcm', Buffer.from(kek, 'hex'), sealed.subarray(2, 14));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(sealed.subarray(14, 30));
  return Buffer.concat([decipher.update(sealed.subarray(30)), decipher.final()]);
}

/** The key files of a data folder: relative path → bytes, private halves 0600. */
function keyFiles(dataDir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (dir: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path, `${rel}${name}/`);
      else {
        if (name.endsWith('.rsa') || (name.endsWith('.pem') && !name.endsWith('.pub.pem'))) {
          assert.equal(statSync(path).mode & 0o777, 0o600, `${rel}${name} is 0600`);
        }
        out.set(`${rel}${name}`, readFileSync(path));
      }
    }
  };
  walk(join(dataDir, 'keys'), '');
  return out;
}

/** What clients see: public keys, packages, signed indexes; and the old token still publishing. */
interface Served {
  keys: Record<string, string>;
  packages: Record<string, string>;
}

async function served(server: TestServer, work: string): Promise<Served> {
  const names = ((await (await fetch(`${server.url}/keys`)).json()) as { keys: string[] }).keys;
  const keys: Record<string, string> = {};
  for (const k of names.sort()) keys[k] = await (await fetch(`${server.url}/keys/${k}`)).text();
  const packages: Record<string, string> = {};
  const sink = { write: () => true };
  for (const name of PACKAGES) {
    const url = `${server.url}/main/musl/x86_64/${name}.apk`;
    const res = await fetch(url);
    if (res.status === 404) continue;
    assert.equal(res.status, 200, name);
    packages[name] = sha256(new Uint8Array(await res.arrayBuffer()));
    assert.equal((await fetch(`${url}.spdx.json`)).status, 200, `${name}: its SBOM`);
    assert.equal((await fetch(`${url}.provenance.json`)).status, 200, `${name}: reef's attestation`);
    assert.equal(await runVerify([url], { env: {}, stdout: sink, stderr: sink }), 0, `${name}: reef verify`);
  }
  const index = await fetch(`${server.url}/main/musl/x86_64/APKINDEX.tar.gz`);
  assert.equal(index.status, 200);
  const file = join(work, `APKINDEX-${randomBytes(4).toString('hex')}.tar.gz`);
  writeFileSync(file, Buffer.from(await index.arrayBuffer()));
  assert.ok(
    opensslVerifyIndex(file, keys, work).length > 0,
    'the index verifies with openssl and a served key',
  );
  return { keys, packages };
}

async function apkOf(name: string): Promise<Buffer> {
  const [pkg, version, release] = name.split('-') as [string, string, string];
  return buildApk({
    name: pkg,
    version: `${version}-${release}`,
    depends: [],
    sbom: spdxWithOpenssl(pkg, `${version}-${release}`, '3.0.8-r0'),
  });
}

describe('reef migrate-storage --to-database', { skip }, () => {
  const kek = randomBytes(32).toString('hex');
  const work = mkdtempSync(join(tmpdir(), 'reef-migrate-db-'));
  const dirs: string[] = [work];
  const databases: string[] = [];
  let embedded: string;
  let original: Served;
  let publisher: string;
  let pgUrl: string;
  let pgEnv: Record<string, string>;
  let bucketEnv: Record<string, string>;
  /** The data folder of the server on PostgreSQL (its index files). */
  let pgDataDir: string;

  before(async () => {
    const server = await startServer();
    embedded = server.dataDir;
    dirs.push(embedded);
    try {
      publisher = await createToken(server, 'ci', ['main:publish']);
      for (const name of PACKAGES.slice(0, 2)) {
        assert.equal((await publish(server, 'main', 'musl', await apkOf(name), publisher)).status, 201);
      }
      const advisory = await fetch(`${server.url}/api/v1/repos/main/advisories/alpha`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/yaml' },
        body:
          'schema-version: "2"\npackage:\n  name: alpha\nadvisories:\n  - id: CGA-1\n    aliases:\n      - CVE-2024-0001\n' +
          '    events:\n      - timestamp: 2024-05-01T10:00:00Z\n        type: fixed\n        data:\n          fixed-version: 1.0-r0\n',
      });
      assert.equal(advisory.status < 300, true, await advisory.text());
      original = await served(server, work);
      assert.equal(Object.keys(original.packages).length, 2);
    } finally {
      await server.close();
    }
    pgUrl = await freshDatabase('reef-migrate-db');
    databases.push(pgUrl);
    bucketEnv = s3ServerEnv(s3Engine!, freshBucket('reef-migrate-db'));
    pgEnv = { ...bucketEnv, REEF_DATABASE_URL: pgUrl, REEF_KEY_ENCRYPTION_KEY: kek };
  });
  after(async () => {
    for (const url of databases) await dropDatabase(url);
    for (const dir of dirs) removeDir(dir);
  });

  test('bad usage and refusals', async () => {
    const { REEF_BLOB_URL: _, ...aws } = bucketEnv;
    assertExit(await reef(['migrate-storage', '--data', embedded, '--to-database', 'mysql://x']), 2);
    assertExit(await reef(['migrate-storage', '--data', embedded, '--to-database', 'sqlite']), 2);
    // Keys go into the database encrypted: not without the key that encrypts them.
    const noKek = await reef(['migrate-storage', '--data', embedded, '--to-database', pgUrl], aws);
    assertExit(noKek, 2);
    assert.match(noKek.stderr, /REEF_KEY_ENCRYPTION_KEY/);
  });

  test('to PostgreSQL and S3: the same rows, keys, bytes and signatures', async () => {
    const { REEF_BLOB_URL: bucketUrl, ...aws } = bucketEnv;
    const run = await reef(
      ['migrate-storage', '--data', embedded, '--to', bucketUrl!, '--to-database', pgUrl],
      { ...aws, REEF_KEY_ENCRYPTION_KEY: kek },
    );
    assertExit(run, 0);
    assert.match(run.stdout, /^copied 6 blobs/m);
    assert.match(run.stdout, /copied \d+ rows of \d+ tables and 2 keys/);
    await assertSameRows(pgUrl, embedded);

    // The keys: each file's bytes, in a row, the private half decrypting to the file's.
    const { keys } = await readPostgres(pgUrl);
    const files = keyFiles(embedded);
    assert.deepEqual(
      keys.map((k) => `${k.kind} ${k.name} ${k.state}`).sort(),
      [
        ...[...files.keys()]
          .filter((f) => f.endsWith('.rsa.pub') && !f.includes('/'))
          .map((f) => `index ${f} active`),
        ...[...files.keys()]
          .filter((f) => f.startsWith('attestation/') && f.endsWith('.pub.pem'))
          .map((f) => `attestation ${f.slice('attestation/'.length)} active`),
      ].sort(),
    );
    for (const k of keys) {
      const dir = k.kind === 'index' ? '' : 'attestation/';
      const privateName =
        k.kind === 'index'
          ? String(k.name).replace(/\.pub$/, '')
          : String(k.name).replace(/\.pub\.pem$/, '.pem');
      assert.equal(k.public_pem, files.get(`${dir}${k.name}`)!.toString(), `${k.name}: public half`);
      assert.deepEqual(
        decrypt(kek, k.private_key as Buffer, `${k.kind}:${k.name}`),
        files.get(`${dir}${privateName}`),
        `${k.name}: private half`,
      );
    }

    // A second run finds the target filled and leaves it alone.
    const again = await reef(['migrate-storage', '--data', embedded, '--to-database', pgUrl], {
      REEF_KEY_ENCRYPTION_KEY: kek,
    });
    assertExit(again, 1);
    assert.match(again.stderr, /STORAGE_TARGET_NOT_EMPTY|holds data already/);

    const dataDir = mkdtempSync(join(tmpdir(), 'reef-migrated-pg-'));
    dirs.push(dataDir);
    pgDataDir = dataDir;
    const server = await startServer(pgEnv, dataDir);
    try {
      const now = await served(server, work);
      assert.deepEqual(now, original);
      // The old token authenticates, and new rows get new ids: the sequences moved past the copied ones.
      assert.equal((await publish(server, 'main', 'musl', await apkOf(PACKAGES[2]!), publisher)).status, 201);
      const audit = await fetch(`${server.url}/api/v1/audit?limit=200`, {
        headers: { authorization: `Bearer ${TEST_TOKEN}` },
      });
      assert.equal(audit.status, 200);
    } finally {
      await server.close();
    }
  });

  test('reef backup on PostgreSQL: a data folder that serves, and moves back', async () => {
    const dest = join(work, 'backup');
    const run = await reef(['backup', dest, '--data', mkdtempSync(join(tmpdir(), 'reef-pg-data-'))], pgEnv);
    assertExit(run, 0);
    await assertSameRows(pgUrl, dest, 'backup');
    assert.equal(readdirSync(dest).includes('reef.db.partial'), false);
    const server = await startServer({}, dest);
    try {
      const now = await served(server, work);
      assert.deepEqual(now.keys, original.keys);
      assert.equal(Object.keys(now.packages).length, 3);
    } finally {
      await server.close();
    }
    // And back onto PostgreSQL and another bucket.
    const again = await freshDatabase('reef-backup-back');
    databases.push(again);
    const { REEF_BLOB_URL: bucketUrl, ...aws } = s3ServerEnv(s3Engine!, freshBucket('reef-backup-back'));
    const back = await reef(['migrate-storage', '--data', dest, '--to', bucketUrl!, '--to-database', again], {
      ...aws,
      REEF_KEY_ENCRYPTION_KEY: kek,
    });
    assertExit(back, 0);
    await assertSameRows(again, dest);
  });

  test('back into a new data folder: the same again, keys as files', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reef-migrated-back-'));
    dirs.push(dataDir);
    const run = await reef(
      ['migrate-storage', '--data', dataDir, '--to', 'data-folder', '--to-database', 'sqlite'],
      pgEnv,
    );
    assertExit(run, 0);
    assert.match(run.stdout, /^copied 9 blobs/m);
    await assertSameRows(pgUrl, dataDir);
    // The keys as they were in the first data folder, byte for byte.
    assert.deepEqual(keyFiles(dataDir), keyFiles(embedded));

    const server = await startServer({}, dataDir);
    try {
      const now = await served(server, work);
      assert.deepEqual(now.keys, original.keys);
      assert.deepEqual(
        Object.fromEntries(Object.entries(now.packages).filter(([n]) => n !== PACKAGES[2])),
        original.packages,
      );
      assert.equal(Object.keys(now.packages).length, 3);
    } finally {
      await server.close();
    }
  });

  test('reef fsck on PostgreSQL and S3: clean, then one corrupt blob found', async () => {
    const fsck = (args: string[] = []) => reef(['fsck', '--data', pgDataDir, '--json', ...args], pgEnv);
    const clean = await fsck();
    assert.ok(clean.code === 0 || clean.code === 3, `${clean.code}: ${clean.stdout}${clean.stderr}`);
    const report = JSON.parse(clean.stdout) as { problems: unknown[]; checked: { packages: number } };
    assert.deepEqual(report.problems, []);
    assert.equal(report.checked.packages, 3);

    // The same bytes with one changed: same size, so only hashing finds it.
    const client = new S3Client({
      region: s3Engine!.region,
      endpoint: s3Engine!.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3Engine!.accessKeyId, secretAccessKey: s3Engine!.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    try {
      const victim = original.packages[PACKAGES[0]!]!;
      const bucket = new URL(bucketEnv.REEF_BLOB_URL!).hostname;
      const Key = `reef/blobs/sha256/${victim.slice(0, 2)}/${victim}`;
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      assert.equal(sha256(bytes), victim);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: bytes }));
      const damaged = await fsck();
      assertExit(damaged, 1);
      const found = JSON.parse(damaged.stdout) as { problems: Array<{ code: string; subject: string }> };
      assert.deepEqual(
        found.problems.map((p) => [p.code, p.subject.slice(0, 64)]),
        [['BLOB_CORRUPT', victim]],
      );
    } finally {
      client.destroy();
    }
  });
});
