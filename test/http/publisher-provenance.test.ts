import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildApk, generateRsaKey, gzipMember, packTar } from '../helpers/apk-builder.ts';
import {
  publishForm,
  removeDir,
  snapshotData,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { signWithKey, slsaStatement } from '../helpers/sigstore-ca.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** SHA-256 of the package's last gzip member (its data), split off by Python's zlib, not reef's reader. */
const datahashOf = (apk: Buffer): string =>
  execFileSync(
    'python3',
    [
      '-c',
      'import sys,zlib,hashlib\nb=sys.stdin.buffer.read()\nwhile True:\n  d=zlib.decompressobj(31); d.decompress(b)\n  if not d.unused_data: break\n  b=d.unused_data\nprint(hashlib.sha256(b).hexdigest())',
    ],
    { input: apk, encoding: 'utf8' },
  ).trim();

describe('publisher provenance over HTTP', () => {
  let server: TestServer;
  let configDir: string;
  const publisher = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publisherPem = publisher.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const packageKey = generateRsaKey();

  before(async () => {
    configDir = mkdtempSync(join(tmpdir(), 'reef-policy-'));
    writeFileSync(join(configDir, 'publisher.pem'), publisherPem);
    writeFileSync(join(configDir, 'acme.rsa.pub'), packageKey.publicPem);
    writeFileSync(
      join(configDir, 'reef.json'),
      JSON.stringify({
        provenance: {
          '*': { mode: 'record', keys: ['publisher.pem'], packageKeys: ['acme.rsa.pub'] },
          strict: {
            mode: 'require',
            keys: ['publisher.pem'],
            requirePackageSignature: true,
            packageKeys: ['acme.rsa.pub'],
          },
        },
      }),
    );
    server = await startServer({ REEF_CONFIG: join(configDir, 'reef.json') });
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(configDir);
  });

  const bundleFor = async (apk: Buffer, key = publisher, digest = sha256(apk)) =>
    Buffer.from(
      JSON.stringify(
        await signWithKey(
          Buffer.from(JSON.stringify(slsaStatement({ name: 'pkg.apk', sha256: digest }))),
          key.privateKey,
          key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        ),
      ),
    );
  const get = async (path: string) => {
    const res = await fetch(`${server.url}${path}`);
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      bytes: Buffer.from(await res.arrayBuffer()),
    };
  };
  const reefStatement = async (path: string) => {
    const bundle = JSON.parse((await get(path)).bytes.toString());
    return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
  };

  test('record: a verified bundle is stored, shown, served beside the package and recorded by reef', async () => {
    const apk = await buildApk({ name: 'signed', version: '1.0-r0', depends: [] });
    const provenance = await bundleFor(apk);
    const res = await publishForm(server, 'main', 'musl', { package: apk, provenance });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const shown = (res.json.provenance as { publisher: Record<string, unknown> }).publisher;
    assert.equal(shown.verified, true);
    assert.deepEqual(shown.signer, { kind: 'key', key: 'publisher.pem' });
    assert.equal(shown.sha256, sha256(provenance));
    assert.equal(
      (shown.predicate as Record<string, string>).sourceCommit,
      '0123456789abcdef0123456789abcdef01234567',
    );

    const served = await get('/main/musl/x86_64/signed-1.0-r0.apk.provenance.json');
    assert.equal(served.status, 200);
    assert.equal(sha256(served.bytes), sha256(provenance), 'the publisher bundle, byte for byte');
    // Served as the Sigstore bundle it declares itself to be, not as plain JSON.
    const declared = JSON.parse(provenance.toString()).mediaType;
    assert.match(declared, /^application\/vnd\.dev\.sigstore\.bundle/);
    assert.equal(served.type, declared);
    assert.equal(
      (await get('/main/musl/x86_64/signed-1.0-r0.apk.publish.json')).type,
      'application/vnd.dev.sigstore.bundle.v0.3+json',
    );
    const statement = await reefStatement('/main/musl/x86_64/signed-1.0-r0.apk.publish.json');
    assert.equal(statement.predicate.publisherProvenance.verified, true);
    assert.equal(statement.predicate.publisherProvenance.sha256, sha256(provenance));

    const api = (await (
      await fetch(`${server.url}/api/v1/packages/main/musl/x86_64/signed/1.0-r0/provenance`)
    ).json()) as Record<string, Record<string, unknown>>;
    assert.equal(api.publisher!.verified, true);
    assert.deepEqual(api.publisher!.bundle, JSON.parse(provenance.toString()));
  });

  test('record: a bundle by an untrusted key is accepted with the failure stored', async () => {
    const apk = await buildApk({ name: 'stranger', version: '1.0-r0', depends: [] });
    const res = await publishForm(server, 'main', 'musl', {
      package: apk,
      provenance: await bundleFor(apk, stranger),
    });
    assert.equal(res.status, 201);
    const shown = (res.json.provenance as { publisher: Record<string, unknown> }).publisher;
    assert.equal(shown.verified, false);
    assert.match(String(shown.reason), /publisher\.pem.*SIGNATURE_ERROR/);
  });

  test('require: missing, unverified, mismatched provenance and an unsigned package are refused and leave nothing', async () => {
    const signer = { keyName: 'acme.rsa.pub', privateKey: packageKey.privateKey };
    const apk = await buildApk({ name: 'strict', version: '1.0-r0', depends: [], signer });
    const unsignedApk = await buildApk({ name: 'strict', version: '1.0-r0', depends: [] });
    const before = await snapshotData(server);
    const cases: Array<[string, Record<string, Buffer>, string]> = [
      ['no provenance', { package: apk }, 'PROVENANCE_REQUIRED'],
      [
        'untrusted key',
        { package: apk, provenance: await bundleFor(apk, stranger) },
        'PROVENANCE_UNVERIFIED',
      ],
      [
        'other package',
        { package: apk, provenance: await bundleFor(apk, publisher, 'e'.repeat(64)) },
        'PROVENANCE_SUBJECT_MISMATCH',
      ],
      ['junk', { package: apk, provenance: Buffer.from('{"not":"a bundle"}') }, 'PROVENANCE_INVALID'],
      [
        'unsigned package',
        { package: unsignedApk, provenance: await bundleFor(unsignedApk) },
        'PACKAGE_SIGNATURE_UNVERIFIED',
      ],
    ];
    for (const [what, parts, code] of cases) {
      const res = await publishForm(server, 'strict', 'musl', parts);
      assert.equal(res.status, 422, what);
      assert.equal(res.json.code, code, what);
    }
    assert.equal(await snapshotData(server), before, 'nothing left behind');
    const ok = await publishForm(server, 'strict', 'musl', {
      package: apk,
      provenance: await bundleFor(apk),
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
  });

  test('attached later: reef re-issues its attestation; the same again is idempotent, another is a conflict', async () => {
    const apk = await buildApk({ name: 'later', version: '1.0-r0', depends: [] });
    assert.equal((await publishForm(server, 'main', 'musl', { package: apk })).status, 201);
    const path = '/main/musl/x86_64/later-1.0-r0.apk';
    const firstReef = (await get(`${path}.publish.json`)).bytes;
    assert.equal(
      sha256((await get(`${path}.provenance.json`)).bytes),
      sha256(firstReef),
      "until then, reef's",
    );
    assert.equal((await reefStatement(`${path}.publish.json`)).predicate.publisherProvenance, null);

    const put = (body: Buffer) =>
      fetch(`${server.url}/api/v1/packages/main/musl/x86_64/later/1.0-r0/provenance`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: new Uint8Array(body),
      });
    const provenance = await bundleFor(apk);
    const res = await put(provenance);
    assert.equal(res.status, 201);
    assert.equal(((await res.json()) as Record<string, unknown>).verified, true);
    assert.equal(sha256((await get(`${path}.provenance.json`)).bytes), sha256(provenance));
    const reissued = await reefStatement(`${path}.publish.json`);
    assert.equal(reissued.predicate.publisherProvenance.verified, true);
    assert.equal(reissued.subject[0].digest.sha256, sha256(apk));
    assert.ok(
      !(await server.services.blobs.has(sha256(firstReef))),
      'the superseded attestation blob is collected',
    );
    assert.equal((await put(provenance)).status, 200);
    const conflict = await put(await bundleFor(apk, stranger));
    assert.equal(conflict.status, 409);
    assert.equal(((await conflict.json()) as Record<string, unknown>).code, 'PROVENANCE_EXISTS');
  });

  test("melange's .attest.tar.gz: served as sent beside the package, verified by a package key", async () => {
    const apk = await buildApk({ name: 'melanged', version: '2.0-r1', depends: [] });
    const body = Buffer.from(
      JSON.stringify(slsaStatement({ name: 'melanged-2.0-r1.apk', sha256: datahashOf(apk) })),
    );
    const member = gzipMember(
      await packTar(
        [{ header: { name: 'melanged-2.0-r1.attestation', size: body.length, mode: 0o644 }, body }],
        false,
      ),
    );
    const signature = sign('sha256', member, packageKey.privateKey);
    const sigTar = await packTar(
      [
        {
          header: { name: '.SIGN.RSA256.acme.rsa.pub', size: signature.length, mode: 0o644 },
          body: signature,
        },
      ],
      false,
    );
    const attest = Buffer.concat([gzipMember(sigTar), member]);
    const res = await publishForm(server, 'main', 'musl', { package: apk, provenance: attest });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const shown = (res.json.provenance as { publisher: Record<string, unknown> }).publisher;
    assert.equal(shown.format, 'melange-attestation');
    assert.equal(shown.verified, true);
    assert.equal(shown.subjectDigest, 'datahash');
    const served = await get('/main/musl/x86_64/melanged-2.0-r1.attest.tar.gz');
    assert.equal(served.status, 200);
    assert.ok(served.bytes.equals(attest));
    const prov = JSON.parse(
      (await get('/main/musl/x86_64/melanged-2.0-r1.apk.provenance.json')).bytes.toString(),
    );
    assert.ok(prov.dsseEnvelope, "a melange attestation is no bundle: .provenance.json serves reef's");
    assert.equal((await get('/main/musl/x86_64/signed-1.0-r0.attest.tar.gz')).status, 404);
  });

  test('deleting a package collects its provenance blob', async () => {
    const apk = await buildApk({ name: 'gone', version: '1.0-r0', depends: [] });
    const provenance = await bundleFor(apk);
    assert.equal((await publishForm(server, 'main', 'musl', { package: apk, provenance })).status, 201);
    const blob = sha256(provenance);
    assert.ok(await server.services.blobs.has(blob), `the bundle is blob ${blob}`);
    const res = await fetch(`${server.url}/api/v1/repos/main/musl/x86_64/gone/1.0-r0`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    assert.equal(res.status, 204);
    assert.ok(!(await server.services.blobs.has(blob)));
  });
});
