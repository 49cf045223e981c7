import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { PkgInfo } from '../../src/apk/pkginfo.ts';
import { type ApkFile, type ApkPackage, readApk } from '../../src/apk/read-apk.ts';
import { apkPurl, generateSpdx, packageVerificationCode } from '../../src/sbom/generate.ts';
import { parseSbom } from '../../src/sbom/parse.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';
import { apkFile, FIXTURES, fixturePackages, tarEntries, tarExtract } from './sbom-fixtures.ts';

type Doc = {
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: Array<Record<string, unknown> & { SPDXID: string; name: string }>;
  files: Array<{
    SPDXID: string;
    fileName: string;
    checksums: Array<{ algorithm: string; checksumValue: string }>;
  }>;
  relationships: Array<{
    spdxElementId: string;
    relationshipType: string;
    relatedSpdxElement: string;
    comment?: string;
  }>;
  hasExtractedLicensingInfos?: Array<{ licenseId: string; extractedText: string }>;
};

const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest('hex');

function generate(apk: ApkPackage, repo = 'main', overrides: Partial<PkgInfo> = {}) {
  return generateSpdx({
    repo,
    libc: 'musl',
    arch: apk.pkginfo.arch,
    pkginfo: { ...apk.pkginfo, ...overrides },
    files: apk.files,
    sha256: apk.sha256,
    checksum: apk.checksum,
    created: new Date((apk.pkginfo.builddate ?? 0) * 1000),
    namespaceBase: 'https://reef.example/spdxdocs/',
  }) as unknown as Doc;
}

async function alpine(file: string) {
  const found = (await fixturePackages()).find((p) => p.file === file);
  assert.ok(found, file);
  return found.apk;
}

/** An Alpine package made here: noarch, no SBOM of its own. */
async function alpineBase(): Promise<ApkPackage> {
  const bytes = await buildApk({
    name: 'alpine-base',
    version: '3.12.0-r0',
    arch: 'noarch',
    depends: ['alpine-baselayout', 'alpine-conf'],
    files: [{ name: 'etc/alpine-release', content: '3.12.0\n' }],
  });
  return readApk(chunked(bytes));
}

