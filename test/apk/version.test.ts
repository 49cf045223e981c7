import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  assertValidVersion,
  compareVersions,
  isValidVersion,
  matchVersion,
  splitNameVersion,
  type VersionOp,
} from '../../src/apk/version.ts';
import { isAppError } from '../../src/errors.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';

type Vector =
  | { line: number; text: string; kind: 'compare'; a: string; op: VersionOp; negate: boolean; b: string }
  | { line: number; text: string; kind: 'valid'; version: string; valid: boolean };

/**
 * Parse apk-tools' version.data the way `test/unit/version_test.c` does:
 * strip `#` comments and surrounding whitespace; `a OP b` (OP may start with
 * `!` to negate) when there are two spaces, else `version` / `!version`.
 */
function readVectors(name: string): Vector[] {
  const vectors: Vector[] = [];
  const lines = readFileSync(sharedFixture('real', name), 'utf8').split('\n');
  lines.forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const text = (hash < 0 ? raw : raw.slice(0, hash)).trim();
    if (text === '') return;
    const parts = text.split(' ');
    if (parts.length === 3) {
      const [a, rawOp, b] = parts as [string, string, string];
      const negate = rawOp.startsWith('!');
      const op = (negate ? rawOp.slice(1) : rawOp) as VersionOp;
      assert.ok(['<', '>', '=', '<=', '>=', '~', '<~', '>~'].includes(op), `${name}:${i + 1}: op ${rawOp}`);
      vectors.push({ line: i + 1, text, kind: 'compare', a, op, negate, b });
    } else {
      assert.equal(parts.length, 1, `${name}:${i + 1}: unexpected line ${JSON.stringify(raw)}`);
      const invalid = text.startsWith('!');
      vectors.push({
        line: i + 1,
        text,
        kind: 'valid',
        version: invalid ? text.slice(1) : text,
        valid: !invalid,
      });
    }
  });
  return vectors;
}

function checkVectors(name: string, expectedLines: number): void {
  const vectors = readVectors(name);
  assert.equal(vectors.length, expectedLines, `${name}: every non-blank line is a vector`);
  const failures: string[] = [];
  for (const v of vectors) {
    const ok =
      v.kind === 'compare'
        ? matchVersion(v.a, v.op, v.b) !== v.negate
        : isValidVersion(v.version) === v.valid;
    if (!ok) failures.push(`${name}:${v.line}: ${v.text}`);
  }
  assert.deepEqual(failures, []);
}

describe('apk-tools version.data vectors', needsSharedFixtures, () => {
  // 785 non-blank lines in apk3 test/unit/version.data (master).
  test('master (apk 3) file holds line by line', () => checkVectors('apk-tools-master-version.data', 785));

  // apk 3 rules agree with apk 2.14 on every line of the 2.14 file (apk2 test/version.data).
  test('2.14 file holds under apk 3 rules', () => checkVectors('apk-tools-2.14-version.data', 733));

  test('comparison is antisymmetric and reflexive over all vector versions', () => {
    const versions = new Set<string>();
    for (const name of ['apk-tools-master-version.data', 'apk-tools-2.14-version.data']) {
      for (const v of readVectors(name)) {
        if (v.kind === 'compare') {
          versions.add(v.a);
          versions.add(v.b);
        } else {
          versions.add(v.version);
        }
      }
    }
    const all = [...versions];
    for (const a of all) {
      assert.equal(compareVersions(a, a), 0, a);
      for (const b of all) {
        const ab = compareVersions(a, b);
        assert.equal(ab, -compareVersions(b, a) || 0, `${a} vs ${b}`);
      }
    }
  });

  test('strict comparisons agree with compareVersions', () => {
    for (const v of readVectors('apk-tools-master-version.data')) {
      if (v.kind !== 'compare' || v.negate || !['<', '>', '='].includes(v.op)) continue;
      const expected = v.op === '<' ? -1 : v.op === '>' ? 1 : 0;
      assert.equal(compareVersions(v.a, v.b), expected, v.text);
    }
  });
});

