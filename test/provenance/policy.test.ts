import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bundleFromJSON } from '@sigstore/bundle';
import { provenancePolicySchema } from '../../src/config.ts';
import { isAppError } from '../../src/errors.ts';
import { ProvenancePolicies } from '../../src/repo/provenance.ts';
import { generateRsaKey, gzipMember, packTar } from '../helpers/apk-builder.ts';
import { removeDir } from '../helpers/server.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';
import {
  signWithKey,
  slsaStatement,
  stampTime,
  startTestSigstore,
  type TestSigstore,
} from '../helpers/sigstore-ca.ts';

const BEACON =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const GITHUB = 'https://token.actions.githubusercontent.com';

/** A package these tests' statements are about. */
const target = {
  filename: 'hello-1.0-r0.apk',
  sha256: 'a'.repeat(64),
  datahash: 'b'.repeat(64),
  name: 'hello',
  version: '1.0-r0',
};

function policies(policy: Record<string, unknown>, dir = '.'): ProvenancePolicies {
  return new ProvenancePolicies({ main: provenancePolicySchema.parse(policy) }, dir);
}

describe('provenance policy: real public-good bundles, offline', needsSharedFixtures, () => {
  const artifact = readFileSync(sharedFixture('sigstore', 'a.txt'));
  const artifactSha256 = createHash('sha256').update(artifact).digest('hex');
  const publicGoodDsse = readFileSync(sharedFixture('sigstore', 'a.txt.intoto-dsse.sigstore.json'));
  const publicGoodMsgsig = readFileSync(sharedFixture('sigstore', 'a.txt.msgsig-v0.3.sigstore.json'));
  /** A "package" whose file is a.txt: the public-good statement's subject. */
  const aTxt = {
    filename: 'a.txt',
    sha256: artifactSha256,
    datahash: '0'.repeat(64),
    name: 'a',
    version: '1-r0',
  };
  const identityPolicy = (rule: Record<string, unknown>) =>
    policies({ mode: 'require', trustedRoot: 'public-good', identities: [{ issuer: GITHUB, ...rule }] });

  test('the GitHub Actions identity that signed them verifies, with the predicate summarised', async () => {
    const { result } = await identityPolicy({ subjectAlternativeName: BEACON }).evaluate(
      'main',
      publicGoodDsse,
      aTxt,
    );
    assert.equal(result.verified, true, result.reason);
    assert.deepEqual(result.signer && { ...result.signer, sourceCommit: undefined }, {
      kind: 'identity',
      subjectAlternativeName: BEACON,
      issuer: GITHUB,
      sourceRepository: 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon',
      sourceCommit: undefined,
    });
    assert.equal(result.subjectDigest, 'sha256');
    assert.equal(result.predicate.buildType, 'https://actions.github.io/buildtypes/workflow/v1');
    assert.match(result.predicate.sourceCommit ?? '', /^[0-9a-f]{40}$/);
  });

  test('another workflow, the same one with a suffix, an unanchored prefix, or another issuer: not verified', async () => {
    for (const rule of [
      { subjectAlternativeName: BEACON.replace('extremely-dangerous-oidc-beacon.yml', 'release.yml') },
      { subjectAlternativeName: `${BEACON}-evil` },
      // Unanchored, this prefix would match the real SAN (sigstore-js
      // packages/verify/src/policy.ts).
      { subjectAlternativeNameRegex: 'https://github\\.com/sigstore-conformance/.*@refs/heads/mai' },
      { subjectAlternativeName: BEACON, issuer: 'https://accounts.google.com' },
    ]) {
      const { result } = await identityPolicy(rule).evaluate('main', publicGoodDsse, aTxt);
      assert.equal(result.verified, false, JSON.stringify(rule));
      assert.match(result.reason ?? '', /UNTRUSTED_SIGNER_ERROR/);
    }
    const { result } = await identityPolicy({
      subjectAlternativeNameRegex:
        'https://github\\.com/sigstore-conformance/[^/]+/\\.github/workflows/.*@refs/heads/main',
    }).evaluate('main', publicGoodDsse, aTxt);
    assert.equal(result.verified, true, 'an anchored regex naming the org matches');
  });

  test('a message-signature bundle is not an attestation', async () => {
    await assert.rejects(
      identityPolicy({ subjectAlternativeName: BEACON }).evaluate('main', publicGoodMsgsig, aTxt),
      (err) => isAppError(err, 'PROVENANCE_INVALID'),
    );
    // It is still a valid Sigstore bundle: the parser, not the verifier, refused it.
    assert.equal(bundleFromJSON(JSON.parse(publicGoodMsgsig.toString())).content.$case, 'messageSignature');
  });

  test('a statement about other bytes is refused, naming the digests', async () => {
    const other = { ...aTxt, sha256: 'f'.repeat(64) };
    await assert.rejects(
      identityPolicy({ subjectAlternativeName: BEACON }).evaluate('main', publicGoodDsse, other),
      (err) => isAppError(err, 'PROVENANCE_SUBJECT_MISMATCH') && err.message.includes(artifactSha256),
    );
  });
});

