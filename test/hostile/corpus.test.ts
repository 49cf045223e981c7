import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.ts';
import { generateRsaKey } from '../helpers/apk-builder.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { signWithKey, slsaStatement } from '../helpers/sigstore-ca.ts';
import { type Case, packageCases, type SbomCase, sbomCases } from './corpus.ts';
import { peakRss, snapshotState } from './snapshot.ts';
import { gz, makeApk, pkginfoLines, type Signer, sha256, tar } from './tar.ts';

/**
 * The hostile corpus published over HTTP to one real server: each case gets a
 * 4xx with its own error code, and leaves the data folder and the database
 * exactly as they were.
 */

const STATUS_OF_KIND: Partial<Record<string, number>> = { invalid: 400, unprocessable: 422, too_large: 413 };

let server: TestServer;
let signer: Signer;

before(async () => {
  server = await startServer({ REEF_LOG_LEVEL: 'warn' });
  const key = generateRsaKey();
  signer = { keyName: 'hostile-test.rsa.pub', privateKey: key.privateKey };
});

after(async () => {
  await server.close();
  removeDir(server.dataDir);
});

async function send(c: Case, path = '/api/v1/repos/main/musl/packages') {
  let body: BodyInit;
  const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` };
  if (c.sbom || c.provenance) {
    const form = new FormData();
    form.set('package', new Blob([new Uint8Array(c.body)]), 'package.apk');
    if (c.sbom) form.set('sbom', new Blob([new Uint8Array(c.sbom)]), 'sbom.json');
    if (c.provenance) form.set('provenance', new Blob([new Uint8Array(c.provenance)]), 'provenance.json');
    body = form;
  } else {
    body = new Uint8Array(c.body);
    headers['content-type'] = 'application/octet-stream';
  }
  // A hang fails the case instead of the whole run.
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {}
  return { status: res.status, code, text };
}

/** Runs every case, then reports all failures at once. */
async function runCases(cases: Case[], path?: string): Promise<string[]> {
  const baseline = JSON.stringify(await snapshotState(server));
  const failures: string[] = [];
  for (const c of cases) {
    const r = await send(c, path);
    const expected = c.codes.map((code) => STATUS_OF_KIND[ERROR_CODES[code]]);
    if (!c.codes.includes(r.code as ErrorCode) || !expected.includes(r.status)) {
      failures.push(
        `${c.name}: got ${r.status} ${r.code ?? r.text.slice(0, 200)}, want ${c.codes.length > 3 ? 'a malformed-package code' : c.codes.join('|')}`,
      );
    }
    if (JSON.stringify(await snapshotState(server)) !== baseline) {
      failures.push(`${c.name}: the data folder or database changed`);
      break;
    }
  }
  return failures;
}

/**
 * Sends each body to `path` with `method`: a failure for a wrong code or
 * status, and for any change of the data folder or the database.
 */
async function refuseAll(
  method: string,
  path: string,
  cases: Array<[name: string, type: string, body: string, code: string]>,
): Promise<string[]> {
  const baseline = JSON.stringify(await snapshotState(server));
  const failures: string[] = [];
  for (const [name, type, body, code] of cases) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': type },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    const got = ((await res.json()) as { code?: string }).code;
    if (got !== code || res.status !== STATUS_OF_KIND[ERROR_CODES[code as ErrorCode]]) {
      failures.push(`${name}: got ${res.status} ${got}, want ${code}`);
    }
    if (JSON.stringify(await snapshotState(server)) !== baseline) failures.push(`${name}: state changed`);
  }
  return failures;
}

describe('hostile packages over HTTP', () => {
  test('a valid package of the same shape is accepted (the corpus differs from it by its faults only)', async () => {
    for (const name of ['baseline', 'hostile-sbom-ok']) {
      const good = makeApk({ signer, pkginfo: (h) => `${pkginfoLines(h, name).join('\n')}\n` });
      const r = await send({ name, body: good.bytes, codes: [] });
      assert.equal(r.status, 201, r.text);
    }
  });

  test('every malformed package: its 4xx code, nothing stored, memory bounded', async (t) => {
    const cases = await packageCases(signer);
    assert.ok(cases.length >= 200, `${cases.length} cases`);
    const { result: failures, peak, before } = await peakRss(() => runCases(cases));
    t.diagnostic(`${cases.length} packages, RSS peak +${((peak - before) / 2 ** 20).toFixed(0)} MiB`);
    assert.deepEqual(failures, []);
    // Bombs of 80 MiB and 2 MiB names are refused by bounds, not by buffering them.
    assert.ok(peak - before < 256 * 2 ** 20, `RSS grew by ${((peak - before) / 2 ** 20).toFixed(0)} MiB`);
    const health = await fetch(`${server.url}/readyz`);
    assert.equal(health.status, 200);
  });
});

describe('hostile SBOMs over HTTP', () => {
  const okPath = '/api/v1/packages/main/musl/x86_64/hostile-sbom-ok/1.0-r0/sbom';
  /** A package that is accepted as it is, so only its SBOM can be refused. */
  const target = (h: string) => `${pkginfoLines(h, 'hostile-sbom').join('\n')}\n`;
  let okDoc: Buffer;
  let targetDoc: Buffer;

  before(async () => {
    // The SPDX document reef generated for the package published above, and the same about hostile-sbom.
    const res = await fetch(`${server.url}${okPath}?format=spdx`);
    assert.equal(res.status, 200);
    okDoc = Buffer.from(await res.arrayBuffer());
    targetDoc = Buffer.from(okDoc.toString('utf8').replaceAll('hostile-sbom-ok', 'hostile-sbom'));
  });

  const embedding = (sbom: Buffer) =>
    makeApk({
      signer,
      pkginfo: target,
      dataTar: tar(
        [
          { name: 'usr/bin/hostile-sbom', body: 'x'.repeat(3000) },
          { name: 'var/lib/db/sbom/hostile-sbom-1.0-r0.spdx.json', body: sbom },
        ],
        true,
      ),
    }).bytes;

  test('sent beside a package (multipart field sbom): its 422 code, nothing stored', async () => {
    const pkg = makeApk({ signer, pkginfo: target }).bytes;
    const cases: Case[] = sbomCases(targetDoc, okDoc).map((c: SbomCase) => ({ ...c, body: pkg }));
    cases.push({
      name: 'a 17 MiB SBOM',
      body: pkg,
      sbom: Buffer.alloc(17 * 2 ** 20, 0x20),
      codes: ['SBOM_TOO_LARGE'],
    });
    assert.deepEqual(await runCases(cases), []);
  });

  test('embedded by the package: its 422 code, nothing stored', async () => {
    const cases: Case[] = sbomCases(targetDoc, okDoc).map((c) => ({
      name: c.name,
      body: embedding(c.sbom),
      codes: c.codes,
    }));
    // Past the one SBOM limit, refused at its tar header: none of it is kept.
    cases.push({
      name: 'an embedded SBOM of 17 MiB',
      body: embedding(Buffer.concat([targetDoc, Buffer.alloc(17 * 2 ** 20, 0x20)])),
      codes: ['APK_SBOM_TOO_LARGE'],
    });
    cases.push({
      name: 'an embedded SBOM of 40 MiB',
      body: embedding(Buffer.concat([targetDoc, Buffer.alloc(40 * 2 ** 20, 0x20)])),
      codes: ['APK_SBOM_TOO_LARGE'],
    });
    assert.deepEqual(await runCases(cases), []);
  });

  test('attached later (PUT …/sbom): its code, nothing stored', async () => {
    const baseline = JSON.stringify(await snapshotState(server));
    const failures: string[] = [];
    for (const c of sbomCases(okDoc, targetDoc)) {
      const res = await fetch(`${server.url}${okPath}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: new Uint8Array(c.sbom),
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.json()) as { code?: string };
      const status = STATUS_OF_KIND[ERROR_CODES[c.codes[0]!]];
      if (body.code !== c.codes[0] || res.status !== status) {
        failures.push(`${c.name}: got ${res.status} ${body.code}, want ${status} ${c.codes[0]}`);
      }
      if (JSON.stringify(await snapshotState(server)) !== baseline) failures.push(`${c.name}: state changed`);
    }
    assert.deepEqual(failures, []);
  });

  test('a 17 MiB SBOM attached later is SBOM_TOO_LARGE', async () => {
    const res = await fetch(`${server.url}${okPath}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: new Uint8Array(17 * 2 ** 20).fill(0x20),
    });
    const body = (await res.json()) as { code?: string };
    assert.deepEqual([res.status, body.code], [422, 'SBOM_TOO_LARGE']);
  });

  test('an SBOM sent as a 17 MiB text field (not a file part) is SBOM_TOO_LARGE', async () => {
    const form = new FormData();
    form.set('sbom', ' '.repeat(17 * 2 ** 20));
    form.set('package', new Blob([new Uint8Array(makeApk({ signer, pkginfo: target }).bytes)]), 'p.apk');
    const before = JSON.stringify(await snapshotState(server));
    const res = await fetch(`${server.url}/api/v1/repos/main/musl/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
      body: form,
    });
    const body = (await res.json()) as { code?: string };
    assert.equal(JSON.stringify(await snapshotState(server)), before);
    assert.deepEqual([res.status, body.code], [422, 'SBOM_TOO_LARGE']);
  });

  test('the same package with a valid SBOM is accepted (the SBOM was the only fault)', async () => {
    const r = await send({
      name: 'ok',
      body: makeApk({ signer, pkginfo: target }).bytes,
      sbom: targetDoc,
      codes: [],
    });
    assert.equal(r.status, 201, r.text);
    const embedded = embedding(targetDoc);
    assert.ok(embedded.length > 0);
  });
});

