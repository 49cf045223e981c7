import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.ts';
import { generateRsaKey } from '../helpers/apk-builder.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { type Case, packageCases } from './corpus.ts';
import { peakRss, snapshotState } from './snapshot.ts';
import { makeApk, pkginfoLines, type Signer } from './tar.ts';

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

  test('every malformed package: its 4xx code, nothing stored, memory bounded', async () => {
    const cases = await packageCases(signer);
    assert.ok(cases.length >= 200, `${cases.length} cases`);
    const { result: failures, peak, before } = await peakRss(() => runCases(cases));
    assert.deepEqual(failures, []);
    // Bombs of 80 MiB and 2 MiB names are refused by bounds, not by buffering them.
    assert.ok(peak - before < 256 * 2 ** 20, `RSS grew by ${((peak - before) / 2 ** 20).toFixed(0)} MiB`);
    const health = await fetch(`${server.url}/readyz`);
    assert.equal(health.status, 200);
  });
});
