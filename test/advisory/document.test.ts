import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { latestEvent, parseAdvisoryYaml, validateAdvisoryDocument } from '../../src/advisory/document.ts';
import { renderSecdb, secfixesOf } from '../../src/advisory/secdb.ts';
import { isAppError } from '../../src/errors.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';

const WOLFI_HEADER = {
  apkurl: '{{urlprefix}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk',
  archs: ['x86_64'],
  reponame: 'os',
  urlprefix: 'https://packages.wolfi.dev',
};

/** A document with one advisory of the given events. */
const doc = (events: unknown[], extra: Record<string, unknown> = {}) => ({
  'schema-version': '2',
  package: { name: 'openssl' },
  advisories: [{ id: 'CGA-2222-3333-4444', aliases: ['CVE-2024-0001'], events, ...extra }],
});
const fixed = (timestamp: string, version: string) => ({
  timestamp,
  type: 'fixed',
  data: { 'fixed-version': version },
});

describe('advisory documents and the secdb feed against wolfictl', needsSharedFixtures, () => {
  const golden = sharedFixture('advisories', 'wolfictl-golden');

  test("the wolfictl golden input gives wolfictl's security.json, byte for byte", () => {
    const dir = `${golden}/advisories`;
    const docs = readdirSync(dir).map((f) => parseAdvisoryYaml(readFileSync(`${dir}/${f}`, 'utf8')));
    const expected = readFileSync(`${golden}/security.expected.json`);
    assert.equal(renderSecdb(WOLFI_HEADER, docs).toString(), expected.toString());
    // Input order does not matter: packages by name, advisories by id.
    assert.equal(renderSecdb(WOLFI_HEADER, docs.reverse()).toString(), expected.toString());
  });

  test('every event type of the advisory-schema v2 sample reads', () => {
    const full = parseAdvisoryYaml(
      readFileSync(
        sharedFixture('advisories', 'wolfi-advisories', 'full.advisory-schema.advisories.yaml'),
        'utf8',
      ),
    );
    assert.equal(full.package, 'full');
    const types = new Set(full.advisories[0]!.events.map((e) => e.type));
    assert.equal(types.size, 7);
    // All at one instant: the last listed decides.
    assert.equal(latestEvent(full.advisories[0]!).type, 'pending-upstream-fix');
    for (const f of ['osv-input-ko.advisories.yaml', 'osv-input-openssl.advisories.yaml']) {
      assert.ok(parseAdvisoryYaml(readFileSync(`${golden}/${f}`, 'utf8')).advisories.length > 0, f);
    }
  });
});