describe('provenance policy: publisher keys', () => {
  let dir: string;
  const publisher = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publisherPem = publisher.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'reef-prov-'));
    writeFileSync(join(dir, 'publisher.pem'), publisherPem);
  });
  after(() => removeDir(dir));

  const bundleBytes = async (statement: unknown, key = publisher) =>
    Buffer.from(
      JSON.stringify(
        await signWithKey(
          Buffer.from(JSON.stringify(statement)),
          key.privateKey,
          key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        ),
      ),
    );

  test('a bundle signed by the named key verifies; by another key it does not', async () => {
    const p = policies({ keys: ['publisher.pem'] }, dir);
    const good = await p.evaluate(
      'main',
      await bundleBytes(slsaStatement({ name: target.filename, sha256: target.sha256 })),
      target,
    );
    assert.equal(good.result.verified, true, good.result.reason);
    assert.deepEqual(good.result.signer, { kind: 'key', key: 'publisher.pem' });
    assert.equal(good.result.predicate.sourceRepository, 'https://github.com/acme/pkgs');
    assert.equal(good.result.policy, 'record');

    const bad = await p.evaluate(
      'main',
      await bundleBytes(slsaStatement({ name: target.filename, sha256: target.sha256 }), stranger),
      target,
    );
    assert.equal(bad.result.verified, false);
    assert.match(bad.result.reason ?? '', /key publisher\.pem: .*SIGNATURE_ERROR/);
    assert.doesNotThrow(() => p.enforce('main', bad), 'record never refuses');
    assert.throws(
      () => policies({ mode: 'require', keys: ['publisher.pem'] }, dir).enforce('main', bad),
      (err) => isAppError(err, 'PROVENANCE_UNVERIFIED'),
    );
  });

  test('the datahash binds too (melange convention); any other digest is refused', async () => {
    const p = policies({ keys: ['publisher.pem'] }, dir);
    const byData = await p.evaluate(
      'main',
      await bundleBytes(slsaStatement({ name: target.filename, sha256: target.datahash })),
      target,
    );
    assert.equal(byData.result.subjectDigest, 'datahash');
    await assert.rejects(
      p.evaluate(
        'main',
        await bundleBytes(slsaStatement({ name: target.filename, sha256: 'c'.repeat(64) })),
        target,
      ),
      (err) => isAppError(err, 'PROVENANCE_SUBJECT_MISMATCH') && err.message.includes('c'.repeat(64)),
    );
  });

  test('a tampered payload does not verify', async () => {
    const p = policies({ keys: ['publisher.pem'] }, dir);
    const json = JSON.parse(
      (await bundleBytes(slsaStatement({ name: target.filename, sha256: target.sha256 }))).toString(),
    );
    const statement = JSON.parse(Buffer.from(json.dsseEnvelope.payload, 'base64').toString());
    statement.predicate.runDetails.builder.id = 'https://evil.example/builder';
    json.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
    const { result } = await p.evaluate('main', Buffer.from(JSON.stringify(json)), target);
    assert.equal(result.verified, false);
    assert.match(result.reason ?? '', /SIGNATURE_ERROR/);
  });

  test('require: no provenance is refused; off: nothing is checked', async () => {
    assert.throws(
      () => policies({ mode: 'require', keys: ['publisher.pem'] }, dir).enforce('main', undefined),
      (err) => isAppError(err, 'PROVENANCE_REQUIRED'),
    );
    const off = policies({ mode: 'off', keys: ['publisher.pem'] }, dir);
    const { result } = await off.evaluate(
      'main',
      await bundleBytes(slsaStatement({ name: target.filename, sha256: target.sha256 })),
      target,
    );
    assert.equal(result.verified, false);
    assert.match(result.reason ?? '', /policy is off/);
  });

  test('junk, non-bundles and wrong statement types are PROVENANCE_INVALID', async () => {
    const p = policies({ keys: ['publisher.pem'] }, dir);
    const wrongType = {
      ...slsaStatement({ name: target.filename, sha256: target.sha256 }),
      predicateType: 'https://spdx.dev/Document',
    };
    for (const bytes of [
      Buffer.from('not json'),
      Buffer.from('{"base64Signature":"x","cert":"y"}'),
      await bundleBytes(wrongType),
    ]) {
      await assert.rejects(p.evaluate('main', bytes, target), (err) => isAppError(err, 'PROVENANCE_INVALID'));
    }
  });

  test('bad configuration stops at start, naming the file', () => {
    assert.throws(
      () => policies({ keys: ['missing.pem'] }, dir),
      (err) => isAppError(err, 'CONFIG_INVALID') && err.message.includes('missing.pem'),
    );
    assert.throws(() =>
      provenancePolicySchema.parse({ identities: [{ issuer: GITHUB, subjectAlternativeName: BEACON }] }),
    );
    assert.throws(() => provenancePolicySchema.parse({ timestampThreshold: 0 }));
    assert.throws(() => provenancePolicySchema.parse({ requirePackageSignature: true }));
  });
});

