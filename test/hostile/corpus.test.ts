import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.ts';
import { generateRsaKey } from '../helpers/apk-builder.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { type Case, packageCases, type SbomCase, sbomCases } from './corpus.ts';
import { peakRss, snapshotState } from './snapshot.ts';
import { makeApk, pkginfoLines, type Signer, tar } from './tar.ts';

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
  if (c.sbom) {
    const form = new FormData();
    form.set('package', new Blob([new Uint8Array(c.body)]), 'package.apk');
    form.set('sbom', new Blob([new Uint8Array(c.sbom)]), 'sbom.json');
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
  const baseline = JSON.stringify(snapshotState(server));
  const failures: string[] = [];
  for (const c of cases) {
    const r = await send(c, path);
    const expected = c.codes.map((code) => STATUS_OF_KIND[ERROR_CODES[code]]);
    if (!c.codes.includes(r.code as ErrorCode) || !expected.includes(r.status)) {
      failures.push(
        `${c.name}: got ${r.status} ${r.code ?? r.text.slice(0, 200)}, want ${c.codes.length > 3 ? 'a malformed-package code' : c.codes.join('|')}`,
      );
    }
    if (JSON.stringify(snapshotState(server)) !== baseline) {
      failures.push(`${c.name}: the data folder or database changed`);
      break;
    }
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
    cases.push({
      name: 'an embedded SBOM of 17 MiB',
      body: embedding(Buffer.concat([targetDoc, Buffer.alloc(17 * 2 ** 20, 0x20)])),
      codes: ['SBOM_TOO_LARGE'],
    });
    cases.push({
      name: 'an embedded SBOM of 40 MiB',
      body: embedding(Buffer.concat([targetDoc, Buffer.alloc(40 * 2 ** 20, 0x20)])),
      codes: ['APK_SBOM_TOO_LARGE'],
    });
    assert.deepEqual(await runCases(cases), []);
  });

  test('attached later (PUT …/sbom): its code, nothing stored', async () => {
    const baseline = JSON.stringify(snapshotState(server));
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
      if (JSON.stringify(snapshotState(server)) !== baseline) failures.push(`${c.name}: state changed`);
    }
    assert.deepEqual(failures, []);
  });

  test('a 17 MiB SBOM attached later is SBOM_TOO_LARGE', {
    todo: "src/http/routes/sbom.ts lets fastify's bodyLimit answer: 413 PUBLISH_TOO_LARGE",
  }, async () => {
    const res = await fetch(`${server.url}${okPath}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: new Uint8Array(17 * 2 ** 20).fill(0x20),
    });
    const body = (await res.json()) as { code?: string };
    assert.deepEqual([res.status, body.code], [422, 'SBOM_TOO_LARGE']);
  });

  test('an SBOM sent as a 17 MiB text field (not a file part) is SBOM_TOO_LARGE', {
    todo: 'src/http/routes/packages.ts: busboy cuts the field at 16 MiB and flags valueTruncated, which is not checked, so the cut text is SBOM_INVALID_JSON',
  }, async () => {
    const form = new FormData();
    form.set('sbom', ' '.repeat(17 * 2 ** 20));
    form.set('package', new Blob([new Uint8Array(makeApk({ signer, pkginfo: target }).bytes)]), 'p.apk');
    const before = JSON.stringify(snapshotState(server));
    const res = await fetch(`${server.url}/api/v1/repos/main/musl/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
      body: form,
    });
    const body = (await res.json()) as { code?: string };
    assert.equal(JSON.stringify(snapshotState(server)), before);
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