describe('hostile provenance over HTTP', () => {
  test('sent beside a package (multipart field provenance) or attached later (PUT): its 4xx code, nothing stored', async (t) => {
    const pkg = makeApk({ signer, pkginfo: (h) => `${pkginfoLines(h, 'hostile-prov').join('\n')}\n` });
    const publisher = generateRsaKey();
    const bundleOf = async (statement: unknown) =>
      (await signWithKey(
        Buffer.from(JSON.stringify(statement)),
        publisher.privateKey,
        publisher.publicPem,
      )) as Record<
        string,
        // biome-ignore lint/suspicious/noExplicitAny: a bundle's JSON, edited on purpose
        any
      >;
    const about = slsaStatement({ name: 'hostile-prov-1.0-r0.apk', sha256: sha256(pkg.bytes) });
    const good = await bundleOf(about);
    const json = (v: unknown) => Buffer.from(JSON.stringify(v));
    const withPayload = (payload: Buffer | string) => {
      const b = structuredClone(good);
      b.dsseEnvelope.payload = Buffer.from(payload).toString('base64');
      return json(b);
    };
    // A statement nested 20,000 objects deep (about another package, so it must be read to be refused).
    const deep = `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[{"name":"x","digest":{"sha256":"${'0'.repeat(64)}"}}],"predicate":${'{"buildDefinition":'.repeat(20_000)}{}${'}'.repeat(20_000)}}`;
    const melange = (entryName: string, statement: unknown) =>
      gz(tar([{ name: entryName, body: JSON.stringify(statement) }], true));
    const cases: Array<[string, Buffer, string]> = [
      ['not JSON', Buffer.from('this is not a bundle'), 'PROVENANCE_INVALID'],
      ['JSON null', Buffer.from('null'), 'PROVENANCE_INVALID'],
      ['an empty object', Buffer.from('{}'), 'PROVENANCE_INVALID'],
      ['a million [', Buffer.from('['.repeat(2 ** 20)), 'PROVENANCE_INVALID'],
      [
        'arrays nested 200,000 deep',
        Buffer.from(`${'['.repeat(200_000)}${']'.repeat(200_000)}`),
        'PROVENANCE_INVALID',
      ],
      ['5 MiB', Buffer.alloc(5 * 2 ** 20, 0x20), 'PROVENANCE_TOO_LARGE'],
      [
        'a message signature, not an attestation',
        json({
          ...good,
          dsseEnvelope: undefined,
          messageSignature: {
            messageDigest: { algorithm: 'SHA2_256', digest: Buffer.alloc(32).toString('base64') },
            signature: Buffer.alloc(64).toString('base64'),
          },
        }),
        'PROVENANCE_INVALID',
      ],
      [
        'payload type text/plain',
        json({ ...good, dsseEnvelope: { ...good.dsseEnvelope, payloadType: 'text/plain' } }),
        'PROVENANCE_INVALID',
      ],
      ['payload not JSON', withPayload('not json'), 'PROVENANCE_INVALID'],
      ['payload not UTF-8', withPayload(Buffer.from([0xff, 0xfe, 0x7b])), 'PROVENANCE_INVALID'],
      [
        'statement of another _type',
        withPayload(JSON.stringify({ ...about, _type: 'https://in-toto.io/Statement/v0.1' })),
        'PROVENANCE_INVALID',
      ],
      [
        'statement of another predicate type',
        withPayload(JSON.stringify({ ...about, predicateType: 'https://example.org/x' })),
        'PROVENANCE_INVALID',
      ],
      [
        'statement without subjects',
        withPayload(JSON.stringify({ ...about, subject: [] })),
        'PROVENANCE_INVALID',
      ],
      [
        'statement with 5,000 subjects',
        withPayload(JSON.stringify({ ...about, subject: Array(5000).fill(about.subject[0]) })),
        'PROVENANCE_INVALID',
      ],
      [
        'statement subject without digest',
        withPayload(JSON.stringify({ ...about, subject: [{ name: 'x' }] })),
        'PROVENANCE_INVALID',
      ],
      [
        'statement about another package',
        await bundleOf(
          slsaStatement({ name: 'other-1.0-r0.apk', sha256: sha256(Buffer.from('other')) }),
        ).then(json),
        'PROVENANCE_SUBJECT_MISMATCH',
      ],
      ['statement nested 20,000 objects deep', withPayload(deep), 'PROVENANCE_SUBJECT_MISMATCH'],
      [
        'melange attestation of another package',
        melange('other-1.0-r0.attestation', about),
        'PROVENANCE_SUBJECT_MISMATCH',
      ],
    ];
    // Malformed melange attestations: PROVENANCE_* codes, not the package reader's.
    const melangeCases: Array<[string, Buffer, string]> = [
      [
        'gzip that is not a melange attestation',
        Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0]), Buffer.alloc(100, 0x55)]),
        'PROVENANCE_INVALID',
      ],
      [
        'melange attestation with ../ in its name',
        melange('../hostile-prov-1.0-r0.attestation', about),
        'PROVENANCE_INVALID',
      ],
      [
        'melange attestation as a 80 MiB gzip bomb',
        gz(Buffer.alloc(80 * 2 ** 20), 9),
        'PROVENANCE_TOO_LARGE',
      ],
    ];
    const toCase = ([name, provenance, code]: [string, Buffer, string]): Case => ({
      name,
      body: pkg.bytes,
      provenance,
      codes: [code as ErrorCode],
    });
    const failures = await runCases([...cases, ...melangeCases].map(toCase));
    t.diagnostic(`${cases.length + melangeCases.length} provenance documents`);
    assert.deepEqual(failures, []);
    // The same documents attached later to a published package (PUT …/provenance).
    const putState = JSON.stringify(await snapshotState(server));
    const putFailures: string[] = [];
    for (const [name, provenance, code] of cases) {
      const res = await fetch(
        `${server.url}/api/v1/packages/main/musl/x86_64/hostile-sbom-ok/1.0-r0/provenance`,
        {
          method: 'PUT',
          headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
          body: new Uint8Array(provenance),
          signal: AbortSignal.timeout(30_000),
        },
      );
      const body = (await res.json()) as { code?: string };
      if (body.code !== code || res.status !== 422)
        putFailures.push(`PUT ${name}: got ${res.status} ${body.code}, want 422 ${code}`);
      if (JSON.stringify(await snapshotState(server)) !== putState)
        putFailures.push(`PUT ${name}: state changed`);
    }
    assert.deepEqual(putFailures, []);
    // The package with good provenance goes in: the provenance was the only fault.
    const ok = await send({ name: 'ok', body: pkg.bytes, provenance: json(good), codes: [] });
    assert.equal(ok.status, 201, ok.text);
  });
});