describe('provenance policy: keyless bundles from a test CA standing in for Fulcio', () => {
  const SAN = 'https://github.com/acme/pkgs/.github/workflows/release.yml@refs/heads/main';
  const statement = Buffer.from(
    JSON.stringify(slsaStatement({ name: target.filename, sha256: target.sha256 })),
  );
  let sigstore: TestSigstore;
  let expired: TestSigstore;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'reef-prov-ca-'));
    sigstore = await startTestSigstore();
    writeFileSync(join(dir, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
    // Stamped an hour after issue: Fulcio certificates live 10 minutes.
    const timestampTime = stampTime();
    expired = await startTestSigstore({
      certTime: new Date(timestampTime.getTime() - 3_600_000),
      timestampTime,
    });
    writeFileSync(join(dir, 'expired_root.json'), JSON.stringify(expired.trustedRoot));
  });
  after(async () => {
    await sigstore.close();
    await expired.close();
    removeDir(dir);
  });

  const keyless = (
    root = 'trusted_root.json',
    rule: Record<string, unknown> = { subjectAlternativeName: SAN },
  ) =>
    policies(
      { mode: 'require', trustedRoot: root, tlogThreshold: 0, identities: [{ issuer: GITHUB, ...rule }] },
      dir,
    );
  const sign = async (ca: TestSigstore, subject = SAN, issuer = GITHUB, payload = statement) =>
    Buffer.from(JSON.stringify(await ca.signKeyless(payload, { issuer, subject })));

  test('the right identity verifies (certificate chain, SCT and RFC 3161 timestamp checked)', async () => {
    const p = keyless();
    const prov = await p.evaluate('main', await sign(sigstore), target);
    assert.equal(prov.result.verified, true, prov.result.reason);
    assert.deepEqual(prov.result.signer, { kind: 'identity', subjectAlternativeName: SAN, issuer: GITHUB });
    p.enforce('main', prov);
    const byRegex = await keyless('trusted_root.json', {
      subjectAlternativeNameRegex:
        'https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@refs/heads/main',
    }).evaluate('main', await sign(sigstore), target);
    assert.equal(byRegex.result.verified, true, byRegex.result.reason);
  });

  test('wrong SAN, a suffixed SAN, wrong issuer, expired certificate, tampered payload: each fails with its reason', async () => {
    const cases: Array<[string, Buffer, RegExp, string?]> = [
      ['wrong SAN', await sign(sigstore, SAN.replace('acme', 'mallory')), /UNTRUSTED_SIGNER_ERROR/],
      ['suffixed SAN', await sign(sigstore, `${SAN}-evil`), /UNTRUSTED_SIGNER_ERROR/],
      ['wrong issuer', await sign(sigstore, SAN, 'https://accounts.google.com'), /UNTRUSTED_SIGNER_ERROR/],
      ['expired', await sign(expired), /CERTIFICATE_ERROR/, 'expired_root.json'],
    ];
    const tampered = JSON.parse((await sign(sigstore)).toString());
    const changed = JSON.parse(Buffer.from(tampered.dsseEnvelope.payload, 'base64').toString());
    changed.predicate.runDetails.builder.id = 'https://evil.example/builder';
    tampered.dsseEnvelope.payload = Buffer.from(JSON.stringify(changed)).toString('base64');
    cases.push(['tampered', Buffer.from(JSON.stringify(tampered)), /SIGNATURE_ERROR/]);
    for (const [what, bytes, reason, root] of cases) {
      const p = keyless(root);
      const prov = await p.evaluate('main', bytes, target);
      assert.equal(prov.result.verified, false, what);
      assert.match(prov.result.reason ?? '', reason, what);
      assert.throws(
        () => p.enforce('main', prov),
        (err) => isAppError(err, 'PROVENANCE_UNVERIFIED'),
        what,
      );
    }
  });

  test('a key policy is never satisfied by a certificate, even one from a trusted CA', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'k.pem'), key.publicKey.export({ type: 'spki', format: 'pem' }));
    const p = policies({ trustedRoot: 'trusted_root.json', keys: ['k.pem'] }, dir);
    const { result } = await p.evaluate('main', await sign(sigstore), target);
    assert.equal(result.verified, false);
    assert.match(result.reason ?? '', /trusts no identity/);
  });
});