describe('generateSpdx for Alpine packages (no SBOM of their own)', () => {
  for (const file of [
    'abuild-alpine-base-3.12.0-r0.apk',
    'go-apk/apk__alpine-316__alpine-baselayout-3.2.0-r23.apk',
  ]) {
    test(
      `${file}: exactly the regular files and symlinks of the data tar, with the SHA1s GNU tar gives`,
      needsSharedFixtures,
      async () => {
        const apk = await alpine(file);
        const path = join(FIXTURES, file);
        const doc = generate(apk);
        // The oracle: GNU tar's listing and extraction, not reef's reader.
        const expected = new Map<string, string>();
        for (const entry of tarEntries(path)) {
          if (entry.type === 'file') expected.set(`./${entry.name}`, sha1(tarExtract(path, entry.name)));
          // apk records a symlink's SHA1 over its target path (apk2 src/io_archive.c).
          if (entry.type === 'symlink') expected.set(`./${entry.name}`, sha1(entry.target!));
        }
        assert.ok(expected.size > 0);
        const listed = new Map(
          doc.files.map((f) => [f.fileName, f.checksums.find((c) => c.algorithm === 'SHA1')!.checksumValue]),
        );
        assert.deepEqual([...listed.keys()].sort(), [...expected.keys()].sort());
        for (const [name, digest] of expected) assert.equal(listed.get(name), digest, name);
        // §7.9 verification code over those SHA1s.
        const main = doc.packages[0]!;
        assert.deepEqual(main.packageVerificationCode, {
          packageVerificationCodeValue: sha1([...expected.values()].sort().join('')),
        });
        // Every file is contained by the package.
        const contained = doc.relationships.filter((r) => r.relationshipType === 'CONTAINS');
        assert.deepEqual(
          contained.map((r) => r.relatedSpdxElement).sort(),
          doc.files.map((f) => f.SPDXID).sort(),
        );
        assert.ok(contained.every((r) => r.spdxElementId === main.SPDXID));
        // And reef's own parser accepts what reef wrote, as an SBOM of this package.
        const parsed = parseSbom(Buffer.from(JSON.stringify(doc)));
        assert.deepEqual(parsed.describes, [{ name: apk.pkginfo.name, version: apk.pkginfo.version }]);
      },
    );
  }

  test(
    'alpine-baselayout: purl, licence, maintainer, origin and commit, dependencies and provides',
    needsSharedFixtures,
    async () => {
      const apk = await alpine('go-apk/apk__alpine-316__alpine-baselayout-3.2.0-r23.apk');
      const doc = generate(apk, 'alpine');
      const main = doc.packages[0]!;
      assert.equal(main.SPDXID, 'SPDXRef-Package-alpine-baselayout');
      assert.equal(main.name, 'alpine-baselayout');
      assert.equal(main.versionInfo, '3.2.0-r23');
      assert.deepEqual(main.externalRefs, [
        {
          referenceCategory: 'PACKAGE-MANAGER',
          referenceType: 'purl',
          referenceLocator: 'pkg:apk/alpine/alpine-baselayout@3.2.0-r23?arch=aarch64&distro=alpine',
        },
      ]);
      assert.equal(main.licenseDeclared, 'GPL-2.0-only');
      assert.equal(main.supplier, 'Person: Natanael Copa (ncopa@alpinelinux.org)');
      assert.equal(
        main.sourceInfo,
        'built from origin alpine-baselayout at commit 348653a9ba0701e8e968b3344e72313a9ef334e4',
      );
      assert.equal(main.homepage, 'https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout');
      assert.deepEqual(main.checksums, [{ algorithm: 'SHA256', checksumValue: apk.sha256 }]);
      assert.equal(doc.creationInfo.created, '2022-09-11T20:08:26Z');

      const byId = new Map(doc.packages.map((p) => [p.SPDXID, p]));
      const related = (type: string) =>
        doc.relationships
          .filter((r) => r.relationshipType === type && r.spdxElementId === main.SPDXID)
          .map((r) => {
            const p = byId.get(r.relatedSpdxElement)!;
            return [p.name, p.versionInfo ?? null, r.comment ?? null];
          });
      assert.deepEqual(related('DEPENDS_ON'), [
        ['/bin/sh', null, null],
        ['alpine-baselayout-data', '3.2.0-r23', 'apk constraint =3.2.0-r23'],
        ['so:libc.musl-aarch64.so.1', null, null],
      ]);
      assert.deepEqual(related('OTHER'), [
        [
          'cmd:mkmntdirs',
          '3.2.0-r23',
          'apk provides: alpine-baselayout satisfies dependencies on this name (=3.2.0-r23)',
        ],
      ]);
      const parsed = parseSbom(Buffer.from(JSON.stringify(doc)));
      assert.ok(parsed.components.some((c) => c.name === 'so:libc.musl-aarch64.so.1'));
    },
  );

  test('the same package gives the same bytes; another package file another namespace', async () => {
    const apk = await alpineBase();
    assert.equal(JSON.stringify(generate(apk)), JSON.stringify(generate(apk)));
    const doc = generate(apk);
    assert.equal(
      doc.documentNamespace,
      `https://reef.example/spdxdocs/main/musl/noarch/alpine-base-3.12.0-r0-${apk.sha256}`,
    );
    const other = generate({ ...apk, sha256: 'f'.repeat(64) });
    assert.notEqual(other.documentNamespace, doc.documentNamespace);
  });

  test('a licence that is no SPDX expression becomes a LicenseRef with its text', async () => {
    const apk = await alpineBase();
    const doc = generate(apk, 'main', { license: 'custom:Acme Public License' });
    assert.equal(doc.packages[0]!.licenseDeclared, 'LicenseRef-custom-Acme-Public-License');
    assert.deepEqual(doc.hasExtractedLicensingInfos, [
      {
        licenseId: 'LicenseRef-custom-Acme-Public-License',
        extractedText: 'custom:Acme Public License',
        name: 'custom:Acme Public License',
      },
    ]);
    const withRef = generate(apk, 'main', { license: 'MIT AND LicenseRef-acme' });
    assert.equal(withRef.packages[0]!.licenseDeclared, 'MIT AND LicenseRef-acme');
    assert.deepEqual(
      withRef.hasExtractedLicensingInfos?.map((e) => e.licenseId),
      ['LicenseRef-acme'],
      'a LicenseRef used is a LicenseRef defined (SPDX 2.3 §10.1)',
    );
    const none = generate(apk, 'main', { license: '', maintainer: '' });
    assert.equal(none.packages[0]!.licenseDeclared, 'NOASSERTION');
    assert.equal(none.packages[0]!.supplier, 'NOASSERTION');
    for (const d of [doc, withRef, none]) parseSbom(Buffer.from(JSON.stringify(d)));
  });

  test('purls are built and encoded by packageurl-js', () => {
    assert.equal(
      apkPurl('My Repo', 'g++', '1.0+git-r0', 'x86_64'),
      'pkg:apk/my%20repo/g%2B%2B@1.0+git-r0?arch=x86_64&distro=My%20Repo',
    );
    // With a distro: the vendor is the namespace, the qualifier `<id>-<version>` as Syft writes it.
    assert.equal(
      apkPurl('main', 'musl', '1.2.3-r4', 'x86_64', { id: 'alpine', version: '3.18.0' }),
      'pkg:apk/alpine/musl@1.2.3-r4?arch=x86_64&distro=alpine-3.18.0',
    );
    assert.equal(
      apkPurl('os', 'glibc', '2.39-r0', 'aarch64', { id: 'wolfi' }),
      'pkg:apk/wolfi/glibc@2.39-r0?arch=aarch64&distro=wolfi',
    );
  });
});

