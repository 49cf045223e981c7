import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import { buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN } from '../helpers/server.ts';
import { keyVerifier } from '../helpers/sigstore-ca.ts';

/** The DSSE pre-authentication encoding the signature covers (DSSE v1). */
function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `),
    payload,
  ]);
}

test("reef's attestation of a publish verifies with @sigstore/verify and openssl, and binds the package", async () => {
  const server = await startServer();
  const work = mkdtempSync(join(tmpdir(), 'reef-prov-'));
  try {
    const apk = await buildApk({ name: 'attested', version: '3.1-r2' });
    assert.equal((await publish(server, 'prov', 'musl', apk)).status, 201);
    const keys = (await (await fetch(`${server.url}/keys`)).json()) as { attestation: string };
    assert.match(keys.attestation, /^reef-attestation-[0-9a-f]{8}\.pub\.pem$/);
    const pem = await (await fetch(`${server.url}/keys/${keys.attestation}`)).text();

    const base = `${server.url}/prov/musl/x86_64/attested-3.1-r2.apk`;
    const res = await fetch(`${base}.publish.json`);
    assert.equal(res.status, 200);
    const json = (await res.json()) as {
      dsseEnvelope: { payload: string; payloadType: string; signatures: Array<{ sig: string }> };
    };
    const provenance = await (await fetch(`${base}.provenance.json`)).json();
    assert.deepEqual(provenance, json, 'without publisher provenance, reef serves its own');

    // 1. The Sigstore verifier, trusting only the served key.
    const signer = keyVerifier(pem).verify(toSignedEntity(bundleFromJSON(json)));
    assert.ok(signer.key.equals(createPublicKey(pem)), 'signed by the served attestation key');

    // 2. openssl over the DSSE pre-authentication encoding.
    const opensslVerify = () =>
      spawnSync('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        join(work, 'key.pem'),
        '-signature',
        join(work, 'sig.der'),
        join(work, 'pae.bin'),
      ]);
    const env = json.dsseEnvelope;
    const payload = Buffer.from(env.payload, 'base64');
    writeFileSync(join(work, 'pae.bin'), pae(env.payloadType, payload));
    writeFileSync(join(work, 'sig.der'), Buffer.from(env.signatures[0]!.sig, 'base64'));
    writeFileSync(join(work, 'key.pem'), pem);
    const ok = opensslVerify();
    assert.equal(ok.status, 0, ok.stderr.toString());
    assert.match(ok.stdout.toString(), /Verified OK/);

    // 3. The statement names this package: subject digest = sha256sum of the .apk as served.
    const statement = JSON.parse(payload.toString()) as {
      _type: string;
      subject: Array<{ name: string; digest: { sha256: string } }>;
      predicate: {
        repository: { repo: string };
        publishedBy: { tokenName: string };
        sbom: { source: string };
      };
    };
    assert.equal(statement._type, 'https://in-toto.io/Statement/v1');
    const served = Buffer.from(await (await fetch(base)).arrayBuffer());
    const sha = execFileSync('sha256sum', { input: served, encoding: 'utf8' }).split(' ')[0];
    assert.deepEqual(statement.subject, [{ name: 'attested-3.1-r2.apk', digest: { sha256: sha } }]);
    assert.equal(statement.predicate.repository.repo, 'prov');
    assert.equal(statement.predicate.publishedBy.tokenName, 'REEF_ADMIN_TOKEN');
    assert.equal(statement.predicate.sbom.source, 'generated');

    // 4. A tampered payload fails both checks.
    const tampered = Buffer.from(payload.toString().replace('"prov"', '"evil"'));
    const forged = { ...json, dsseEnvelope: { ...env, payload: tampered.toString('base64') } };
    assert.throws(() => keyVerifier(pem).verify(toSignedEntity(bundleFromJSON(forged))));
    writeFileSync(join(work, 'pae.bin'), pae(env.payloadType, tampered));
    assert.notEqual(opensslVerify().status, 0);

    const api = (await (
      await fetch(`${server.url}/api/v1/packages/prov/musl/x86_64/attested/3.1-r2/provenance`, {
        headers: { authorization: `Bearer ${TEST_TOKEN}` },
      })
    ).json()) as { publish: { keyName: string } };
    assert.equal(api.publish.keyName, keys.attestation);
  } finally {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  }
});
