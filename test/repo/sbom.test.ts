import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type ApkFile, type ApkPackage, readApk } from '../../src/apk/read-apk.ts';
import { prepareSbom } from '../../src/repo/sbom.ts';
import { SbomParser } from '../../src/repo/sbom-parser.ts';
import { generateSpdx } from '../../src/sbom/generate.ts';
import { parseSbomDocument } from '../../src/sbom/parse.ts';
import { DiskBlobStore } from '../../src/store/blob-store.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { apkFile, spdxInputOf } from '../sbom/sbom-fixtures.ts';

const NAMESPACE = 'https://reef.example/spdxdocs';
const NOW = new Date(0);
const parser = new SbomParser();
after(() => parser.close());

async function withBlobs(fn: (blobs: DiskBlobStore, dir: string) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'reef-repo-sbom-'));
  try {
    const blobs = new DiskBlobStore(dir);
    await blobs.init();
    await fn(blobs, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const treeOf = (apk: ApkPackage) =>
  generateSpdx(
    spdxInputOf(apk, {
      created: apk.pkginfo.builddate ? new Date(apk.pkginfo.builddate * 1000) : NOW,
      namespaceBase: NAMESPACE,
    }),
  );

/** A package without an SBOM of its own, with `count` more files. */
async function manyFiles(count: number, nameLength: number): Promise<ApkPackage> {
  const apk = await readApk(
    chunked(
      await buildApk({
        name: 'alpine-base',
        version: '3.12.0-r0',
        depends: ['alpine-baselayout', 'alpine-conf'],
        files: [
          { name: 'etc', type: 'directory' },
          { name: 'etc/alpine-release', content: '3.12.0\n' },
          { name: 'etc/os-release', content: 'NAME="Alpine Linux"\n' },
        ],
      }),
    ),
  );
  assert.ok(!apk.sbom);
  const extra: ApkFile[] = Array.from({ length: count }, (_, i) =>
    apkFile(`usr/share/${String(i).padStart(nameLength, 'x')}`, {
      sha1: createHash('sha1').update(String(i)).digest('hex'),
    }),
  );
  return { ...apk, files: [...apk.files, ...extra] };
}

const tempFiles = (dir: string) => readdirSync(join(dir, 'tmp'));

/** The SBOM reef prepares for a package of main/musl that sent none. */
const generated = (apk: ApkPackage, blobs: DiskBlobStore) =>
  prepareSbom({
    repo: 'main',
    libc: 'musl',
    apk,
    uploaded: undefined,
    namespaceBase: NAMESPACE,
    now: NOW,
    blobs,
    parser,
  });

describe('prepareSbom for a package without an SBOM', () => {
  test('the generated document is streamed into its blob: the bytes and components of the whole tree', async () => {
    const apk = await manyFiles(3000, 1);
    await withBlobs(async (blobs, dir) => {
      const prepared = await generated(apk, blobs);
      const tree = treeOf(apk);
      const expected = Buffer.from(`${JSON.stringify(tree, null, 2)}\n`);
      assert.equal(prepared.source, 'generated');
      assert.equal(prepared.size, expected.length);
      assert.equal(prepared.sha256, createHash('sha256').update(expected).digest('hex'));
      assert.deepEqual(prepared.parsed.components, parseSbomDocument(tree).components);
      await prepared.store(blobs);
      assert.deepEqual(await blobs.readAll(prepared.sha256), expected);
      assert.deepEqual(tempFiles(dir), []);
    });
  });

  test('discard before store leaves no temp blob and no blob', async () => {
    const apk = await manyFiles(10, 1);
    await withBlobs(async (blobs, dir) => {
      const prepared = await generated(apk, blobs);
      assert.equal(tempFiles(dir).length, 1);
      await prepared.discard();
      assert.deepEqual(tempFiles(dir), []);
      assert.equal(await blobs.has(prepared.sha256), false);
    });
  });

  test('the limit on sent documents does not apply: reef describes every package it accepts', async () => {
    // ~45,000 files with long names: over 16 MiB of SPDX text, streamed to its blob.
    const apk = await manyFiles(45_000, 300);
    await withBlobs(async (blobs, dir) => {
      const prepared = await generated(apk, blobs);
      assert.ok(prepared.size > 16 * 2 ** 20, String(prepared.size));
      const extra = prepared.parsed.components.filter((c) => c.name.includes('usr/share/xx'));
      assert.equal(extra.length, 45_000);
      await prepared.store(blobs);
      assert.equal(await blobs.size(prepared.sha256), prepared.size);
      assert.deepEqual(tempFiles(dir), []);
    });
  });
});
