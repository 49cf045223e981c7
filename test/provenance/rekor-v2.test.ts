import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { bundleFromJSON } from '@sigstore/bundle';
import { provenancePolicySchema } from '../../src/config.ts';
import { isAppError } from '../../src/errors.ts';
import { BundleVerifier, parseDsseBundle, parseTrustedRoot } from '../../src/provenance/verify-bundle.ts';
import { ProvenancePolicies } from '../../src/repo/provenance.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';

/**
 * Real bundles from Sigstore's public-good Rekor v2 log (log2025-1), each
 * with an RFC 3161 timestamp and no integrated time; identities and sources
 * in fixtures/sigstore/rekor-v2/SOURCE.md. The in-toto one is the shape
 * @sigstore/verify 3.x (reef on Node 20) refused with TLOG_BODY_ERROR: a
 * hashedrekord 0.0.2 entry over the DSSE pre-authentication encoding.
 */
const fixture = (name: string) => sharedFixture('sigstore', 'rekor-v2', name);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const GOOGLE = 'https://accounts.google.com';
const CONFORMANCE_SA = 'untrusted-sa@sigstore-conformance.iam.gserviceaccount.com';
const GITHUB_OAUTH = 'https://github.com/login/oauth';
const DEHAMER = 'brian@dehamer.com';

describe('Rekor v2 bundles from the public-good log verify offline', needsSharedFixtures, () => {
  const rootPath = fixture('trusted_root.json');
  const javaArtifact = readFileSync(fixture('java-artifact.txt'));
  const jsArtifact = readFileSync(fixture('js-artifact.txt'));
  const inToto = readFileSync(fixture('java-dsse-intoto.rekor-v2.sigstore.json'));
  /** A "package" whose file is the artifact the SLSA statement names. */
  const aTxt = {
    filename: 'a.txt',
    sha256: sha256(javaArtifact),
    datahash: '0'.repeat(64),
    name: 'a',
    version: '1-r0',
  };

  const policy = (identity: Record<string, unknown>, trustedRoot = rootPath) =>
    new ProvenancePolicies(
      { main: provenancePolicySchema.parse({ mode: 'require', trustedRoot, identities: [identity] }) },
      '/',
    );

  test('the in-toto SLSA bundle (hashedrekord 0.0.2 over the DSSE PAE) verifies for its signer', async () => {
    assert.equal(sha256(javaArtifact), 'a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf');
    // Under the fixture's trusted root and under the public-good root reef pins (@sigstore/tuf's seed).
    for (const root of [rootPath, 'public-good']) {
      const p = policy({ subjectAlternativeName: CONFORMANCE_SA, issuer: GOOGLE }, root);
      const prov = await p.evaluate('main', inToto, aTxt);
      assert.equal(prov.result.verified, true, `${root}: ${prov.result.reason}`);
      assert.deepEqual(prov.result.signer, {
        kind: 'identity',
        subjectAlternativeName: CONFORMANCE_SA,
        issuer: GOOGLE,
      });
      assert.equal(prov.result.subjectDigest, 'sha256');
      assert.equal(prov.result.predicateType, 'https://slsa.dev/provenance/v1');
      p.enforce('main', prov);
    }
    const tlog = JSON.parse(inToto.toString()).verificationMaterial.tlogEntries[0];
    assert.deepEqual(tlog.kindVersion, { kind: 'hashedrekord', version: '0.0.2' }, 'the shape 3.x refused');
  });

  test('another identity or issuer does not verify it, and require refuses it', async () => {
    for (const rule of [
      { subjectAlternativeName: `other-${CONFORMANCE_SA}`, issuer: GOOGLE },
      { subjectAlternativeName: CONFORMANCE_SA, issuer: GITHUB_OAUTH },
      // Unanchored, this would match the real SAN.
      { subjectAlternativeNameRegex: 'untrusted-sa@sigstore-conformance', issuer: GOOGLE },
    ]) {
      const p = policy(rule);
      const prov = await p.evaluate('main', inToto, aTxt);
      assert.equal(prov.result.verified, false, JSON.stringify(rule));
      assert.match(prov.result.reason ?? '', /UNTRUSTED_SIGNER_ERROR/);
      assert.throws(
        () => p.enforce('main', prov),
        (err) => isAppError(err, 'PROVENANCE_UNVERIFIED'),
      );
    }
  });

  test('it is not provenance for another artifact, and a changed payload does not verify', async () => {
    const p = policy({ subjectAlternativeName: CONFORMANCE_SA, issuer: GOOGLE });
    await assert.rejects(
      p.evaluate('main', inToto, { ...aTxt, sha256: sha256(jsArtifact) }),
      (err) => isAppError(err, 'PROVENANCE_SUBJECT_MISMATCH') && err.message.includes(sha256(javaArtifact)),
    );
    const tampered = JSON.parse(inToto.toString());
    const statement = JSON.parse(Buffer.from(tampered.dsseEnvelope.payload, 'base64').toString());
    statement.predicate.buildDefinition.externalParameters = { evil: true };
    tampered.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
    const prov = await p.evaluate('main', Buffer.from(JSON.stringify(tampered)), aTxt);
    assert.equal(prov.result.verified, false);
    assert.match(prov.result.reason ?? '', /SIGNATURE_ERROR|TLOG_BODY_ERROR/);
  });

  const keyless = (identity: { subjectAlternativeName: string; issuer: string }) =>
    new BundleVerifier({
      keys: [],
      identities: [identity],
      trustedRoot: parseTrustedRoot(JSON.parse(readFileSync(rootPath, 'utf8')), rootPath),
      identityThresholds: { tlog: 1, ctlog: 1, timestamp: 1 },
      keyThresholds: { tlog: 0, timestamp: 0 },
    });

  test('the message signature (hashedrekord 0.0.2) verifies over its artifact, not over other bytes', () => {
    const bundle = bundleFromJSON(
      JSON.parse(readFileSync(fixture('js-msgsig-hashedrekord-v002.rekor-v2.sigstore.json'), 'utf8')),
    );
    const verifier = keyless({ subjectAlternativeName: DEHAMER, issuer: GITHUB_OAUTH });
    const ok = verifier.verify(bundle, jsArtifact);
    assert.equal(ok.verified, true, ok.verified ? '' : ok.reason);
    const other = verifier.verify(bundle, javaArtifact);
    assert.equal(other.verified, false);
    assert.match(other.verified ? '' : other.reason, /SIGNATURE_ERROR/);
    const stranger = keyless({ subjectAlternativeName: CONFORMANCE_SA, issuer: GOOGLE }).verify(
      bundle,
      jsArtifact,
    );
    assert.match(stranger.verified ? '' : stranger.reason, /UNTRUSTED_SIGNER_ERROR/);
  });

  test('the dsse 0.0.2 entry verifies; its text/plain payload is not provenance', () => {
    const bytes = readFileSync(fixture('js-dsse-v002.rekor-v2.sigstore.json'));
    const bundle = bundleFromJSON(JSON.parse(bytes.toString()));
    assert.equal(JSON.parse(bytes.toString()).verificationMaterial.tlogEntries[0].kindVersion.kind, 'dsse');
    const ok = keyless({ subjectAlternativeName: DEHAMER, issuer: GITHUB_OAUTH }).verify(bundle);
    assert.equal(ok.verified, true, ok.verified ? '' : ok.reason);
    assert.throws(
      () => parseDsseBundle(bytes),
      (err) => isAppError(err, 'PROVENANCE_INVALID') && /text\/plain/.test(err.message),
    );
  });
});
