import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  cpSync,
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
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { publicPemOf, signStatement } from '../../src/provenance/publish-statement.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, type TestServer } from '../helpers/server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `reef fsck` as an operator runs it. */
function fsckCli(dataDir: string, ...args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REEF_')));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/reef.js', 'fsck', '--data', dataDir, ...args],
      { cwd: ROOT, env, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      },
    );
  });
}

interface JsonReport {
  serverRunning: boolean;
  checked: { packages: number; blobs: number; indexes: number; indexEntries: number };
  problems: Array<{ code: string; subject: string; path?: string }>;
  garbage: Array<{ code: string; path: string }>;
  removed: string[];
  exitCode: number;
}

async function fsckJson(dataDir: string, ...args: string[]): Promise<{ run: Run; report: JsonReport }> {
  const run = await fsckCli(dataDir, '--json', ...args);
  assert.ok(run.stdout.startsWith('{'), `fsck printed JSON\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return { run, report: JSON.parse(run.stdout) as JsonReport };
}

/** sha256sum, not reef, says where a blob lives. */
function sha256sum(bytes: Buffer): string {
  return execFileSync('sha256sum', { input: bytes }).toString().split(' ')[0]!;
}

function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(path, bytes);
}

/** Where the data folder keeps the blob of `sha256`. */
function blobPath(dataDir: string, sha256: string): string {
  return join(dataDir, 'blobs', 'sha256', sha256.slice(0, 2), sha256);
}

/** The live index blob of one index, and the index blobs awaiting collection, as the database names them. */
function indexBlobs(dataDir: string): { live: Map<string, string>; superseded: string[] } {
  const db = new Database(join(dataDir, 'reef.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT repo, libc, arch, sha256 FROM indexes').all() as Array<
      Record<string, string>
    >;
    const superseded = db.prepare('SELECT sha256 FROM superseded_index_blobs').all() as Array<{
      sha256: string;
    }>;
    return {
      live: new Map(rows.map((r) => [`${r.repo}/${r.libc}/${r.arch}`, r.sha256!])),
      superseded: superseded.map((r) => r.sha256),
    };
  } finally {
    db.close();
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('reef fsck and corrupted blobs', { timeout: 180_000 }, () => {
  let dataDir: string;
  let small: Buffer;
  let other: Buffer;
  let large: Buffer;
  let smallPath: string;
  let largePath: string;

  before(async () => {
    small = await buildApk({
      name: 'fsck-small',
      files: [{ name: 'usr/share/a', content: 'a'.repeat(5000) }],
    });
    other = await buildApk({
      name: 'fsck-other',
      arch: 'noarch',
      files: [{ name: 'usr/share/b', content: 'b' }],
    });
    // Random bytes do not compress: the package is well over the 1 MiB the server keeps in memory.
    large = await buildApk({
      name: 'fsck-large',
      files: [{ name: 'usr/share/big', content: randomBytes(3 << 20) }],
    });
    assert.ok(large.length > 2 << 20);
    const server = await startServer();
    dataDir = server.dataDir;
    try {
      for (const apk of [small, other, large])
        assert.equal((await publish(server, 'fk', 'musl', apk)).status, 201);
    } finally {
      await server.close();
    }
    smallPath = join(dataDir, 'blobs', 'sha256', sha256sum(small).slice(0, 2), sha256sum(small));
    largePath = join(dataDir, 'blobs', 'sha256', sha256sum(large).slice(0, 2), sha256sum(large));
    assert.ok(existsSync(smallPath) && existsSync(largePath));
  });

  after(() => removeDir(dataDir));

  test('a healthy folder: exit 0, every blob and index counted', async () => {
    const { run, report } = await fsckJson(dataDir);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(report.serverRunning, false);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.garbage, []);
    assert.equal(report.checked.packages, 3);
    // Every file under blobs/ is referenced: a package, its SBOM or its attestation (counted), or an
    // index: a live one, or one replaced by a later publish and kept for the grace (not garbage).
    const { live, superseded } = indexBlobs(dataDir);
    assert.ok(superseded.length > 0, 'three publishes replaced indexes');
    const indexFiles = new Set([...live.values(), ...superseded].map((sha) => blobPath(dataDir, sha)));
    const files = filesUnder(join(dataDir, 'blobs'));
    assert.equal(report.checked.blobs, files.filter((f) => !indexFiles.has(f)).length);
    for (const f of indexFiles) assert.ok(files.includes(f), `${f} is stored`);
    // x86_64 and aarch64 (noarch goes to every default arch): 3 + 1 entries.
    assert.equal(report.checked.indexes, 2);
    assert.equal(report.checked.indexEntries, 4);
    const human = await fsckCli(dataDir);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /ok: no damage, no garbage/);
  });

  test('a flipped byte in a package blob is named, exit 1', async () => {
    flipByte(smallPath, 100);
    try {
      const { run, report } = await fsckJson(dataDir);
      assert.equal(run.code, 1);
      assert.deepEqual(
        report.problems.map((p) => [p.code, p.path]),
        [['BLOB_CORRUPT', smallPath]],
      );
      const human = await fsckCli(dataDir);
      assert.equal(human.code, 1);
      assert.match(
        human.stdout,
        new RegExp(`DAMAGE BLOB_CORRUPT ${sha256sum(small)}.*fsck-small-1\\.0\\.0-r0\\.apk`),
      );
    } finally {
      flipByte(smallPath, 100);
    }
  });

  test('a truncated blob, a missing index blob, a foreign key: each named', async () => {
    const blob = readFileSync(largePath);
    writeFileSync(largePath, blob.subarray(0, blob.length - 1));
    const { live } = indexBlobs(dataDir);
    const indexFile = blobPath(dataDir, live.get('fk/musl/aarch64')!);
    renameSync(indexFile, join(dataDir, 'moved-index'));
    const keyFile = readdirSync(join(dataDir, 'keys')).find((f) => f.endsWith('.rsa.pub'))!;
    const keyPath = join(dataDir, 'keys', keyFile);
    const realKey = readFileSync(keyPath);
    // Another RSA key under the same name: the signatures can no longer verify.
    writeFileSync(
      keyPath,
      execFileSync('sh', ['-c', 'openssl genrsa 2048 2>/dev/null | openssl rsa -pubout 2>/dev/null']),
    );
    try {
      const { run, report } = await fsckJson(dataDir);
      assert.equal(run.code, 1);
      const codes = report.problems.map((p) => `${p.code} ${p.path ?? p.subject}`).sort();
      assert.deepEqual(codes, [
        `BLOB_SIZE_MISMATCH ${largePath}`,
        `INDEX_FILE_MISSING ${indexFile}`,
        `INDEX_SIGNATURE_INVALID ${blobPath(dataDir, live.get('fk/musl/x86_64')!)}`,
      ]);
    } finally {
      writeFileSync(largePath, blob);
      renameSync(join(dataDir, 'moved-index'), indexFile);
      writeFileSync(keyPath, realKey);
    }
    assert.equal((await fsckCli(dataDir)).code, 0);
  });

  test('a database that disagrees with the bytes: C: of the package and of the index', async () => {
    const db = new Database(join(dataDir, 'reef.db'));
    const { checksum } = db.prepare("SELECT checksum FROM packages WHERE name = 'fsck-small'").get() as {
      checksum: string;
    };
    db.prepare(
      "UPDATE packages SET checksum = 'Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=' WHERE name = 'fsck-small'",
    ).run();
    db.close();
    try {
      const { run, report } = await fsckJson(dataDir);
      assert.equal(run.code, 1);
      assert.deepEqual(report.problems.map((p) => `${p.code} ${p.subject}`).sort(), [
        'INDEX_ENTRIES_MISMATCH fk/musl/x86_64',
        'PACKAGE_CHECKSUM_MISMATCH fk/musl/x86_64/fsck-small-1.0.0-r0.apk',
      ]);
    } finally {
      const fix = new Database(join(dataDir, 'reef.db'));
      fix.prepare("UPDATE packages SET checksum = ? WHERE name = 'fsck-small'").run(checksum);
      fix.close();
    }
  });

  test('garbage: exit 3; --repair removes it, and refuses while a server has the folder', async () => {
    const temp = join(dataDir, 'tmp', 'upload-0123abcd');
    writeFileSync(temp, 'half an upload');
    const strayBytes = Buffer.from('nothing references me');
    const stray = sha256sum(strayBytes);
    mkdirSync(join(dataDir, 'blobs', 'sha256', stray.slice(0, 2)), { recursive: true });
    const strayPath = join(dataDir, 'blobs', 'sha256', stray.slice(0, 2), stray);
    writeFileSync(strayPath, strayBytes);
    // An index file as reef wrote them before indexes were blobs.
    const oldIndex = join(dataDir, 'indexes', 'fk', 'musl', 'x86_64', `${'0'.repeat(64)}.tar.gz`);
    mkdirSync(join(dataDir, 'indexes', 'fk', 'musl', 'x86_64'), { recursive: true });
    writeFileSync(oldIndex, 'an index of before');

    const { run, report } = await fsckJson(dataDir);
    assert.equal(run.code, 3);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(
      report.garbage.map((g) => `${g.code} ${g.path}`).sort(),
      [`UNREFERENCED_INDEX_FILE ${oldIndex}`, `TEMP_FILE ${temp}`, `UNREFERENCED_BLOB ${strayPath}`].sort(),
    );

    // A server holds the database: no repair, nothing removed.
    const server: TestServer = await startServer({}, dataDir);
    try {
      writeFileSync(temp, 'half an upload');
      const busy = await fsckCli(dataDir, '--repair');
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /DATA_DIR_BUSY/);
      assert.ok(existsSync(strayPath));
      // Every index is a blob once the server has started: it removes the folder of before.
      assert.ok(!existsSync(oldIndex));
      // A plain check next to the live server: young files are work in progress, not garbage.
      const live = await fsckJson(dataDir);
      assert.equal(live.report.serverRunning, true);
      assert.deepEqual(live.report.garbage, []);
      assert.equal(live.run.code, 0);
    } finally {
      await server.close();
    }

    const repaired = await fsckJson(dataDir, '--repair');
    assert.equal(repaired.run.code, 0, repaired.run.stdout);
    assert.equal(repaired.report.removed.length, 2);
    assert.ok(!existsSync(temp) && !existsSync(strayPath));
    assert.equal((await fsckCli(dataDir)).code, 0);
  });

  test('the server never serves a corrupted blob as a clean response', async () => {
    flipByte(smallPath, 200);
    // Same size, one byte changed in the middle: only hashing can tell.
    flipByte(largePath, 1_500_000);
    const server = await startServer({}, dataDir);
    const work = mkdtempSync(join(tmpdir(), 'reef-corrupt-'));
    const curl = (path: string, ...args: string[]) =>
      new Promise<{ code: number; status: string; body: Buffer }>((resolve) => {
        const out = join(work, 'body');
        execFile(
          'curl',
          ['-sS', '-o', out, '-w', '%{http_code}', ...args, `${server.url}/fk/musl/x86_64/${path}`],
          (err, stdout) => {
            resolve({
              code: err ? Number(err.code) : 0,
              status: stdout,
              body: existsSync(out) ? readFileSync(out) : Buffer.alloc(0),
            });
          },
        );
      });
    try {
      // Small files are hashed when loaded into the cache: a 500, not the wrong bytes.
      const s = await curl('fsck-small-1.0.0-r0.apk');
      assert.equal(s.status, '500');
      // Large files are streamed: the transfer is cut before its last bytes (curl: 18, partial file).
      const l = await curl('fsck-large-1.0.0-r0.apk');
      assert.equal(l.code, 18, `curl exit ${l.code}, status ${l.status}, ${l.body.length} bytes`);
      assert.ok(l.body.length < large.length);
      // A range of a corrupted large file: refused before any byte.
      const r = await curl('fsck-large-1.0.0-r0.apk', '-H', 'Range: bytes=0-99');
      assert.equal(r.status, '500');
      // The server goes on serving what is intact.
      const ok = await curl('fsck-other-1.0.0-r0.apk');
      assert.equal(ok.status, '200');
      assert.equal(sha256sum(ok.body), sha256sum(other));

      flipByte(largePath, 1_500_000);
      const healed = await curl('fsck-large-1.0.0-r0.apk');
      assert.equal(healed.code, 0);
      assert.equal(healed.status, '200');
      assert.equal(sha256sum(healed.body), sha256sum(large));
      const range = await curl('fsck-large-1.0.0-r0.apk', '-H', 'Range: bytes=1499990-1500009');
      assert.equal(range.status, '206');
      assert.deepEqual(range.body, large.subarray(1_499_990, 1_500_010));
    } finally {
      await server.close();
      flipByte(smallPath, 200);
      removeDir(work);
    }
    assert.equal((await fsckCli(dataDir)).code, 0);
  });
});

describe('reef fsck and reef attestations', { timeout: 180_000 }, () => {
  let dataDir: string;
  const files = ['fsck-att0-1.0.0-r0.apk', 'fsck-att1-1.0.0-r0.apk'];
  const subjects = files.map((f) => `fa/musl/x86_64/${f}`);

  before(async () => {
    const server = await startServer();
    dataDir = server.dataDir;
    try {
      for (const name of ['fsck-att0', 'fsck-att1'])
        assert.equal((await publish(server, 'fa', 'musl', await buildApk({ name }))).status, 201);
    } finally {
      await server.close();
    }
  });
  after(() => removeDir(dataDir));

  /** A copy of the folder to damage, and its database. */
  function copyOf(): { dir: string; db: Database.Database } {
    const dir = join(mkdtempSync(join(tmpdir(), 'reef-fsck-att-')), 'data');
    cpSync(dataDir, dir, { recursive: true });
    return { dir, db: new Database(join(dir, 'reef.db')) };
  }

  /** Stores `bytes` as a blob of `dir` and points the attestation of package `name` at it. */
  function replaceAttestation(dir: string, db: Database.Database, name: string, bytes: Buffer): void {
    const sha = sha256sum(bytes);
    mkdirSync(join(dir, 'blobs', 'sha256', sha.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, 'blobs', 'sha256', sha.slice(0, 2), sha), bytes);
    db.prepare(
      'UPDATE attestations SET sha256 = ?, size = ? WHERE package_id = (SELECT id FROM packages WHERE name = ?)',
    ).run(sha, bytes.length, name);
  }

  function attestationOf(dir: string, db: Database.Database, name: string): Record<string, unknown> {
    const { sha256 } = db
      .prepare('SELECT a.sha256 FROM attestations a JOIN packages p ON p.id = a.package_id WHERE p.name = ?')
      .get(name) as { sha256: string };
    return JSON.parse(readFileSync(join(dir, 'blobs', 'sha256', sha256.slice(0, 2), sha256), 'utf8'));
  }

  const unverifiable = (report: JsonReport) =>
    report.problems.filter((p) => p.code === 'ATTESTATION_UNVERIFIABLE').map((p) => p.subject);

  test('a healthy folder: every attestation verifies', async () => {
    const { run, report } = await fsckJson(dataDir);
    assert.equal(run.code, 0, run.stdout);
    assert.deepEqual(report.problems, []);
  });

  test('an attestation signed by another key, or tampered with after signing, is named; exit 1', async () => {
    const { dir, db } = copyOf();
    try {
      // Well-formed, about the right package, signed by a key reef does not have.
      const bundle = attestationOf(dir, db, 'fsck-att0');
      const envelope = bundle.dsseEnvelope as { payload: string };
      const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const other = await signStatement(statement, {
        keyName: 'reef-attestation-00000000.pub.pem',
        privateKey,
        publicPem: publicPemOf(privateKey),
      });
      replaceAttestation(dir, db, 'fsck-att0', other);
      // reef's own signature over a payload changed afterwards.
      const tampered = attestationOf(dir, db, 'fsck-att1');
      const env1 = tampered.dsseEnvelope as { payload: string };
      const changed = JSON.parse(Buffer.from(env1.payload, 'base64').toString('utf8'));
      changed.predicate.publishedAt = '2001-01-01T00:00:00.000Z';
      env1.payload = Buffer.from(JSON.stringify(changed)).toString('base64');
      replaceAttestation(dir, db, 'fsck-att1', Buffer.from(JSON.stringify(tampered)));
      db.close();

      const { run, report } = await fsckJson(dir);
      assert.equal(run.code, 1, run.stdout);
      assert.deepEqual(
        report.problems.map((p) => p.code),
        ['ATTESTATION_UNVERIFIABLE', 'ATTESTATION_UNVERIFIABLE'],
      );
      assert.deepEqual(unverifiable(report).sort(), subjects);
      const human = await fsckCli(dir);
      assert.equal(human.code, 1);
      assert.match(
        human.stdout,
        /DAMAGE ATTESTATION_UNVERIFIABLE fa\/musl\/x86_64\/fsck-att0-1\.0\.0-r0\.apk/,
      );
    } finally {
      if (db.open) db.close();
      removeDir(join(dir, '..'));
    }
  });

  test('an attestation about other bytes is named', async () => {
    const { dir, db } = copyOf();
    try {
      // reef's valid attestation of fsck-att1, recorded as fsck-att0's.
      const { sha256 } = db
        .prepare(
          'SELECT a.sha256 FROM attestations a JOIN packages p ON p.id = a.package_id WHERE p.name = ?',
        )
        .get('fsck-att1') as { sha256: string };
      db.prepare(
        "UPDATE attestations SET sha256 = ?, size = (SELECT size FROM attestations WHERE sha256 = ?) WHERE package_id = (SELECT id FROM packages WHERE name = 'fsck-att0')",
      ).run(sha256, sha256);
      db.close();
      const { run, report } = await fsckJson(dir);
      assert.equal(run.code, 1, run.stdout);
      assert.deepEqual(unverifiable(report), [subjects[0]]);
    } finally {
      if (db.open) db.close();
      removeDir(join(dir, '..'));
    }
  });

  test('a folder whose attestation key was replaced: every attestation is named', async () => {
    const { dir, db } = copyOf();
    db.close();
    try {
      // What a restore without keys/attestation/ used to end in: a new key, generated at start.
      const keysDir = join(dir, 'keys', 'attestation');
      const oldFiles = readdirSync(keysDir);
      for (const f of oldFiles) rmSync(join(keysDir, f));
      const fresh = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(
        join(keysDir, 'reef-attestation-ffffffff.pem'),
        fresh.privateKey.export({ type: 'pkcs8', format: 'pem' }),
        { mode: 0o600 },
      );
      const { run, report } = await fsckJson(dir);
      assert.equal(run.code, 1, run.stdout);
      assert.deepEqual(unverifiable(report).sort(), subjects);

      // The earlier key's public half beside the new one keeps its attestations verifiable.
      const pub = oldFiles.find((f) => f.endsWith('.pub.pem'))!;
      cpSync(join(dataDir, 'keys', 'attestation', pub), join(keysDir, pub));
      const kept = await fsckJson(dir);
      assert.equal(kept.run.code, 0, kept.run.stdout);

      // No key at all.
      removeDir(keysDir);
      const none = await fsckJson(dir);
      assert.equal(none.run.code, 1);
      assert.deepEqual(unverifiable(none.report).sort(), subjects);
    } finally {
      removeDir(join(dir, '..'));
    }
  });
});
