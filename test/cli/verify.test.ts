import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runVerify } from '../../src/cli/verify.ts';
import { sqliteOf } from '../../src/store/sqlite-database.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { assertExit, ROOT, type Run, reef } from '../helpers/reef-cli.ts';
import {
  makePrivate,
  publish,
  publishForm,
  removeDir,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { signWithKey, slsaStatement } from '../helpers/sigstore-ca.ts';
import { sampleSpdx } from '../sbom/sbom-fixtures.ts';

/**
 * `reef verify` against a real server, and against a mirror of its files (a
 * plain static server, as a CDN or a compromised mirror would be) in which
 * each file is tampered with in turn: the command must fail at that step.
 */
/** The command in this process (the tamper cases are many; the binary itself runs in the first test). */
async function verify(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const out = (sink: (t: string) => void) => ({
    write: (t: string) => {
      sink(t);
      return true;
    },
  });
  const code = await runVerify(args, {
    env: {},
    stdout: out((t) => (stdout += t)),
    stderr: out((t) => (stderr += t)),
  });
  return { code, stdout, stderr };
}

describe('reef verify', () => {
  let server: TestServer;
  let work: string;
  let mirror: Server;
  let mirrorUrl: string;
  const files = new Map<string, Buffer>();
  const publisher = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publisherPem = publisher.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
    type: 'spki',
    format: 'pem',
  });
  const pkg = '/main/musl/x86_64/verified-1.2.3-r0.apk';
  let indexKeyName: string;
  /** The mirror answers for an index once this resolves: a test pauses verify after its first step. */
  let holdIndex = Promise.resolve();

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'reef-verify-'));
    writeFileSync(join(work, 'publisher.pem'), publisherPem);
    writeFileSync(join(work, 'stranger.pem'), stranger);
    // No memory cache: every download is read from disk, so tampering on disk shows.
    server = await startServer({ REEF_CACHE_BYTES: '0' });
    const apk = await buildApk({ name: 'verified', version: '1.2.3-r0', depends: [] });
    const sha256 = (await import('node:crypto')).createHash('sha256').update(apk).digest('hex');
    const statement = Buffer.from(JSON.stringify(slsaStatement({ name: 'verified-1.2.3-r0.apk', sha256 })));
    const provenance = Buffer.from(
      JSON.stringify(await signWithKey(statement, publisher.privateKey, publisherPem)),
    );
    const res = await publishForm(server, 'main', 'musl', { package: apk, provenance });
    assert.equal(res.status, 201, JSON.stringify(res.json));

    // The mirror: every file verify fetches, copied from the server.
    const keys = (await (await fetch(`${server.url}/keys`)).json()) as {
      keys: string[];
      attestation: string;
    };
    const paths = [
      '/keys',
      `/keys/${keys.attestation}`,
      ...keys.keys.map((k) => `/main/musl/${k}`),
      '/main/musl/x86_64/APKINDEX.tar.gz',
      pkg,
      `${pkg}.sbom.original.json`,
      `${pkg}.publish.json`,
      `${pkg}.provenance.json`,
    ];
    for (const path of paths) {
      const r = await fetch(`${server.url}${path}`);
      assert.equal(r.status, 200, path);
      files.set(path, Buffer.from(await r.arrayBuffer()));
    }
    // apk finds a key by its file name; so does reef verify.
    indexKeyName = keys.keys[0]!;
    writeFileSync(join(work, indexKeyName), files.get(`/main/musl/${indexKeyName}`)!);
    mirror = createServer((req, res) => {
      const body = files.get(req.url ?? '');
      if (!body) res.writeHead(404).end();
      else if (req.url?.endsWith('/APKINDEX.tar.gz')) void holdIndex.then(() => res.writeHead(200).end(body));
      else res.writeHead(200).end(body);
    });
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    mirrorUrl = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => mirror.close(resolve));
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  test('a published package passes every step, provenance under a policy naming its key', async () => {
    const run = await reef(['verify', `${server.url}${pkg}`, '--publisher-key', join(work, 'publisher.pem')]);
    assertExit(run, 0);
    for (const step of ['keys', 'index', 'package', 'sbom', 'attestation', 'provenance']) {
      assert.match(run.stdout, new RegExp(`^ok +${step} `, 'm'), step);
    }
    const noPolicy = await reef(['verify', `${server.url}${pkg}`]);
    assertExit(noPolicy, 0);
    assert.match(noPolicy.stdout, /^skip +provenance +the publisher sent provenance/m);
  });

  test('a local .apk against the repository URL, with a pinned index key', async () => {
    const local = join(work, 'verified-1.2.3-r0.apk');
    writeFileSync(local, files.get(pkg)!);
    const run = await verify([
      '--apk',
      local,
      '--repo-url',
      `${server.url}/main/musl`,
      '--key',
      join(work, indexKeyName),
    ]);
    assertExit(run, 0);
    assert.match(
      run.stdout,
      new RegExp(`^ok +keys +${indexKeyName.replaceAll('.', '\\.')} \\(pinned\\)`, 'm'),
    );
    const otherKey = join(work, 'other', indexKeyName);
    mkdirSync(dirname(otherKey));
    writeFileSync(
      otherKey,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }),
    );
    const pinnedWrong = await verify([
      '--apk',
      local,
      '--repo-url',
      `${server.url}/main/musl`,
      '--key',
      otherKey,
    ]);
    assertExit(pinnedWrong, 1);
    assert.match(pinnedWrong.stdout, /^FAIL +index +INDEX_SIGNATURE_INVALID/m);
  });

  test('provenance under a policy naming another key fails at the provenance step', async () => {
    const run = await verify([`${server.url}${pkg}`, '--publisher-key', join(work, 'stranger.pem')]);
    assertExit(run, 1);
    assert.match(run.stdout, /^FAIL +provenance +PROVENANCE_UNVERIFIED/m);
  });

  test('each tampered file in a mirror fails at its own step', async () => {
    const untouched = await verify([`${mirrorUrl}${pkg}`]);
    assertExit(untouched, 0);
    const flip = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at] = c[at]! ^ 0xff;
      return c;
    };
    const cases: Array<[string, string, (b: Buffer) => Buffer]> = [
      ['/main/musl/x86_64/APKINDEX.tar.gz', 'index', (b) => flip(b, b.length - 30)],
      [pkg, 'package', (b) => flip(b, b.length - 30)],
      [
        `${pkg}.sbom.original.json`,
        'sbom',
        (b) => Buffer.from(b.toString().replace('"verified"', '"other"')),
      ],
      [`${pkg}.sbom.original.json`, 'sbom', (b) => Buffer.concat([b, Buffer.from(' ')])],
      [
        `${pkg}.publish.json`,
        'attestation',
        (b) => {
          const bundle = JSON.parse(b.toString());
          const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
          statement.predicate.publishedBy.tokenName = 'someone-else';
          bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
          return Buffer.from(JSON.stringify(bundle));
        },
      ],
    ];
    for (const [path, step, tamper] of cases) {
      const original = files.get(path)!;
      files.set(path, tamper(original));
      try {
        const run = await verify([`${mirrorUrl}${pkg}`]);
        assertExit(run, 1);
        assert.match(run.stdout, new RegExp(`^FAIL +${step} `, 'm'), `${path}: ${run.stdout}`);
      } finally {
        files.set(path, original);
      }
    }
  });

  test('a sent SBOM that .spdx.json serves normalized verifies: its digest is of the stored document', async () => {
    // sampleSpdx spells OPERATING-SYSTEM as the SPDX text does; .spdx.json serves OPERATING_SYSTEM.
    const sbom = Buffer.from(JSON.stringify(sampleSpdx('normalized', '1.0-r0'), null, 2));
    const apk = await buildApk({ name: 'normalized', version: '1.0-r0', depends: [] });
    assert.equal((await publishForm(server, 'main', 'musl', { package: apk, sbom })).status, 201);
    const path = '/main/musl/x86_64/normalized-1.0-r0.apk';
    const served = Buffer.from(await (await fetch(`${server.url}${path}.spdx.json`)).arrayBuffer());
    assert.ok(!served.equals(sbom), 'served normalized');
    const run = await verify([`${server.url}${path}`]);
    assertExit(run, 0);
    assert.match(
      run.stdout,
      /^ok +sbom +sbom\.original\.json describes normalized 1\.0-r0, digest as attested/m,
    );
  });

  test("a file tampered with in reef's data folder fails at its step: reef never serves it as sound", async () => {
    const id = (await server.services.database.get<{ id: number }>(
      "SELECT id FROM packages WHERE name = 'verified'",
    ))!.id;
    const blob = (sha: string) => join(server.dataDir, 'blobs', 'sha256', sha.slice(0, 2), sha);
    const db = sqliteOf(server.services.database);
    const one = (sql: string) => (db.prepare(sql).get(id) as { sha256: string }).sha256;
    const index = db.prepare("SELECT sha256 FROM indexes WHERE repo = 'main' AND arch = 'x86_64'").get() as {
      sha256: string;
    };
    const cases: Array<[string, string]> = [
      [blob(index.sha256), 'index'],
      [blob(one('SELECT sha256 FROM packages WHERE id = ?')), 'package'],
      [blob(one('SELECT sha256 FROM sboms WHERE package_id = ?')), 'sbom'],
      [blob(one('SELECT sha256 FROM attestations WHERE package_id = ?')), 'attestation'],
    ];
    for (const [path, step] of cases) {
      const original = readFileSync(path);
      const tampered = Buffer.from(original);
      tampered[tampered.length - 40] = tampered[tampered.length - 40]! ^ 0x01;
      writeFileSync(path, tampered);
      try {
        const run = await verify([`${server.url}${pkg}`]);
        assert.equal(run.code, 1, `${step}: ${run.stdout}`);
        assert.match(run.stdout, new RegExp(`^FAIL +${step} `, 'm'), `${step}: ${run.stdout}`);
      } finally {
        writeFileSync(path, original);
      }
    }
    assert.equal((await verify([`${server.url}${pkg}`])).code, 0, 'sound again once restored');
  });

  test("a private package through apk's URL form: the token goes as Basic and is never printed", async () => {
    await makePrivate(server, 'secret');
    const apk = await buildApk({ name: 'hidden', version: '1.0-r0', depends: [] });
    assert.equal((await publish(server, 'secret', 'musl', apk)).status, 201);
    const { token } = await server.services.tokens.create('verifier', ['secret:read']);
    const host = new URL(server.url).host;
    const path = '/secret/musl/x86_64/hidden-1.0-r0.apk';
    const shown = (run: Run) =>
      assert.ok(!`${run.stdout}${run.stderr}`.includes(token), 'the token was printed');

    // The binary once (its output is what a user sees); the command in this process for the rest.
    const binary = await reef(['verify', `http://apk:${token}@${host}${path}`]);
    assertExit(binary, 0);
    assert.match(binary.stdout, /^ok +attestation /m);
    shown(binary);
    const userOnly = await verify([`http://${token}@${host}${path}`]);
    assertExit(userOnly, 0);
    shown(userOnly);
    // --apk with --repo-url in the same form.
    const local = join(work, 'hidden-1.0-r0.apk');
    writeFileSync(local, apk);
    const repoUrl = await verify(['--apk', local, '--repo-url', `http://apk:${token}@${host}/secret/musl`]);
    assertExit(repoUrl, 0);
    shown(repoUrl);
    // Without the token the server answers 401, and that is what verify says.
    const anonymous = await verify([`${server.url}${path}`]);
    assertExit(anonymous, 1);
    assert.match(anonymous.stdout, /^FAIL +index +.* answered 401/m);

    // Failures print the URL without its credentials: a server that is not there, a URL that is not one.
    const refused = await verify([`http://apk:${token}@127.0.0.1:1${path}`]);
    assertExit(refused, 1);
    assert.match(refused.stdout, /^FAIL +keys +cannot fetch http:\/\/127\.0\.0\.1:1\/keys/m);
    shown(refused);
    const malformed = await reef(['verify', `http://apk:${token}@[::1${path}`]);
    assertExit(malformed, 2);
    assert.match(malformed.stderr, /http:\/\/\*\*\*@\[::1/);
    shown(malformed);
  });

  test('`reef verify … | head -1`: the reader leaving ends it quietly, with 141', async () => {
    let release!: () => void;
    holdIndex = new Promise((resolve) => {
      release = resolve;
    });
    try {
      const child = spawn(process.execPath, ['bin/reef.js', 'verify', `${mirrorUrl}${pkg}`], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => {
        stderr += b;
      });
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const first = await new Promise<string>((resolve) =>
        child.stdout.once('data', (b: Buffer) => resolve(String(b))),
      );
      assert.match(first, /^ok +keys /);
      // As head does after one line: the reader closes; then verify goes on to its next line.
      child.stdout.destroy();
      release();
      assert.equal(await exited, 141);
      assert.equal(stderr, '', 'nothing on stderr, no stack trace');
    } finally {
      release();
      holdIndex = Promise.resolve();
    }
  });
});
