import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WriteProbe } from '../../src/store/write-probe.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-probe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the write probe answers from a real write, keeps its answer a while, and leaves no file', async () => {
  const folder = join(dir, 'tmp');
  const probe = new WriteProbe(folder, 300);
  // No folder to write in: not writable (an errno other than read-only or full is not hidden).
  const missing = await probe.check();
  assert.equal(missing?.code, 'INTERNAL');
  assert.match(missing?.message ?? '', /ENOENT/);
  mkdirSync(folder);
  assert.equal((await probe.check())?.code, 'INTERNAL', 'the last answer holds for the ttl');
  await sleep(350);
  const [a, b] = await Promise.all([probe.check(), probe.check()]);
  assert.equal(a, undefined);
  assert.equal(b, undefined);
  assert.deepEqual(readdirSync(folder), []);
});
