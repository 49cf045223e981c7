import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import zlib from 'node:zlib';
import { DEFAULT_APK_LIMITS, type ReadApkOptions, readApk } from '../../src/apk/read-apk.ts';
import { loadPublicKey, verifySignatures } from '../../src/apk/signature.ts';
import { type ErrorCode, isAppError } from '../../src/errors.ts';
import { type BuildFile, buildApk, chunked, generateRsaKey, gzipMember } from '../helpers/apk-builder.ts';
import { needsSharedFixtures, realFixturesDir, sharedFixturesPresent } from '../helpers/shared-fixtures.ts';

interface ManifestApk {
  file: string;
  kind: string;
  size: number;
  sha256: string;
  index_C: string;
  index_S: number;
  datahash_matches_data_member: boolean;
  gzip_members: Array<{ offset: number; compressed_len: number; uncompressed_len: number }>;
  signatures: Array<{ name: string; digest: string; verified_with: string[] }>;
  pkginfo: Record<string, string | string[]>;
}

const FIXTURES = realFixturesDir();
const manifest: ManifestApk[] = sharedFixturesPresent
  ? JSON.parse(readFileSync(join(FIXTURES, 'fixtures-manifest.json'), 'utf8'))
  : [];
const apks = manifest.filter((m) => m.kind === 'apk');

const asList = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(' ')).filter(Boolean);