describe('hostile advisories over HTTP', () => {
  test('malformed advisory documents and imports: their 4xx code, nothing stored, memory bounded', async (t) => {
    const doc = (advisories: string) =>
      `schema-version: "2"\npackage:\n  name: hostile\nadvisories:\n${advisories}`;
    const event = (type: string, data = '') =>
      doc(
        `  - id: CGA-2222-2222-2222\n    aliases: [CVE-2024-0001]\n    events:\n      - timestamp: 2024-01-01T00:00:00Z\n        type: ${type}\n${data}`,
      );
    const laughs = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...'bcdefghij'.split('').map((n, i) => {
        const p = 'abcdefghij'[i]!;
        return `${n}: &${n} [${Array(9).fill(`*${p}`).join(',')}]`;
      }),
      'schema-version: "2"',
    ].join('\n');
    const cases: Array<[string, string, string, string]> = [
      ['a billion laughs (YAML aliases)', 'application/yaml', laughs, 'ADVISORY_INVALID'],
      [
        'sequences nested 100,000 deep',
        'application/yaml',
        `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        'ADVISORY_INVALID',
      ],
      [
        'JSON nested 100,000 deep',
        'application/json',
        `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        'ADVISORY_INVALID',
      ],
      [
        '1.5 MiB of YAML',
        'application/yaml',
        `${doc('')}#${'x'.repeat(1.5 * 2 ** 20)}`,
        'ADVISORY_TOO_LARGE',
      ],
      ['an unknown event type', 'application/yaml', event('exploit-published'), 'ADVISORY_INVALID'],
      [
        'a fixed version apk cannot parse',
        'application/yaml',
        event('fixed', '        data:\n          fixed-version: 1.18.-r2\n'),
        'ADVISORY_INVALID',
      ],
      [
        'a fixed version of 10,000 characters',
        'application/yaml',
        event('fixed', `        data:\n          fixed-version: 1.${'1'.repeat(10_000)}-r0\n`),
        'ADVISORY_INVALID',
      ],
      [
        'an alias with a space (feeds split on spaces)',
        'application/yaml',
        doc('  - id: CGA-2222-2222-2222\n    aliases: ["CVE-2024-0001 CVE-2024-0002"]\n    events: []\n'),
        'ADVISORY_INVALID',
      ],
      [
        'a custom YAML tag',
        'application/yaml',
        `${doc('')}\nx: !!js/function "function () {}"`,
        'ADVISORY_INVALID',
      ],
      ['duplicate keys', 'application/yaml', 'package: {name: a}\npackage: {name: b}\n', 'ADVISORY_INVALID'],
      ['schema version 3', 'application/yaml', doc('').replace('"2"', '"3"'), 'ADVISORY_INVALID'],
      ['JSON null', 'application/json', 'null', 'ADVISORY_INVALID'],
      [
        '5,001 advisories',
        'application/json',
        JSON.stringify({
          'schema-version': '2',
          package: { name: 'hostile' },
          advisories: Array.from({ length: 5001 }, (_, i) => ({
            id: `CGA-${i}`,
            events: [{ timestamp: '2024-01-01T00:00:00Z', type: 'detection', data: { type: 'manual' } }],
          })),
        }),
        'ADVISORY_INVALID',
      ],
    ];
    const baseline = JSON.stringify(await snapshotState(server));
    const failures: string[] = [];
    const { peak, before } = await peakRss(async () => {
      failures.push(...(await refuseAll('PUT', '/api/v1/repos/main/advisories/hostile', cases)));
      // The same documents in one import with a good one: nothing of it is written.
      const files = [
        {
          file: 'good.advisories.yaml',
          content: doc(
            '  - id: CGA-3333-3333-3333\n    events:\n      - {timestamp: 2024-01-01T00:00:00Z, type: detection, data: {type: manual}}\n',
          ).replace('hostile', 'good'),
        },
        ...cases
          .filter(([, type]) => type === 'application/yaml')
          .map(([, , content], i) => ({ file: `bad${i}.advisories.yaml`, content })),
      ];
      const res = await fetch(`${server.url}/api/v1/repos/main/advisories/import`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ files }),
      });
      if (res.status !== 400) failures.push(`import: got ${res.status}, want 400`);
      if (JSON.stringify(await snapshotState(server)) !== baseline) failures.push('import: state changed');
    });
    t.diagnostic(
      `${cases.length} advisory documents; peak RSS ${((peak - before) / 2 ** 20).toFixed(0)} MiB above the start`,
    );
    assert.deepEqual(failures, []);
  });
});

