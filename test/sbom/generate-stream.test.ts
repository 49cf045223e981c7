import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { PkgInfo } from '../../src/apk/pkginfo.ts';
import type { ApkFile } from '../../src/apk/read-apk.ts';
import { isAppError } from '../../src/errors.ts';
import {
  type GenerateInput,
  generateSpdx,
  generateSpdxParts,
  spdxJsonText,
} from '../../src/sbom/generate.ts';
import { parseGeneratedSpdx, parseSbomDocument } from '../../src/sbom/parse.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';
import { apkFile, fixturePackages, spdxInputOf } from './sbom-fixtures.ts';

/**
 * The generated SBOM is written and checked in pieces (issue 7); these tests
 * hold the pieces to the whole tree: the same bytes as JSON.stringify of it,
 * the same components and describes as parseSbomDocument of it.
 */

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

function treeText(input: GenerateInput): string {
  return `${JSON.stringify(generateSpdx(input), null, 2)}\n`;
}

function streamedText(input: GenerateInput): string {
  return [...spdxJsonText(generateSpdxParts(input))].join('');
}

/** Streamed bytes, components and describes equal the whole tree's, for windows of several sizes. */
function assertSameAsTree(input: GenerateInput, what: string) {
  const text = streamedText(input);
  assert.equal(text, treeText(input), what);
  const whole = parseSbomDocument(generateSpdx(input));
  for (const windowFiles of [1, 7, 1000]) {
    const parsed = parseGeneratedSpdx(generateSpdxParts(input), windowFiles);
    assert.deepEqual(parsed.components, whole.components, `${what}, windows of ${windowFiles}`);
    assert.deepEqual(parsed.describes, whole.describes, `${what}, windows of ${windowFiles}`);
    assert.equal(parsed.specVersion, whole.specVersion);
  }
  return text;
}

const pkginfo = (extra: Partial<PkgInfo> = {}): PkgInfo => ({
  name: 'demo',
  version: '1.0-r0',
  arch: 'x86_64',
  installedSize: 0,
  datahash: 'a'.repeat(64),
  description: 'a "quoted"\\ description\nover two lines, ünïcødé ☃',
  url: 'https://example.org/"demo"',
  license: 'MIT AND custom',
  origin: 'demo',
  maintainer: 'Jöhn "Q" Doe <john@example.org>',
  builddate: 1_700_000_000,
  commit: 'c'.repeat(40),
  packager: '',
  providerPriority: undefined,
  replacesPriority: undefined,
  depends: ['so:libc.musl-x86_64.so.1', 'libfoo>=1', 'libfoo<2', '!conflict'],
  provides: ['cmd:demo=1.0-r0', 'so:libdemo.so.1=1'],
  installIf: [],
  replaces: [],
  triggers: [],
  fields: [],
  ...extra,
});

const HOSTILE = [
  'quote"d',
  'back\\slash',
  'new\nline',
  'tab\there',
  'nul\u0000byte',
  'ünïcødé/☃/𝄞',
  '../../etc/passwd',
  './a/../b',
  '//double//slash',
  '\u2028line separator\u2029',
  '"], "files": [',
  ' leading space',
];

/** Thousands of files with hostile names, symlinks, hard links and entries without a SHA-1. */
function hostileFiles(count: number): ApkFile[] {
  const files: ApkFile[] = [];
  for (let i = 0; i < count; i++) {
    const name = `usr/share/${HOSTILE[i % HOSTILE.length]}/${i}`;
    if (i % 97 === 0)
      files.push(apkFile(name)); // no SHA-1: named in the comment, not listed
    else if (i % 11 === 0) {
      const target = `../${HOSTILE[(i + 3) % HOSTILE.length]}`;
      files.push(apkFile(name, { type: 'symlink', linkTarget: target, sha1: sha1(target) }));
    } else if (i % 13 === 0) {
      files.push(apkFile(name, { type: 'hardlink', linkTarget: files[i - 1]!.name }));
    } else files.push(apkFile(name, { sha1: sha1(name).toUpperCase() }));
    if (i % 5 === 0) files.push(apkFile(`usr/share/${i}`, { type: 'directory' }));
  }
  return files;
}

const input = (files: ApkFile[], info: PkgInfo = pkginfo()): GenerateInput => ({
  repo: 'main',
  libc: 'musl',
  arch: 'x86_64',
  pkginfo: info,
  files,
  sha256: 'B'.repeat(64),
  checksum: 'Q1abc=',
  created: new Date(0),
  namespaceBase: 'https://reef.example/spdxdocs/',
});

describe('the generated SBOM in pieces', () => {
  test(
    'real packages: the streamed text and the components are those of the whole tree',
    needsSharedFixtures,
    async () => {
      const packages = await fixturePackages();
      assert.ok(packages.length > 0);
      for (const { file, apk } of packages) {
        assertSameAsTree(
          spdxInputOf(apk, {
            created: new Date((apk.pkginfo.builddate ?? 0) * 1000),
            namespaceBase: 'https://reef.example/spdxdocs/',
          }),
          file,
        );
      }
    },
  );

  test('thousands of files with hostile names: same bytes, same components, a valid document', () => {
    const generated = input(hostileFiles(5000));
    const text = assertSameAsTree(generated, 'hostile');
    const doc = JSON.parse(text) as { files: Array<{ fileName: string }>; relationships: unknown[] };
    assert.ok(doc.files.length > 4000);
    assert.ok(doc.files.some((f) => f.fileName.includes('\n')));
    assert.ok(doc.files.some((f) => f.fileName.includes('"], "files": [')));
    assert.deepEqual(doc, generateSpdx(generated));
  });

  test('no files, no dependencies, no provides: no files member, relationships hold DESCRIBES alone', () => {
    const bare = input([apkFile('etc', { type: 'directory' })], pkginfo({ depends: [], provides: [] }));
    const text = assertSameAsTree(bare, 'bare');
    const doc = JSON.parse(text) as Record<string, unknown>;
    assert.equal('files' in doc, false);
    assert.equal((doc.relationships as unknown[]).length, 1);
    // Unlisted entries only: the comment names them, files stays absent.
    assertSameAsTree(input([apkFile('usr/bin/x')], pkginfo({ depends: [] })), 'unlisted only');
  });

  test('a file SHA-1 that is not hex fails the schema at its path in the whole document', () => {
    const files = hostileFiles(3000);
    const bad = files.findIndex((f, i) => i > 2500 && f.type === 'file' && f.sha1);
    files[bad] = { ...files[bad]!, sha1: 'not hex' };
    const generated = input(files);
    let expected: unknown;
    assert.throws(
      () => parseSbomDocument(generateSpdx(generated)),
      (err) => {
        expected = err;
        return isAppError(err, 'SBOM_SCHEMA_INVALID');
      },
    );
    const path = (expected as { details: { path: string } }).details.path;
    assert.match(path, /^\/files\/\d{4}\//);
    for (const windowFiles of [7, 1000]) {
      assert.throws(
        () => parseGeneratedSpdx(generateSpdxParts(generated), windowFiles),
        (err) => isAppError(err, 'SBOM_SCHEMA_INVALID') && err.details?.path === path,
      );
    }
  });
});
