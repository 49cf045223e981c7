import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cdxHashAlgorithm, spdxChecksumAlgorithm } from '../../src/sbom/checksum.ts';

test('checksum names: SPDX ⇄ CycloneDX', () => {
  assert.equal(cdxHashAlgorithm('SHA256'), 'SHA-256');
  assert.equal(cdxHashAlgorithm('SHA3-256'), 'SHA3-256');
  assert.equal(cdxHashAlgorithm('SHA224'), undefined);
  assert.equal(spdxChecksumAlgorithm('SHA-1'), 'SHA1');
  assert.equal(spdxChecksumAlgorithm('BLAKE2b-512'), 'BLAKE2b-512');
  assert.equal(spdxChecksumAlgorithm('SHA-224'), undefined);
});
