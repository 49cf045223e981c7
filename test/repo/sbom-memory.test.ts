import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../../src/errors.ts';
import { SbomMemory } from '../../src/repo/sbom-memory.ts';

test('holds take from one budget; past it, SBOM_BUSY with a retry time; release gives back once', () => {
  const memory = new SbomMemory(100);
  const a = memory.hold();
  const b = memory.hold();
  a.take(60);
  a.take(10);
  assert.equal(memory.inUse, 70);
  assert.throws(
    () => b.take(31),
    (err) =>
      isAppError(err, 'SBOM_BUSY') &&
      typeof err.details?.retryAfterSeconds === 'number' &&
      err.details.retryAfterSeconds > 0,
  );
  assert.equal(memory.inUse, 70, 'a refused take holds nothing');
  b.take(30);
  assert.equal(memory.inUse, 100);
  a.release();
  a.release();
  assert.equal(memory.inUse, 30);
  b.release();
  assert.equal(memory.inUse, 0);
});
