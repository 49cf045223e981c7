import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { evaluate, type OsvAffected, parseOsvRecord, purlKey } from '../../src/advisory/osv-match.ts';
import { isAppError } from '../../src/errors.ts';

const affected = (ecosystem: string, name: string, type: string, events: object[], extra = {}): OsvAffected =>
  ({ package: { ecosystem, name }, ranges: [{ type, events }], ...extra }) as OsvAffected;
const fixedAt = (ecosystem: string, version: string, type = 'ECOSYSTEM') =>
  affected(ecosystem, 'x', type, [{ introduced: '0' }, { fixed: version }]);

describe('OSV ranges, compared as each ecosystem compares versions', () => {
  test('a fixed version just above is affected, at or below it is not (SEMVER, Go with its v, npm)', () => {
    assert.equal(evaluate(fixedAt('npm', '4.17.21', 'SEMVER'), '4.17.20').result, 'affected');
    assert.equal(evaluate(fixedAt('npm', '4.17.21', 'SEMVER'), '4.17.21').result, 'unaffected');
    assert.equal(evaluate(fixedAt('npm', '4.17.21'), '4.17.22').result, 'unaffected');
    assert.equal(evaluate(fixedAt('Go', '1.9.1'), 'v1.9.0').result, 'affected');
    assert.equal(
      evaluate(fixedAt('Go', 'v1.9.1'), 'v1.10.0').result,
      'unaffected',
      '1.10 > 1.9, not by text',
    );
    assert.equal(evaluate(fixedAt('Go', '1.9.1'), 'v0.0.0-20230101000000-abcdef123456').result, 'affected');
    assert.equal(evaluate(fixedAt('crates.io', '1.0.0'), '1.0.0-rc.1').result, 'affected');
  });

  test("PyPI by PEP 440, apk distributions by apk's order", () => {
    assert.equal(evaluate(fixedAt('PyPI', '2.31.0'), '2.30.0').result, 'affected');
    assert.equal(
      evaluate(fixedAt('PyPI', '2.31.0'), '2.31.0rc1').result,
      'affected',
      'a release candidate is before',
    );
    assert.equal(evaluate(fixedAt('PyPI', '2.31'), '2.31.0').result, 'unaffected', '2.31 == 2.31.0');
    assert.equal(evaluate(fixedAt('PyPI', '2.31.0'), '2.31.0.post1').result, 'unaffected');
    assert.equal(evaluate(fixedAt('Wolfi', '2.1.3-r8'), '2.1.3-r7').result, 'affected');
    assert.equal(evaluate(fixedAt('Wolfi', '2.1.3-r7'), '2.1.3-r7').result, 'unaffected');
    assert.equal(evaluate(fixedAt('Alpine:v3.20', '1.2.10-r0'), '1.2.9_git20240101-r0').result, 'affected');
    assert.equal(
      evaluate(fixedAt('Alpine:v3.20', '1.5.1'), '1.5.1-r0').result,
      'unaffected',
      'apk: 1.5.1 < 1.5.1-r0',
    );
  });

  test('several introduced/fixed pairs, last_affected, listed versions and the false-positive encoding', () => {
    const twoWindows = affected('npm', 'x', 'SEMVER', [
      { introduced: '1.0.0' },
      { fixed: '1.2.0' },
      { introduced: '2.0.0' },
      { last_affected: '2.3.0' },
    ]);
    for (const [v, want] of [
      ['0.9.0', 'unaffected'],
      ['1.1.0', 'affected'],
      ['1.2.0', 'unaffected'],
      ['2.3.0', 'affected'],
      ['2.3.1', 'unaffected'],
    ] as const) {
      assert.equal(evaluate(twoWindows, v).result, want, v);
    }
    const listed = { package: { ecosystem: 'Maven', name: 'g:a' }, versions: ['2.14.1'] } as OsvAffected;
    assert.equal(evaluate(listed, '2.14.1').result, 'affected');
    // Chainguard's false positive: introduced 0, fixed 0.
    assert.equal(
      evaluate(affected('Wolfi', 'x', 'ECOSYSTEM', [{ introduced: '0' }, { fixed: '0' }]), '1.0-r0').result,
      'unaffected',
    );
  });

  test('what reef cannot compare is "not evaluated", never unaffected', () => {
    const maven = evaluate(fixedAt('Maven', '2.15.0'), '2.14.1');
    assert.equal(maven.result, 'not_evaluated');
    assert.match(maven.result === 'not_evaluated' ? maven.reason : '', /Maven/);
    assert.equal(evaluate(fixedAt('npm', '1.0.0'), 'not.a.version').result, 'not_evaluated');
    assert.equal(evaluate(fixedAt('Wolfi', '1.0-r1'), '1.0-rX').result, 'not_evaluated');
    assert.equal(evaluate(fixedAt('npm', '1.0.0'), undefined).result, 'not_evaluated');
    assert.equal(
      evaluate(fixedAt('npm', 'garbage'), '1.0.0').result,
      'not_evaluated',
      'a range reef cannot read',
    );
    assert.equal(
      evaluate(affected('Go', 'x', 'GIT', [{ introduced: 'abc' }]), '1.0.0').result,
      'not_evaluated',
    );
  });

  test('the versionless purl components are found by', () => {
    const key = (ecosystem: string, name: string, purl?: string) =>
      purlKey({ package: { ecosystem, name, ...(purl ? { purl } : {}) } } as OsvAffected);
    assert.equal(key('Go', 'github.com/gin-gonic/gin'), 'pkg:golang/github.com/gin-gonic/gin');
    assert.equal(key('npm', '@babel/core'), 'pkg:npm/%40babel/core');
    assert.equal(key('PyPI', 'Django_Rest.Framework'), 'pkg:pypi/django-rest-framework');
    assert.equal(
      key('Maven', 'org.apache.logging.log4j:log4j-core'),
      'pkg:maven/org.apache.logging.log4j/log4j-core',
    );
    assert.equal(key('npm', 'x', 'pkg:npm/lodash@4.17.20?foo=bar'), 'pkg:npm/lodash');
    assert.equal(key('Bitnami', 'x'), undefined);
  });

  test('uploaded records are checked field by field', () => {
    assert.throws(
      () => parseOsvRecord({ id: 'GHSA-1', affected: [] }, 'record'),
      (err) => isAppError(err, 'ADVISORY_INVALID') && err.details?.field === 'modified',
    );
    assert.throws(
      () =>
        parseOsvRecord(
          {
            id: 'GHSA-1',
            modified: '2024-01-01T00:00:00Z',
            affected: [
              {
                package: { ecosystem: 'npm', name: 'x' },
                ranges: [{ type: 'SEMVER', events: [{ explode: '1' }] }],
              },
            ],
          },
          '[3]',
        ),
      (err) =>
        isAppError(err, 'ADVISORY_INVALID') &&
        /^\[3\]\.affected\[0\]\.ranges\[0\]\.events\[0\]/.test(err.message),
    );
  });
});
