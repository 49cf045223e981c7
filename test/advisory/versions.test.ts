import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { validateAdvisoryDocument } from '../../src/advisory/document.ts';
import { compareVersions, isValidVersion } from '../../src/apk/version.ts';
import { isAppError } from '../../src/errors.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';

/**
 * Advisory versions are apk versions, compared as apk-tools compares them.
 * The vectors here are the scanners' (go-apk-version, used by Trivy and
 * Grype; osv-scalibr, used by osv-scanner) and osv.dev's lists of secdb
 * versions seen valid and invalid in Alpine's data (fixtures/advisories/
 * apk-version). Where two valid versions are compared, reef must agree with
 * the scanners; where a version is invalid, reef refuses it in an advisory.
 */
const file = (name: string) => readFileSync(sharedFixture('advisories', 'apk-version', name), 'utf8');

/** `a op b` lines, `#` comments dropped. */
function comparisons(text: string): Array<{ line: number; a: string; op: string; b: string }> {
  const out: Array<{ line: number; a: string; op: string; b: string }> = [];
  text.split('\n').forEach((raw, i) => {
    const body = raw.replace(/#.*/, '').trim();
    const m = /^(\S+)\s+([<>=])\s+(\S+)$/.exec(body);
    if (m) out.push({ line: i + 1, a: m[1]!, op: m[2]!, b: m[3]! });
  });
  return out;
}

const list = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);

const expected = { '<': -1, '=': 0, '>': 1 } as const;

const withFixed = (version: string) => ({
  'schema-version': '2',
  package: { name: 'p' },
  advisories: [
    {
      id: 'CGA-2222-2222-2222',
      aliases: ['CVE-2024-1'],
      events: [{ timestamp: '2024-01-01T00:00:00Z', type: 'fixed', data: { 'fixed-version': version } }],
    },
  ],
});

describe("advisory versions against the scanners' apk version vectors", needsSharedFixtures, () => {
  for (const name of ['version.data.go-apk-version.txt', 'alpine-versions.osv-scalibr.txt']) {
    test(`${name}: every comparison of two valid versions agrees`, () => {
      const vectors = comparisons(file(name));
      const valid = vectors.filter((v) => isValidVersion(v.a) && isValidVersion(v.b));
      assert.ok(
        valid.length > 300,
        `${valid.length} of ${vectors.length} comparisons are between valid versions`,
      );
      const wrong = valid.filter(
        (v) => compareVersions(v.a, v.b) !== expected[v.op as keyof typeof expected],
      );
      assert.deepEqual(
        wrong.map((v) => `line ${v.line}: ${v.a} ${v.op} ${v.b}, reef says ${compareVersions(v.a, v.b)}`),
        [],
      );
    });
  }

  test("osv.dev's valid secdb versions are fixed versions where apk 3 reads them; its invalid ones are refused", () => {
    const valid = list(file('secdb-valid-versions.osv-dev.txt'));
    assert.ok(valid.length > 150);
    // osv.dev's parser takes these; apk-tools 3.0.6 refuses each (`apk version -c`, exit 1,
    // checked by hand), and so does reef, which follows apk 3 (apk3 src/version.c).
    const apk3Refuses = [
      '6.6.2p1-r0',
      '6.6.4p1-r2',
      '16.6.4p1-r1',
      '3.3.3p1-r3',
      '6.7.1p1-r1',
      '10.2.22.r0',
      '10.2.24.r0',
      '0.8.21.r2',
    ];
    assert.deepEqual(
      valid.filter((v) => !isValidVersion(v)),
      apk3Refuses,
    );
    for (const version of valid.filter((v) => isValidVersion(v) && /-r\d+$/.test(v))) {
      validateAdvisoryDocument(withFixed(version));
    }
    const invalid = [...list(file('secdb-invalid-versions.osv-dev.txt')), ...apk3Refuses];
    assert.ok(invalid.length >= 18);
    for (const version of invalid) {
      assert.throws(
        () => validateAdvisoryDocument(withFixed(version)),
        (err) =>
          isAppError(err, 'ADVISORY_INVALID') &&
          err.details?.field === 'advisories[0].events[0].data.fixed-version',
        version,
      );
    }
  });
});