describe('advisory documents', () => {
  test('the latest event by time decides, whatever the order listed; ties go to the one listed last', () => {
    const parsed = validateAdvisoryDocument(
      doc([
        fixed('2024-03-01T00:00:00Z', '1.2.4-r0'),
        { timestamp: '2024-01-01T00:00:00Z', type: 'detection', data: { type: 'manual' } },
      ]),
    );
    assert.equal(latestEvent(parsed.advisories[0]!).type, 'fixed');
    assert.deepEqual([...secfixesOf(parsed)], [['1.2.4-r0', ['CVE-2024-0001']]]);
    const tie = validateAdvisoryDocument(
      doc([
        fixed('2024-03-01T00:00:00Z', '1.2.4-r0'),
        { timestamp: '2024-03-01T00:00:00Z', type: 'withdrawn' },
      ]),
    );
    assert.equal(latestEvent(tie.advisories[0]!).type, 'withdrawn');
    assert.equal(secfixesOf(tie).size, 0, 'a withdrawn advisory is not in the feed');
  });

  test('a false positive is "0"; pending, detection and true positive are not in the feed', () => {
    const fp = validateAdvisoryDocument(
      doc([
        {
          timestamp: '2024-01-01T00:00:00Z',
          type: 'false-positive-determination',
          data: { type: 'vulnerable-code-not-in-execution-path', note: 'only in tests' },
        },
      ]),
    );
    assert.deepEqual([...secfixesOf(fp)], [['0', ['CVE-2024-0001']]]);
    for (const type of ['pending-upstream-fix', 'true-positive-determination', 'fix-not-planned']) {
      assert.equal(
        secfixesOf(validateAdvisoryDocument(doc([{ timestamp: '2024-01-01T00:00:00Z', type }]))).size,
        0,
      );
    }
    // "0" sorts first, and integer-like versions stay in byte order ("10-r0" before "9-r0"), as Go writes them.
    const many = validateAdvisoryDocument({
      'schema-version': '2.0.2',
      package: { name: 'x' },
      advisories: [
        { id: 'CGA-a-1', aliases: ['CVE-1'], events: [fixed('2024-01-01T00:00:00Z', '9-r0')] },
        { id: 'CGA-a-2', aliases: ['CVE-2'], events: [fixed('2024-01-01T00:00:00Z', '10-r0')] },
        {
          id: 'CGA-a-3',
          aliases: ['CVE-3'],
          events: [
            {
              timestamp: '2024-01-01T00:00:00Z',
              type: 'false-positive-determination',
              data: { type: 'component-vulnerability-mismatch' },
            },
          ],
        },
      ],
    });
    const text = renderSecdb(WOLFI_HEADER, [many]).toString();
    assert.ok(
      text.indexOf('"0"') < text.indexOf('"10-r0"') && text.indexOf('"10-r0"') < text.indexOf('"9-r0"'),
    );
    assert.deepEqual(JSON.parse(text).packages[0].pkg.secfixes, {
      0: ['CVE-3'],
      '10-r0': ['CVE-2'],
      '9-r0': ['CVE-1'],
    });
  });

  const rejects = (json: unknown, field: RegExp | string, message?: RegExp) =>
    assert.throws(
      () => validateAdvisoryDocument(json),
      (err) =>
        isAppError(err, 'ADVISORY_INVALID') &&
        (typeof field === 'string' ? err.details?.field === field : field.test(String(err.details?.field))) &&
        (message === undefined || message.test(err.message)),
    );

  test('bad documents are refused, naming the field', () => {
    rejects(
      doc([{ timestamp: '2024-01-01T00:00:00Z', type: 'exploded' }]),
      'advisories[0].events[0].type',
      /unknown event type/,
    );
    rejects(doc([fixed('2024-01-01T00:00:00Z', '1.18.-r2')]), 'advisories[0].events[0].data.fixed-version');
    rejects(
      doc([fixed('2024-01-01T00:00:00Z', '1.2.3')]),
      'advisories[0].events[0].data.fixed-version',
      /-r4/,
    );
    rejects(doc([fixed('yesterday', '1.2.3-r0')]), 'advisories[0].events[0].timestamp');
    rejects(doc([fixed('2024-02-30T25:00:00Z', '1.2.3-r0')]), 'advisories[0].events[0].timestamp');
    rejects(doc([]), 'advisories[0].events');
    rejects(
      doc([fixed('2024-01-01T00:00:00Z', '1.2.3-r0')], { aliases: ['CVE 2024 1'] }),
      'advisories[0].aliases[0]',
    );
    rejects(
      doc([fixed('2024-01-01T00:00:00Z', '1.2.3-r0')], { aliases: ['CGA-2222-3333-4444'] }),
      'advisories[0].aliases[0]',
      /twice/,
    );
    rejects(doc([fixed('2024-01-01T00:00:00Z', '1.2.3-r0')], { extra: 1 }), 'advisories[0]');
    rejects({ ...doc([fixed('2024-01-01T00:00:00Z', '1.2.3-r0')]), 'schema-version': '3' }, 'schema-version');
    rejects(
      { package: { name: 'x' }, advisories: doc([fixed('2024-01-01T00:00:00Z', '1-r0')]).advisories },
      'schema-version',
      /version 1/,
    );
    rejects({ ...doc([]), advisories: [] }, 'advisories');
    rejects({ ...doc([]), package: { name: '../etc' } }, 'package.name');
    rejects(
      doc([
        {
          timestamp: '2024-01-01T00:00:00Z',
          type: 'detection',
          data: { type: 'manual', data: { deep: { er: 1 } } },
        },
      ]),
      /^advisories\[0\]\.events\[0\]\.data\.data/,
    );
    rejects(
      doc([
        {
          timestamp: '2024-01-01T00:00:00Z',
          type: 'false-positive-determination',
          data: { type: 'i-say-so' },
        },
      ]),
      'advisories[0].events[0].data.type',
    );
  });

  test('hostile YAML: alias bombs, deep nesting, huge documents and tags stop with a 4xx code', () => {
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
      ...Array.from({ length: 9 }, (_, i) => {
        const p = String.fromCharCode(97 + i);
        const n = String.fromCharCode(98 + i);
        return `${n}: &${n} [*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p}]`;
      }),
    ].join('\n');
    const started = performance.now();
    assert.throws(
      () => parseAdvisoryYaml(bomb),
      (err) => isAppError(err, 'ADVISORY_INVALID'),
    );
    assert.ok(performance.now() - started < 5000, 'refused before expanding 10^10 nodes');
    assert.throws(
      () => parseAdvisoryYaml(`${'['.repeat(50_000)}${']'.repeat(50_000)}`),
      (err) => isAppError(err, 'ADVISORY_INVALID'),
    );
    assert.throws(
      () =>
        parseAdvisoryYaml(
          `schema-version: "2"\npackage:\n  name: x\nadvisories: []\n#${'x'.repeat(1024 * 1024)}`,
        ),
      (err) => isAppError(err, 'ADVISORY_TOO_LARGE'),
    );
    for (const nested of [
      `${'- '.repeat(40_000)}x`,
      `${' '.repeat(300)}a: 1`,
      `a: ${'{b: '.repeat(40)}1${'}'.repeat(40)}`,
    ]) {
      assert.throws(
        () => parseAdvisoryYaml(nested),
        (err) => isAppError(err, 'ADVISORY_INVALID') && /nested|indented/.test(err.message),
      );
    }
    // Brackets, dashes and # inside quoted notes are text, not nesting.
    const quoted = parseAdvisoryYaml(
      `schema-version: "2"\npackage:\n  name: x\nadvisories:\n  - id: CGA-1\n    events:\n      - timestamp: 2024-01-01T00:00:00Z\n        type: pending-upstream-fix\n        data:\n          note: "${'[{'.repeat(40)} - - # not a comment"\n`,
    );
    assert.match(
      String((quoted.advisories[0]!.events[0]!.data as { note: string }).note),
      /# not a comment$/,
    );
    assert.throws(
      () => parseAdvisoryYaml('a: !!js/function "x"'),
      (err) => isAppError(err, 'ADVISORY_INVALID'),
    );
    assert.throws(
      () => parseAdvisoryYaml('a: 1\na: 2'),
      (err) => isAppError(err, 'ADVISORY_INVALID') && /YAML/.test(err.message),
    );
    assert.throws(
      () => parseAdvisoryYaml('{{{'),
      (err) => isAppError(err, 'ADVISORY_INVALID'),
    );
  });
});
