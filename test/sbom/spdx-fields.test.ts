import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createIdAllocator, normalizeDate, parseAgent, spdxIdPart } from '../../src/sbom/spdx-fields.ts';

test('SPDX field syntax: ids, dates, agents', () => {
  assert.equal(spdxIdPart('so:libc.musl-x86_64.so.1'), 'so-libc.musl-x86-64.so.1');
  const allocate = createIdAllocator();
  assert.deepEqual(['SPDXRef-DOCUMENT', 'SPDXRef-a', 'SPDXRef-a'].map(allocate), [
    'SPDXRef-DOCUMENT-2',
    'SPDXRef-a',
    'SPDXRef-a-2',
  ]);
  assert.equal(normalizeDate('1969-12-31T18:00:00-06:00'), '1970-01-01T00:00:00Z');
  assert.equal(normalizeDate('2024-05-01T12:30:00.123Z'), '2024-05-01T12:30:00Z');
  assert.equal(normalizeDate('0001-01-01T00:00:00Z'), '0001-01-01T00:00:00Z');
  assert.equal(normalizeDate('soon'), undefined);
  assert.deepEqual(parseAgent('Organization: Chainguard, Inc'), {
    kind: 'Organization',
    name: 'Chainguard, Inc',
  });
  assert.deepEqual(parseAgent('Person: Jane (jane@example.org)'), {
    kind: 'Person',
    name: 'Jane (jane@example.org)',
  });
  assert.equal(parseAgent('Wolfi'), undefined);
});