describe('compareVersions', () => {
  test('suffix and revision order derived from apk3 src/version.c', () => {
    const ordered = [
      '1.0_alpha',
      '1.0_beta',
      '1.0_pre1',
      '1.0_rc1',
      '1.0',
      '1.0-r1',
      '1.0_cvs1',
      '1.0_svn1',
      '1.0_git20240101',
      '1.0_hg1',
      '1.0_p1',
      '1.0a',
      '1.0.1',
    ];
    for (let i = 0; i + 1 < ordered.length; i++) {
      assert.equal(compareVersions(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    }
    const shuffled = [...ordered].reverse();
    shuffled.sort(compareVersions);
    assert.deepEqual(shuffled, ordered);
    assert.equal(compareVersions('1.0', '1.0-r0'), -1);
  });

  test('leading zeros compare as text, others numerically (apk3 src/version.c; apk2 differs)', () => {
    assert.equal(compareVersions('8.2.0', '8.2.001'), -1);
    assert.equal(compareVersions('8.2.0015', '8.2.002'), -1);
    assert.equal(compareVersions('1.10', '1.9'), 1);
    assert.equal(compareVersions('1.01', '1.1'), -1);
    // INITIAL_DIGIT, suffix and revision numbers are numeric even with leading zeros.
    assert.equal(compareVersions('01.0', '1.0'), 0);
    assert.equal(compareVersions('1.0_p010', '1.0_p10'), 0);
    assert.equal(compareVersions('1.0-r010', '1.0-r9'), 1);
  });

  test('numbers beyond 64 bits do not overflow', () => {
    assert.equal(compareVersions('18446744073709551616', '18446744073709551615'), 1);
    assert.equal(compareVersions('1.99999999999999999999999', '1.99999999999999999999998'), 1);
    assert.equal(compareVersions('1.0-r100000000000000000000', '1.0-r99999999999999999999'), 1);
    assert.equal(compareVersions('1_pre0000000000000000000000000002', '1_pre3'), -1);
  });

  test('commit hashes compare as text; a hash outranks a revision at the same place', () => {
    assert.equal(compareVersions('1.0~abc', '1.0~abd'), -1);
    assert.equal(compareVersions('1.0~ab', '1.0~abc'), -1);
    assert.equal(compareVersions('1.0', '1.0~abc'), -1);
    // apk3 `apk_version_compare_fuzzy`: of two kinds, the higher-ranked one is
    // smaller: END > REVISION_NO > COMMIT_HASH > SUFFIX.
    assert.equal(compareVersions('1.0-r0', '1.0~abc'), -1);
    assert.equal(compareVersions('1.0~abc', '1.0_p1'), -1);
  });
});

describe('matchVersion', () => {
  test('fuzzy operators are prefix matches (apk3 src/version.c `apk_version_match`)', () => {
    assert.equal(matchVersion('3.6.9', '~', '3.6'), true);
    assert.equal(matchVersion('3.8', '~', '3.8.1'), false);
    assert.equal(matchVersion('3.6.9', '<~', '3.6'), true);
    assert.equal(matchVersion('3.5', '<~', '3.6'), true);
    assert.equal(matchVersion('3.7', '<~', '3.6'), false);
    assert.equal(matchVersion('3.6.9', '>~', '3.6'), true);
    assert.equal(matchVersion('3.5', '>~', '3.6'), false);
  });

  test('plain operators', () => {
    assert.equal(matchVersion('1.0-r1', '>=', '1.0'), true);
    assert.equal(matchVersion('1.0', '>=', '1.0'), true);
    assert.equal(matchVersion('1.0', '<=', '1.0-r0'), true);
    assert.equal(matchVersion('1.0', '=', '1.0-r0'), false);
    assert.equal(matchVersion('1.0.1', '=', '1.0'), false);
    assert.equal(matchVersion('2', '>', '1.9'), true);
    assert.equal(matchVersion('2', '<', '1.9'), false);
  });
});

describe('isValidVersion', () => {
  test('grammar edge cases', () => {
    for (const v of ['0', '1.2.3', '1.0a', '1.0_p1', '1.0_rc1_p2', '1.0~0a1b-r3', '20240101', '1.0-r0']) {
      assert.equal(isValidVersion(v), true, v);
    }
    for (const v of [
      '1.',
      '1..2',
      '1.0-',
      '1.0-r1a',
      '1.0~ABC',
      '1.0~abc~def',
      'v1.0',
      '1.0 ',
      ' 1.0',
      '1.0_P1',
    ]) {
      assert.equal(isValidVersion(v), false, v);
    }
  });
});

describe('splitNameVersion', () => {
  test('splits at the last dash followed by a digit', () => {
    assert.deepEqual(splitNameVersion('py3-foo-1.2-r0'), { name: 'py3-foo', version: '1.2-r0' });
    assert.deepEqual(splitNameVersion('lua5.1-bit32-26-r1'), { name: 'lua5.1-bit32', version: '26-r1' });
    assert.deepEqual(splitNameVersion('musl-1.2.5-r0'), { name: 'musl', version: '1.2.5-r0' });
    assert.deepEqual(splitNameVersion('a-1'), { name: 'a', version: '1' });
  });

  test('null without a name or a version', () => {
    assert.equal(splitNameVersion('busybox'), null);
    assert.equal(splitNameVersion('foo-bar-'), null);
    assert.equal(splitNameVersion('-1.0'), null);
    assert.equal(splitNameVersion(''), null);
  });
});

describe('assertValidVersion', () => {
  test('passes valid versions and throws APK_INVALID_VERSION naming the value', () => {
    assertValidVersion('1.2.3-r4', 'pkgver');
    assert.throws(
      () => assertValidVersion('1.0-beta', 'pkgver'),
      (err) => isAppError(err, 'APK_INVALID_VERSION') && err.message.includes('1.0-beta'),
    );
  });
});