async function rejects(bytes: Buffer, code: ErrorCode, options?: ReadApkOptions): Promise<void> {
  await assert.rejects(readApk(chunked(bytes, 4096), options), (err) => {
    assert.ok(isAppError(err), `expected AppError ${code}, got ${err}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

describe('readApk on the real fixtures', needsSharedFixtures, () => {
  for (const m of apks) {
    test(m.file, async () => {
      const pkg = await readApk(createReadStream(join(FIXTURES, m.file)), { requireDatahash: false });
      assert.equal(pkg.checksum, m.index_C);
      assert.equal(pkg.size, m.index_S);
      assert.equal(pkg.size, m.size);
      assert.equal(pkg.sha256, m.sha256);
      assert.equal(pkg.datahashMatches, m.datahash_matches_data_member);
      assert.deepEqual(
        pkg.members.map((x) => [x.offset, x.compressedLength, x.uncompressedLength]),
        m.gzip_members.map((x) => [x.offset, x.compressed_len, x.uncompressed_len]),
      );
      assert.equal(pkg.pkginfo.name, m.pkginfo.pkgname);
      assert.equal(pkg.pkginfo.version, m.pkginfo.pkgver);
      assert.equal(pkg.pkginfo.arch, m.pkginfo.arch);
      assert.equal(pkg.pkginfo.installedSize, Number(m.pkginfo.size));
      assert.equal(pkg.pkginfo.datahash, m.pkginfo.datahash);
      assert.deepEqual(pkg.pkginfo.depends, asList(m.pkginfo.depend));
      assert.deepEqual(pkg.pkginfo.provides, asList(m.pkginfo.provides));
      assert.deepEqual(pkg.pkginfo.replaces, asList(m.pkginfo.replaces));
      assert.equal(pkg.pkginfo.origin, m.pkginfo.origin ?? '');
      assert.deepEqual(
        pkg.signatures.map((s) => `.SIGN.${s.algorithm}.${s.keyName}`),
        m.signatures.map((s) => s.name),
      );
    });
  }

  test('the data file list equals what GNU tar lists', async () => {
    for (const m of apks) {
      const path = join(FIXTURES, m.file);
      const pkg = await readApk(createReadStream(path), { requireDatahash: false });
      const listed = execFileSync('tar', ['--warning=no-unknown-keyword', '-tzf', path], { encoding: 'utf8' })
        .split('\n')
        .filter((n) => n && !n.startsWith('.SIGN.') && !pkg.controlEntries.includes(n));
      // GNU tar prints directories with a trailing slash when the archive stored one.
      assert.deepEqual(
        pkg.files.map((f) => f.name.replace(/\/$/, '')),
        listed.map((n) => n.replace(/\/$/, '')),
        m.file,
      );
    }
  });

  test('symlink checksums are SHA-1 of the target string (melange libcap)', async () => {
    const pkg = await readApk(createReadStream(join(FIXTURES, 'melange/sca__libcap-2.69-r0.apk')));
    const link = pkg.files.find((f) => f.name === 'usr/lib/libcap.so.2');
    assert.equal(link?.type, 'symlink');
    assert.equal(link?.linkTarget, 'libcap.so.2.69');
    const expected = execFileSync('sha1sum', { input: 'libcap.so.2.69', encoding: 'utf8' }).split(' ')[0];
    assert.equal(link?.sha1, expected);
  });

  test('the embedded SBOM equals the file tar extracts', async () => {
    const withSbom = apks.filter((m) => m.file.includes('kubeflow') || m.file.includes('replaces'));
    assert.ok(withSbom.length >= 2);
    for (const m of withSbom) {
      const path = join(FIXTURES, m.file);
      const pkg = await readApk(createReadStream(path));
      const sbomPath = `var/lib/db/sbom/${m.pkginfo.pkgname}-${m.pkginfo.pkgver}.spdx.json`;
      const expected = execFileSync('tar', ['--warning=no-unknown-keyword', '-xzOf', path, sbomPath]);
      assert.ok(pkg.sbom);
      assert.ok(pkg.sbom.equals(expected), m.file);
    }
  });

  test('signatures verify with the keys the manifest names, and fail with another key', async () => {
    let verifiedCount = 0;
    const wrong = generateRsaKey();
    for (const m of apks) {
      const pkg = await readApk(createReadStream(join(FIXTURES, m.file)), { requireDatahash: false });
      for (const [i, sig] of m.signatures.entries()) {
        const entry = pkg.signatures[i]!;
        for (const keyFile of sig.verified_with) {
          const key = loadPublicKey(entry.keyName, readFileSync(join(FIXTURES, keyFile)));
          const result = verifySignatures(pkg.controlMember, [entry], [key]);
          assert.equal(result.verifiedBy, entry.keyName, `${m.file} with ${keyFile}`);
          verifiedCount++;
          const bad = verifySignatures(
            pkg.controlMember,
            [entry],
            [loadPublicKey(entry.keyName, wrong.publicPem)],
          );
          assert.equal(bad.checks[0]?.verdict, 'bad-signature');
          assert.equal(bad.verifiedBy, undefined);
        }
        if (sig.verified_with.length === 0) {
          const none = verifySignatures(pkg.controlMember, [entry], []);
          assert.equal(none.checks[0]?.verdict, 'no-key');
        }
      }
    }
    assert.ok(verifiedCount >= 6, `only ${verifiedCount} signatures were checked`);
  });

  test('tiny chunks give the same result as whole reads', async () => {
    for (const file of [
      'go-apk/apk__alpine-316__alpine-baselayout-3.2.0-r23.apk',
      'gitea/gitea-test-1.4.1-r3.apk',
    ]) {
      const bytes = readFileSync(join(FIXTURES, file));
      const whole = await readApk(chunked(bytes, bytes.length));
      const tiny = await readApk(chunked(bytes, 7));
      assert.deepEqual({ ...tiny, controlMember: null }, { ...whole, controlMember: null });
      assert.ok(tiny.controlMember.equals(whole.controlMember));
    }
  });

  test('sca__neon-4604-r0.apk is rejected for its datahash', async () => {
    await rejects(readFileSync(join(FIXTURES, 'melange/sca__neon-4604-r0.apk')), 'APK_DATAHASH_MISMATCH');
  });
});

describe('readApk on built packages', () => {
  test('a signed package round-trips its fields, scripts and signature', async () => {
    const key = generateRsaKey();
    const bytes = await buildApk({
      name: 'withscript',
      version: '2.1_rc3-r4',
      depends: ['so:libc.musl-x86_64.so.1', 'busybox>=1.36'],
      provides: ['cmd:withscript=2.1_rc3-r4'],
      extraPkginfo: ['license = GPL-2.0-only OR MIT', 'provider_priority = 10'],
      scripts: { '.post-install': '#!/bin/sh\nexit 0\n' },
      signer: { keyName: 'test.rsa.pub', privateKey: key.privateKey },
    });
    const pkg = await readApk(chunked(bytes));
    assert.equal(pkg.pkginfo.version, '2.1_rc3-r4');
    assert.deepEqual(pkg.scripts, ['.post-install']);
    assert.deepEqual(pkg.pkginfo.provides, ['cmd:withscript=2.1_rc3-r4']);
    assert.equal(pkg.pkginfo.license, 'MIT AND (GPL-2.0-only OR MIT)');
    assert.equal(pkg.pkginfo.providerPriority, 10);
    assert.deepEqual(
      pkg.members.map((m) => m.role),
      ['signature', 'control', 'data'],
    );
    const result = verifySignatures(pkg.controlMember, pkg.signatures, [
      loadPublicKey('test.rsa.pub', key.publicPem),
    ]);
    assert.equal(result.verifiedBy, 'test.rsa.pub');
  });

  test('truncation at every member boundary and inside each member fails with a specific code', async () => {
    const key = generateRsaKey();
    const bytes = await buildApk({ signer: { keyName: 'k.rsa.pub', privateKey: key.privateKey } });
    const pkg = await readApk(chunked(bytes));
    const [sig, control, data] = pkg.members;
    const cases: Array<[number, ErrorCode]> = [
      [0, 'APK_EMPTY'],
      [5, 'APK_NOT_GZIP'],
      [sig!.compressedLength - 3, 'APK_TRUNCATED'],
      [control!.offset, 'APK_MISSING_PKGINFO'],
      [control!.offset + 20, 'APK_TRUNCATED'],
      [data!.offset - 4, 'APK_TRUNCATED'],
      [data!.offset, 'APK_TOO_FEW_MEMBERS'],
      [data!.offset + 30, 'APK_TRUNCATED'],
      [bytes.length - 1, 'APK_TRUNCATED'],
    ];
    for (const [at, code] of cases) await rejects(bytes.subarray(0, at), code);
  });

  test('flipped bytes are caught by the gzip CRC or by datahash', async () => {
    const bytes = await buildApk({
      files: [{ name: 'usr/bin/x', content: 'x'.repeat(5000) + 'abc'.repeat(999) }],
    });
    const pkg = await readApk(chunked(bytes));
    const data = pkg.members[1]!;
    // The gzip mtime field is not covered by the CRC, but is part of the hashed member.
    const header = Buffer.from(bytes);
    header[data.offset + 4]! ^= 0xff;
    await rejects(header, 'APK_DATAHASH_MISMATCH');
    for (const at of [
      data.offset + 12,
      data.offset + Math.floor(data.compressedLength / 2),
      bytes.length - 6,
    ]) {
      const flipped = Buffer.from(bytes);
      flipped[at]! ^= 0x55;
      await assert.rejects(readApk(chunked(flipped)), (err) => {
        assert.ok(isAppError(err));
        assert.ok(
          ['APK_GZIP_CORRUPT', 'APK_TAR_CORRUPT', 'APK_TRUNCATED', 'APK_TRAILING_DATA'].includes(err.code),
          err.code,
        );
        return true;
      });
    }
    const control = Buffer.from(bytes);
    control[pkg.members[0]!.offset + 40]! ^= 0x01;
    await assert.rejects(readApk(chunked(control)));
  });

  test('a gzip bomb stops at the ratio limit without inflating it all', async () => {
    const good = await buildApk();
    const pkg = await readApk(chunked(good));
    const controlAndSig = good.subarray(0, pkg.members[1]!.offset);
    // 256 MiB of zeros deflate to ~250 KiB: a 1000:1 ratio.
    const zeros = zlib.gzipSync(Buffer.alloc(256 * 2 ** 20), { level: 9 });
    const bomb = Buffer.concat([controlAndSig, zeros]);
    const before = process.memoryUsage().rss;
    await rejects(bomb, 'APK_GZIP_BOMB');
    assert.ok(process.memoryUsage().rss - before < 200 * 2 ** 20, 'memory grew by more than 200 MiB');
    await rejects(bomb, 'APK_GZIP_BOMB', { limits: { maxDecompressedBytes: 2 ** 20 } });
  });

  test('hostile names are refused', async () => {
    for (const name of ['../etc/passwd', 'usr/../../x', '/etc/shadow']) {
      await rejects(await buildApk({ files: [{ name, content: 'x' }] }), 'APK_TAR_BAD_NAME');
    }
    await rejects(
      await buildApk({ files: [{ name: 'a', type: 'link', linkTarget: '../../x' }] }),
      'APK_TAR_BAD_NAME',
    );
    await rejects(await buildApk({ files: [{ name: 'x'.repeat(5000), content: '' }] }), 'APK_TAR_BAD_NAME');
  });

  test('.PKGINFO defects each have their code', async () => {
    const big = `pkgname = big\npkgver = 1-r0\narch = x86_64\nsize = 1\n${'depend = a\n'.repeat(200_000)}`;
    await rejects(await buildApk({ pkginfoText: big }), 'APK_PKGINFO_TOO_LARGE');
    await rejects(
      await buildApk({ controlEntries: [{ name: '.post-install', content: 'exit 0' }] }),
      'APK_MISSING_PKGINFO',
    );
    const fields = { pkgname: 'p', pkgver: '1.0-r0', arch: 'x86_64', size: '1' };
    const text = (over: Record<string, string | undefined>) =>
      `${Object.entries({ ...fields, ...over })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\ndatahash = ${'0'.repeat(64)}\n`;
    for (const key of Object.keys(fields)) {
      await rejects(await buildApk({ pkginfoText: text({ [key]: undefined }) }), 'APK_PKGINFO_MISSING_KEY');
    }
    await rejects(await buildApk({ pkginfoText: text({ pkgver: '1.0-r0-r1' }) }), 'APK_INVALID_VERSION');
    await rejects(await buildApk({ pkginfoText: text({ pkgname: '-bad' }) }), 'APK_INVALID_NAME');
    await rejects(await buildApk({ pkginfoText: text({ arch: 'x86-64' }) }), 'APK_INVALID_ARCH');
    await rejects(await buildApk({ pkginfoText: text({ size: 'lots' }) }), 'APK_PKGINFO_BAD_VALUE');
    await rejects(await buildApk({ pkginfoText: text({ depend: 'foo>=1..2' }) }), 'APK_INVALID_DEPENDENCY');
    await rejects(await buildApk({ pkginfoText: `${text({})}pkgver = 2.0-r0\n` }), 'APK_PKGINFO_BAD_VALUE');
    await rejects(
      await buildApk({ pkginfoText: 'pkgname = p\npkgver = 1-r0\narch = x86_64\nsize = 1\n' }),
      'APK_PKGINFO_MISSING_KEY',
    );
    await rejects(
      await buildApk({ pkginfoText: Buffer.from([0x70, 0x20, 0x3d, 0x20, 0xff, 0xfe, 0x0a]) }),
      'APK_PKGINFO_NOT_UTF8',
    );
  });

  test('structural defects each have their code', async () => {
    await rejects(await buildApk({ datahash: 'ab'.repeat(32) }), 'APK_DATAHASH_MISMATCH');
    await rejects(await buildApk({ splitData: true }), 'APK_DATA_MULTIPLE_MEMBERS');
    await rejects(await buildApk({ uncutControl: true }), 'APK_TAR_END_IN_CONTROL');
    await rejects(Buffer.from('this is not a package at all'), 'APK_NOT_GZIP');
    await rejects(Buffer.from('ADBd\x00\x00\x00\x00 v3 package'), 'APK_V3_UNSUPPORTED');
    const good = await buildApk();
    await rejects(Buffer.concat([good, Buffer.from('garbage after the end')]), 'APK_TRAILING_DATA');
    const pkg = await readApk(chunked(good));
    await rejects(good.subarray(0, pkg.members[1]!.offset), 'APK_TOO_FEW_MEMBERS');
    await rejects(good, 'APK_TAR_TOO_MANY_ENTRIES', { limits: { maxEntries: 1 } });
    await rejects(good, 'APK_TOO_LARGE', { limits: { maxCompressedBytes: 100 } });
    const doubleSig = Buffer.concat([gzipMember(Buffer.alloc(0)), good]);
    await rejects(doubleSig, 'APK_CONTROL_MEMBER_INVALID');
  });

  test('RSA512 and RSA/SHA-1 package signatures verify; a wrong algorithm name does not', async () => {
    const key = generateRsaKey();
    for (const algorithm of ['RSA', 'RSA256', 'RSA512'] as const) {
      const pkg = await readApk(
        chunked(await buildApk({ signer: { keyName: 'k.rsa.pub', privateKey: key.privateKey, algorithm } })),
      );
      assert.equal(pkg.signatures[0]?.algorithm, algorithm);
      const keys = [loadPublicKey('k.rsa.pub', key.publicPem)];
      assert.equal(verifySignatures(pkg.controlMember, pkg.signatures, keys).verifiedBy, 'k.rsa.pub');
      const relabeled = pkg.signatures.map((s) => ({
        ...s,
        algorithm: algorithm === 'RSA' ? 'RSA256' : 'RSA',
      }));
      assert.equal(verifySignatures(pkg.controlMember, relabeled, keys).checks[0]?.verdict, 'bad-signature');
    }
  });

  test('signatures split over two gzip members are refused', async () => {
    const key = generateRsaKey();
    const signed = await buildApk({ signer: { keyName: 'k.rsa.pub', privateKey: key.privateKey } });
    const pkg = await readApk(chunked(signed));
    const sigMember = signed.subarray(0, pkg.members[1]!.offset);
    await rejects(Buffer.concat([sigMember, signed]), 'APK_TOO_MANY_MEMBERS');
  });

  test('the embedded SBOM is bounded, and .PKGINFO lines are counted', async () => {
    const withSbom = await buildApk({
      sbom: JSON.stringify({ spdxVersion: 'SPDX-2.3', pad: 'x'.repeat(4000) }),
    });
    const pkg = await readApk(chunked(withSbom));
    assert.equal(JSON.parse(pkg.sbom!.toString()).spdxVersion, 'SPDX-2.3');
    await rejects(withSbom, 'APK_SBOM_TOO_LARGE', { limits: { maxSbomBytes: 1000 } });
    const many = await buildApk({ extraPkginfo: Array.from({ length: 50 }, (_, i) => `# comment ${i}`) });
    await rejects(many, 'APK_PKGINFO_TOO_LARGE', { limits: { maxPkginfoLines: 40 } });
  });

  test('a first member of nothing but zero blocks is refused without being held in memory', async () => {
    const zeros = gzipMember(Buffer.alloc(4 * 2 ** 20), 0);
    await rejects(Buffer.concat([zeros, await buildApk()]), 'APK_CONTROL_MEMBER_INVALID', {
      limits: { maxControlMemberBytes: 2 ** 20 },
    });
  });

  test('a NUL inside a pax path is refused', async () => {
    const bytes = await buildApk({ files: [{ name: 'usr/x', content: 'x', paxPath: 'usr/x\0/../../etc' }] });
    await rejects(bytes, 'APK_TAR_BAD_NAME');
  });

  test('the default limits are sane', () => {
    assert.ok(DEFAULT_APK_LIMITS.maxCompressedBytes < 2 ** 32, 'apk 2 reads S: as a 32-bit unsigned integer');
    assert.ok(DEFAULT_APK_LIMITS.maxRatio >= 100);
  });
});

describe('readApk: one path, one entry', () => {
  const dirs: BuildFile[] = [
    { name: 'usr/', type: 'directory' },
    { name: 'usr/share/', type: 'directory' },
  ];
  const file: BuildFile = { name: 'usr/share/a', content: 'a\n' };

  test('a path held twice, or as a file and a directory, is refused naming it', async () => {
    for (const files of [
      [...dirs, file, { ...file, content: 'again\n' }],
      [...dirs, file, { name: 'usr/share/a/', type: 'directory' }],
      [...dirs, { name: 'usr/share/a/', type: 'directory' }, file],
      [...dirs, { name: 'usr/share/a', type: 'symlink', linkTarget: 'b' }, file],
      [...dirs, file, { name: 'usr/share/a', type: 'link', linkTarget: 'usr/share/a' }],
      // Compared as installed: `./`, doubled and trailing slashes do not make another path.
      [...dirs, file, { name: './usr/share/a', content: 'x' }],
      [...dirs, file, { name: 'usr//share/a', content: 'x' }],
      [
        ...dirs,
        { name: 'usr/share/a', type: 'symlink', linkTarget: 'b' },
        { name: 'usr/share/a/', type: 'directory' },
      ],
    ] as BuildFile[][]) {
      await assert.rejects(readApk(chunked(await buildApk({ files }))), (err) => {
        assert.ok(isAppError(err, 'APK_DUPLICATE_PATH'), `${files.map((f) => f.name)}: ${err}`);
        assert.equal(err.details?.path, 'usr/share/a');
        return true;
      });
    }
  });

  test('a repeated directory is accepted: apk only sets its mode again', async () => {
    const pkg = await readApk(
      chunked(await buildApk({ files: [...dirs, file, { name: 'usr/share', type: 'directory' }, ...dirs] })),
    );
    assert.equal(pkg.files.length, 6);
  });

  test('a long duplicate path is cut in the message and details', async () => {
    const name = `usr/${'d'.repeat(3000)}`;
    await assert.rejects(
      readApk(
        chunked(
          await buildApk({
            files: [
              { name, content: '1' },
              { name, content: '2' },
            ],
          }),
        ),
      ),
      (err) => {
        assert.ok(isAppError(err, 'APK_DUPLICATE_PATH'));
        assert.ok(err.message.length < 400, err.message);
        assert.equal(String(err.details?.path).length, 201);
        return true;
      },
    );
  });
});
