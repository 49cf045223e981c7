import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { publishStatement, signStatement } from '../../src/provenance/publish-statement.ts';
import { storeBytes } from '../../src/repo/sbom.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { insertNew, newPackage } from '../helpers/new-package.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import { publishForm, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';
import { slsaStatement, startTestSigstore } from '../helpers/sigstore-ca.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SAN = 'https://github.com/acme/pkgs/.github/workflows/release.yml@refs/heads/main';
const MALLORY = SAN.replace('acme', 'mallory');
const GITHUB = 'https://token.actions.githubusercontent.com';

// biome-ignore lint/suspicious/noExplicitAny: JSON read back from the API, checked field by field
type Json = Record<string, any>;

const api = async (server: TestServer, path: string) => {
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  assert.equal(res.status, 200, path);
  return res.json() as Promise<Json>;
};
/** reef's signed statement of a publish, as served beside the package. */
const publishRecord = async (server: TestServer, path: string) => {
  const bundle = await api(server, path);
  return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
};
const auditOf = async (server: TestServer) =>
  ((await api(server, '/api/v1/audit?limit=100')).entries as Json[]).filter(
    (e) => e.action === 'provenance.reevaluate',
  );

test('provenance reverify: what a policy could not verify at publish is verified once it can, and reef re-issues its record', async () => {
  const sigstore = await startTestSigstore();
  const configDir = mkdtempSync(join(tmpdir(), 'reef-reverify-'));
  const config = join(configDir, 'reef.json');
  writeFileSync(join(configDir, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
  const writePolicy = (identities: unknown[]) =>
    writeFileSync(
      config,
      JSON.stringify({
        provenance: {
          '*': { mode: 'record', trustedRoot: 'trusted_root.json', tlogThreshold: 0, identities },
        },
      }),
    );
  writePolicy([]);
  let server = await startServer({ REEF_CONFIG: config });
  const dataDir = server.dataDir;
  try {
    // Published while the policy trusts no identity: stored, unverified.
    for (const [name, subject] of [
      ['late', SAN],
      ['stranger', MALLORY],
    ] as const) {
      const apk = await buildApk({ name, version: '1.0-r0', depends: [] });
      const statement = slsaStatement({ name: `${name}-1.0-r0.apk`, sha256: sha256(apk) });
      const bundle = await sigstore.signKeyless(Buffer.from(JSON.stringify(statement)), {
        issuer: GITHUB,
        subject,
      });
      const res = await publishForm(server, 'main', 'musl', {
        package: apk,
        provenance: Buffer.from(JSON.stringify(bundle)),
      });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      const shown = (res.json.provenance as { publisher: Record<string, unknown> }).publisher;
      assert.equal(shown.verified, false);
      assert.match(String(shown.reason), /trusts no signer/);
    }
    const late = '/main/musl/x86_64/late-1.0-r0.apk';
    const firstRecord = await api(server, `${late}.publish.json`);
    const firstRecordSha = (await server.services.store.getAttestation(
      (await server.services.store.find({ repo: 'main', libc: 'musl', arch: 'x86_64' }, 'late', '1.0-r0'))!
        .id,
    ))!.sha256;
    await server.close();

    // The operator now trusts the identity that signed 'late'.
    writePolicy([{ subjectAlternativeName: SAN, issuer: GITHUB }]);
    const run = (...args: string[]) =>
      reef(['provenance', 'reverify', ...args, '--data', dataDir], { REEF_CONFIG: config });
    const lines = (stdout: string) => stdout.trim().split('\n').sort();
    const expected = [
      `unverified main/musl/x86_64/stranger-1.0-r0: identity ${SAN} from ${GITHUB}: UNTRUSTED_SIGNER_ERROR`,
      `verified   main/musl/x86_64/late-1.0-r0: signed by ${SAN} from ${GITHUB}`,
    ];

    const dry = await run('--dry-run');
    assertExit(dry, 0);
    assert.deepEqual(
      lines(dry.stdout).map((l) => l.slice(0, expected[0]!.length)),
      expected.map((l) => l.slice(0, expected[0]!.length)),
    );
    assert.match(dry.stderr, /dry run, nothing changed: 1 verified now, 1 still unverified/);

    const real = await run();
    assertExit(real, 0);
    assert.match(
      real.stdout,
      new RegExp(`^verified   main/musl/x86_64/late-1\\.0-r0: signed by ${SAN.replace(/[.]/g, '\\.')}`, 'm'),
    );
    assert.match(real.stdout, /^unverified main\/musl\/x86_64\/stranger-1\.0-r0: .*UNTRUSTED_SIGNER_ERROR/m);
    assert.match(real.stderr, /^1 verified now, 1 still unverified, 0 skipped, 0 failed$/m);

    server = await startServer({ REEF_CONFIG: config }, dataDir);
    // The stored result, as auditors read it.
    const lateProv = (await api(server, '/api/v1/packages/main/musl/x86_64/late/1.0-r0/provenance'))
      .publisher;
    assert.equal(lateProv.verified, true);
    assert.deepEqual(lateProv.signer, { kind: 'identity', subjectAlternativeName: SAN, issuer: GITHUB });
    assert.match(lateProv.reevaluated.previousReason, /trusts no signer/);
    assert.ok(!Number.isNaN(Date.parse(lateProv.reevaluated.at)));
    const strangerProv = (await api(server, '/api/v1/packages/main/musl/x86_64/stranger/1.0-r0/provenance'))
      .publisher;
    assert.equal(strangerProv.verified, false, 'still not verified: left as it was');
    assert.match(strangerProv.reason, /trusts no signer/);
    assert.equal(strangerProv.reevaluated, undefined);

    // reef's record of the publish says so, re-signed; the rest of the statement is as first signed.
    const record = await publishRecord(server, `${late}.publish.json`);
    const first = JSON.parse(Buffer.from(firstRecord.dsseEnvelope.payload, 'base64').toString());
    assert.equal(record.predicate.publisherProvenance.verified, true);
    assert.equal(record.predicate.publisherProvenance.reevaluated.at, lateProv.reevaluated.at);
    assert.equal(record.predicate.publisherProvenanceReevaluatedAt, lateProv.reevaluated.at);
    assert.deepEqual(record.subject, first.subject);
    assert.equal(record.predicate.publishedAt, first.predicate.publishedAt);
    assert.equal(await server.services.blobs.has(firstRecordSha), false, 'the record it replaced is gone');
    const verify = await reef(['verify', `${server.url}${late}`]);
    assertExit(verify, 0);
    assert.match(verify.stdout, /^ok +attestation /m);

    // Each package checked is in the audit log with its outcome.
    const audit = await auditOf(server);
    assert.deepEqual(audit.map((e) => [e.target, e.result, e.detail.outcome, e.remoteAddr]).sort(), [
      ['main/musl/x86_64/late-1.0-r0', 'ok', 'verified', 'cli'],
      ['main/musl/x86_64/stranger-1.0-r0', 'ok', 'unverified', 'cli'],
    ]);
    await server.close();

    const fsck = await reef(['fsck', '--data', dataDir]);
    assertExit(fsck, 0);
    // Verified results are not checked again.
    const again = await run();
    assertExit(again, 0);
    assert.deepEqual(
      lines(again.stdout).map((l) => l.split(':')[0]),
      ['unverified main/musl/x86_64/stranger-1.0-r0'],
    );
  } finally {
    await server.close().catch(() => {});
    await sigstore.close();
    removeDir(dataDir);
    removeDir(configDir);
  }
});

test(
  'provenance reverify: a real Rekor v2 bundle reef on Node 20 stored as unverified verifies now',
  needsSharedFixtures,
  async () => {
    const fixture = (name: string) => sharedFixture('sigstore', 'rekor-v2', name);
    const bundle = readFileSync(fixture('java-dsse-intoto.rekor-v2.sigstore.json'));
    const artifact = readFileSync(fixture('java-artifact.txt'));
    const configDir = mkdtempSync(join(tmpdir(), 'reef-reverify-'));
    const config = join(configDir, 'reef.json');
    writeFileSync(
      config,
      JSON.stringify({
        provenance: {
          '*': {
            mode: 'record',
            trustedRoot: fixture('trusted_root.json'),
            identities: [
              {
                subjectAlternativeName: 'untrusted-sa@sigstore-conformance.iam.gserviceaccount.com',
                issuer: 'https://accounts.google.com',
              },
            ],
          },
        },
      }),
    );
    const server = await startServer({ REEF_CONFIG: config });
    const { store, blobs, attestationKey } = server.services;
    try {
      // The statement's subject is a.txt, not an .apk: the rows are what reef 0.1 on Node 20
      // stored for a package with these bytes, its verdict included (SOURCE.md, 3.1.1's failure).
      const pkg = await insertNew(store, {
        ...newPackage('a', '1-r0', 'x86_64'),
        filename: 'a.txt',
        sha256: sha256(artifact),
      });
      const record = await signStatement(
        publishStatement({
          filename: pkg.filename,
          sha256: pkg.sha256,
          repo: 'main',
          libc: 'glibc',
          arch: 'x86_64',
          name: 'a',
          version: '1-r0',
          checksum: pkg.checksum,
          datahash: pkg.datahash,
          publishedBy: { tokenId: null, tokenName: 'admin' },
          publishedAt: new Date(),
          origin: 'a',
          commit: '',
          url: '',
          sbom: { sha256: '0'.repeat(64), source: 'generated', format: 'spdx' },
          publisherProvenance: null,
        }),
        attestationKey,
      );
      await storeBytes(blobs, record, sha256(record));
      await store.saveAttestation(pkg.id, {
        sha256: sha256(record),
        size: record.length,
        keyName: attestationKey.keyName,
      });
      await storeBytes(blobs, bundle, sha256(bundle));
      const oldReason =
        'identity untrusted-sa@sigstore-conformance.iam.gserviceaccount.com from https://accounts.google.com: TLOG_BODY_ERROR: digest mismatch';
      await store.saveProvenance(pkg.id, {
        sha256: sha256(bundle),
        size: bundle.length,
        format: 'sigstore-bundle',
        verified: false,
        result: { format: 'sigstore-bundle', policy: 'record', verified: false, reason: oldReason },
      });

      const run = await reef(['provenance', 'reverify', 'main', '--data', server.dataDir], {
        REEF_CONFIG: config,
      });
      assertExit(run, 0);
      assert.match(
        run.stdout,
        /^verified {3}main\/glibc\/x86_64\/a-1-r0: signed by untrusted-sa@sigstore-conformance\.iam\.gserviceaccount\.com from https:\/\/accounts\.google\.com$/m,
      );
      const stored = (await store.getProvenance(pkg.id))!;
      assert.equal(stored.verified, true);
      assert.equal((stored.result.reevaluated as { previousReason: string }).previousReason, oldReason);
      const reissued = (await store.getAttestation(pkg.id))!;
      assert.notEqual(reissued.sha256, sha256(record));
      const statement = JSON.parse(
        Buffer.from(
          JSON.parse((await blobs.readAll(reissued.sha256)).toString()).dsseEnvelope.payload,
          'base64',
        ).toString(),
      );
      assert.equal(statement.predicate.publisherProvenance.verified, true);
      assert.equal(statement.predicate.publisherProvenance.sha256, sha256(bundle));
    } finally {
      await server.close();
      removeDir(server.dataDir);
      removeDir(configDir);
    }
  },
);
