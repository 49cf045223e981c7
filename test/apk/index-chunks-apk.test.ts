import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ChunkedIndex } from '../../src/apk/index-chunks.ts';
import { type IndexEntry, renderIndexRecord, writeIndexFromChunks } from '../../src/apk/index-writer.ts';
import { generateRsaKey } from '../helpers/apk-builder.ts';

/**
 * apk-tools itself reads an index assembled from chunks: it verifies the
 * signature and lists every record. Needs an apk binary (APK_BIN, or
 * apk-tools 2.x built at /tmp/apk2/apk); skipped without one.
 */

const APK = [process.env.APK_BIN, '/tmp/apk2/apk'].find((p) => p && existsSync(p));
const dir = mkdtempSync(join(tmpdir(), 'reef-chunks-apk-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function entry(i: number): IndexEntry {
  const name = `chunked-${i.toString(36)}`;
  return {
    name,
    version: `1.${i % 17}-r${i % 3}`,
    arch: i % 10 === 0 ? 'noarch' : 'x86_64',
    // Fixed checksums: chunk boundaries depend on them, so the test is the same every run.
    checksum: `Q1${createHash('sha1').update(`chunked ${i}`).digest('base64')}`,
    size: 1000 + i,
    installedSize: 4096,
    description: `chunked index entry ${i}`,
    url: 'https://example.org/',
    license: 'MIT',
    origin: name,
    maintainer: '',
    builddate: 1_700_000_000,
    commit: '',
    providerPriority: undefined,
    depends: [],
    provides: [],
    installIf: [],
  };
}

function apk(root: string, keys: string, repo: string, ...args: string[]) {
  return spawnSync(
    APK!,
    ['--root', root, '--keys-dir', keys, '--repository', repo, '--arch', 'x86_64', ...args],
    {
      encoding: 'utf8',
    },
  );
}

function freshRoot(name: string): string {
  const root = join(dir, name);
  for (const d of ['etc/apk', 'lib/apk/db', 'var/cache/apk']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'lib/apk/db/installed'), '');
  writeFileSync(join(root, 'etc/apk/world'), '');
  return root;
}

test('apk-tools verifies and lists an index assembled from chunks, after updates', {
  skip: !APK && 'no apk binary',
}, async () => {
  const signer = generateRsaKey();
  const keyName = 'reef-chunks.rsa.pub';
  const records = Array.from({ length: 2000 }, (_, i) => renderIndexRecord(entry(i), 'x86_64'));
  const index = ChunkedIndex.build(records.slice(0, 1500), { averageRecords: 64, maxBytes: 64 * 1024 });
  index.update({ add: records.slice(1500), remove: records.slice(0, 300) });
  assert.ok(index.chunkCount > 5);
  const { bytes } = await writeIndexFromChunks(index, {
    description: 'reef/chunks',
    signers: [{ keyName, privateKey: signer.privateKey, algorithms: ['RSA256', 'RSA'] }],
  });
  const repo = join(dir, 'repo');
  mkdirSync(join(repo, 'x86_64'), { recursive: true });
  writeFileSync(join(repo, 'x86_64', 'APKINDEX.tar.gz'), bytes);
  const keys = join(dir, 'keys');
  mkdirSync(keys);
  writeFileSync(join(keys, keyName), signer.publicPem);

  const root = freshRoot('root');
  const update = apk(root, keys, repo, 'update');
  assert.equal(update.status, 0, update.stderr);
  assert.doesNotMatch(update.stderr, /signature|UNTRUSTED|BAD/i);
  assert.match(update.stdout, /reef\/chunks/);
  assert.match(update.stdout, /OK: 1700 distinct packages available/);
  const search = apk(root, keys, repo, 'search');
  assert.equal(search.stdout.trim().split('\n').length, 1700);

  // The same index with another key under that name: apk refuses the signature.
  const wrong = join(dir, 'wrong-keys');
  mkdirSync(wrong);
  writeFileSync(join(wrong, keyName), generateRsaKey().publicPem);
  const refused = apk(freshRoot('root2'), wrong, repo, 'update');
  assert.match(refused.stderr, /BAD signature|UNTRUSTED/);
});