describe('hostile OSV records over HTTP', () => {
  test('malformed vulnerability uploads: their 4xx code, nothing stored', async () => {
    const good = {
      id: 'GHSA-good-0000-0001',
      modified: '2024-01-01T00:00:00Z',
      affected: [
        {
          package: { ecosystem: 'npm', name: 'x' },
          ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '1.0.0' }] }],
        },
      ],
    };
    const withAffected = (affected: unknown) => ({ ...good, affected });
    const cases: Array<[string, string, string]> = [
      ['not JSON', '{"id": ', 'BAD_REQUEST'],
      ['arrays nested 100,000 deep', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'ADVISORY_INVALID'],
      ['an empty array', '[]', 'ADVISORY_INVALID'],
      ['no modified time', JSON.stringify({ ...good, modified: undefined }), 'ADVISORY_INVALID'],
      [
        'a local time',
        JSON.stringify({ ...good, modified: '2024-01-01T00:00:00+02:00' }),
        'ADVISORY_INVALID',
      ],
      ['an id with a slash', JSON.stringify({ ...good, id: 'GHSA-../../etc' }), 'ADVISORY_INVALID'],
      [
        'an unknown range type',
        JSON.stringify(
          withAffected([{ ...good.affected[0], ranges: [{ type: 'MAGIC', events: [{ introduced: '0' }] }] }]),
        ),
        'ADVISORY_INVALID',
      ],
      [
        'an unknown event',
        JSON.stringify(
          withAffected([{ ...good.affected[0], ranges: [{ type: 'SEMVER', events: [{ exploded: '1' }] }] }]),
        ),
        'ADVISORY_INVALID',
      ],
      [
        'a version of 100,000 characters',
        JSON.stringify(withAffected([{ ...good.affected[0], versions: ['1'.repeat(100_000)] }])),
        'ADVISORY_INVALID',
      ],
      [
        '100,000 affected entries',
        JSON.stringify(withAffected(Array(100_000).fill(good.affected[0]))),
        'ADVISORY_INVALID',
      ],
      ['20,001 records', JSON.stringify(Array(20_001).fill(good)), 'ADVISORY_TOO_LARGE'],
      ['a good record and a bad one', JSON.stringify([good, { id: 'GHSA-bad' }]), 'ADVISORY_INVALID'],
    ];
    const json = cases.map(([name, body, code]): [string, string, string, string] => [
      name,
      'application/json',
      body,
      code,
    ]);
    assert.deepEqual(await refuseAll('POST', '/api/v1/vulnerabilities', json), []);
  });
});