describe('generateSpdx on synthetic file lists', () => {
  const pkginfo: PkgInfo = {
    name: 'demo',
    version: '1.0-r0',
    arch: 'x86_64',
    installedSize: 0,
    datahash: 'a'.repeat(64),
    description: '',
    url: 'not a url',
    license: 'MIT',
    origin: '',
    maintainer: '',
    builddate: undefined,
    commit: '',
    packager: '',
    providerPriority: undefined,
    replacesPriority: undefined,
    depends: ['!conflicting', 'libfoo>=1', 'libfoo<2', 'so:libc.musl-x86_64.so.1'],
    provides: [],
    installIf: [],
    replaces: [],
    triggers: [],
    fields: [],
  };
  const run = (files: ApkFile[]) =>
    generateSpdx({
      repo: 'main',
      libc: 'glibc',
      arch: 'x86_64',
      pkginfo,
      files,
      sha256: 'b'.repeat(64),
      checksum: 'Q1abc=',
      created: new Date(0),
      namespaceBase: 'https://reef.example/spdxdocs',
    }) as unknown as Doc & { packages: Array<{ comment?: string; filesAnalyzed?: boolean }> };

  test('hard links take their target SHA1; entries without a SHA1 are named, not listed; later entries win', () => {
    const a = sha1('a');
    const doc = run([
      apkFile('usr/bin/a', { sha1: a }),
      apkFile('usr/bin/a-again', { type: 'hardlink', linkTarget: 'usr/bin/a' }),
      apkFile('usr/bin/unknown', {}),
      apkFile('usr/bin/twice', { sha1: sha1('old') }),
      apkFile('usr/bin/twice', { sha1: sha1('new') }),
      apkFile('usr/share', { type: 'directory' }),
    ]);
    assert.deepEqual(
      doc.files.map((f) => [f.fileName, f.checksums[0]!.checksumValue]),
      [
        ['./usr/bin/a', a],
        ['./usr/bin/a-again', a],
        ['./usr/bin/twice', sha1('new')],
      ],
    );
    assert.match(String(doc.packages[0]!.comment), /1 entries are not listed .*usr\/bin\/unknown/);
    assert.equal(packageVerificationCode([sha1('new'), a, a]), sha1([a, a, sha1('new')].sort().join('')));
    parseSbom(Buffer.from(JSON.stringify(doc)));
  });

  test('conflicts are no dependencies; several constraints on one name are one package', () => {
    const doc = run([]);
    const deps = doc.relationships.filter((r) => r.relationshipType === 'DEPENDS_ON');
    assert.deepEqual(
      deps.map((r) => r.comment ?? null),
      ['apk constraint >=1 <2', null],
    );
    assert.ok(!doc.packages.some((p) => p.name === 'conflicting'));
    assert.equal(doc.packages[0]!.filesAnalyzed, false);
    assert.equal(doc.packages[0]!.homepage, undefined, 'a url that is no URL is left out');
    assert.equal((doc as unknown as { files?: unknown }).files, undefined);
    parseSbom(Buffer.from(JSON.stringify(doc)));
  });
});