describe("provenance policy: melange's .attest.tar.gz", () => {
  const rsa = generateRsaKey();
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'reef-prov-melange-'));
    writeFileSync(join(dir, 'melange.rsa.pub'), rsa.publicPem);
  });
  after(() => removeDir(dir));

  /**
   * As melange writes it (melange pkg/build/package.go): [signature member,]
   * one member with the statement, no end blocks.
   */
  async function attestTarGz(
    statement: unknown,
    entryName = 'hello-1.0-r0.attestation',
    signed = true,
  ): Promise<Buffer> {
    const body = Buffer.from(JSON.stringify(statement));
    const member = gzipMember(
      await packTar([{ header: { name: entryName, size: body.length, mode: 0o644 }, body }], false),
    );
    if (!signed) return member;
    const signature = sign('sha256', member, rsa.privateKey);
    const sigTar = await packTar(
      [
        {
          header: { name: '.SIGN.RSA256.melange.rsa.pub', size: signature.length, mode: 0o644 },
          body: signature,
        },
      ],
      false,
    );
    return Buffer.concat([gzipMember(sigTar), member]);
  }
  const melangeStatement = () => ({
    ...slsaStatement({ name: target.filename, sha256: target.datahash }),
    predicate: {
      buildDefinition: { buildType: 'https://chainguard.dev/buildtypes/melange/v1', externalParameters: {} },
      runDetails: { builder: { id: 'https://chainguard.dev/prod/builders/melange/v1' } },
    },
  });

  test('signed by a package key of the repo: accepted and verified, statement extracted', async () => {
    const p = policies(
      { mode: 'require', packageKeys: ['melange.rsa.pub'], requirePackageSignature: true },
      dir,
    );
    const prov = await p.evaluate('main', await attestTarGz(melangeStatement()), target);
    assert.equal(prov.result.format, 'melange-attestation');
    assert.equal(prov.result.verified, true, prov.result.reason);
    assert.deepEqual(prov.result.signer, { kind: 'apk-key', key: 'melange.rsa.pub' });
    assert.equal(prov.result.subjectDigest, 'datahash');
    assert.equal(prov.result.predicate.builderId, 'https://chainguard.dev/prod/builders/melange/v1');
  });

  test('unsigned: recorded as unverified; another package name: refused', async () => {
    const p = policies({ packageKeys: ['melange.rsa.pub'] }, dir);
    const unsigned = await p.evaluate(
      'main',
      await attestTarGz(melangeStatement(), undefined, false),
      target,
    );
    assert.equal(unsigned.result.verified, false);
    assert.match(unsigned.result.reason ?? '', /unsigned/);
    await assert.rejects(
      p.evaluate('main', await attestTarGz(melangeStatement(), 'other-2.0-r0.attestation'), target),
      (err) => isAppError(err, 'PROVENANCE_SUBJECT_MISMATCH'),
    );
    await assert.rejects(
      p.evaluate('main', (await attestTarGz(melangeStatement())).subarray(0, 100), target),
      (err) => isAppError(err) && err.kind !== 'internal',
    );
  });
});
