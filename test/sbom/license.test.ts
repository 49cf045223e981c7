import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cdxLicenseExpression,
  createLicenseTable,
  isLicenseExpression,
  licenseRefId,
  licenseRefsIn,
} from '../../src/sbom/license.ts';

describe('SPDX licence expressions', () => {
  test('valid and invalid expressions', () => {
    for (const e of [
      'MIT',
      'GPL-2.0-only OR MIT',
      '(MIT OR Apache-2.0) AND BSD-3-Clause',
      'Apache-2.0 WITH LLVM-exception',
      'LicenseRef-acme AND MIT',
      'DocumentRef-other:LicenseRef-x',
    ]) {
      assert.ok(isLicenseExpression(e), e);
    }
    for (const e of ['', 'custom', 'MIT and BSD', 'GPL v2', 'mit', '(MIT'])
      assert.ok(!isLicenseExpression(e), e);
  });

  test('SECURITY: deep parentheses are not parsed (the parser recurses per level)', () => {
    const deep = `${'('.repeat(100_000)}MIT${')'.repeat(100_000)}`;
    assert.equal(isLicenseExpression(deep), false);
  });

  test('LicenseRefs used by an expression, and ids made from text', () => {
    assert.deepEqual(licenseRefsIn('LicenseRef-b AND (MIT OR LicenseRef-a) AND DocumentRef-d:LicenseRef-c'), [
      'LicenseRef-a',
      'LicenseRef-b',
    ]);
    assert.equal(
      licenseRefId('custom: Acme/Public License 2.0'),
      'LicenseRef-custom-Acme-Public-License-2.0',
    );
    assert.equal(licenseRefId('!!!'), 'LicenseRef-unknown');
  });

  test('a licence table defines every LicenseRef a document uses, numbering clashes', () => {
    const table = createLicenseTable([{ licenseId: 'LicenseRef-known', extractedText: 'the known text' }]);
    assert.equal(table.expressionFor('MIT'), 'MIT');
    assert.equal(table.expressionFor('GPL v2'), 'LicenseRef-GPL-v2');
    assert.equal(table.expressionFor('GPL-v2'), 'LicenseRef-GPL-v2-2', 'another text, another id');
    assert.equal(table.expressionFor('GPL v2'), 'LicenseRef-GPL-v2', 'the same text, the same id');
    assert.equal(
      table.expressionFor('LicenseRef-known OR LicenseRef-new'),
      'LicenseRef-known OR LicenseRef-new',
    );
    assert.deepEqual(
      table.entries().map((e) => [e.licenseId, e.extractedText]),
      [
        ['LicenseRef-GPL-v2', 'GPL v2'],
        ['LicenseRef-GPL-v2-2', 'GPL-v2'],
        ['LicenseRef-known', 'the known text'],
        [
          'LicenseRef-new',
          'The licence text was not available to reef; the licence is known only by this identifier.',
        ],
      ],
    );
  });

  test('CycloneDX licence choices as one expression', () => {
    assert.deepEqual(
      cdxLicenseExpression([{ expression: 'MIT OR Apache-2.0', acknowledgement: 'concluded' }]),
      {
        expression: 'MIT OR Apache-2.0',
        acknowledgement: 'concluded',
      },
    );
    assert.deepEqual(
      cdxLicenseExpression([
        { license: { id: 'MIT' } },
        {
          license: {
            name: 'Acme EULA',
            text: { content: Buffer.from('All yours').toString('base64'), encoding: 'base64' },
          },
        },
      ]),
      { expression: 'MIT AND LicenseRef-Acme-EULA', acknowledgement: undefined },
    );
    const table = createLicenseTable();
    cdxLicenseExpression([{ license: { name: 'Acme EULA', text: { content: 'All yours' } } }], table);
    assert.deepEqual(table.entries()[0]!.extractedText, 'All yours');
    assert.equal(cdxLicenseExpression([]), undefined);
    assert.equal(cdxLicenseExpression(undefined), undefined);
  });
});
