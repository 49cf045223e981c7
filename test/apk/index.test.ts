import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { parseIndexText, readIndex } from '../../src/apk/index-reader.ts';
import {
  type IndexEntry,
  renderIndexRecord,
  writeIndex,
  writeUnsignedIndex,
} from '../../src/apk/index-writer.ts';
import { readApk } from '../../src/apk/read-apk.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { isAppError } from '../../src/errors.ts';
import { buildApk, chunked, generateRsaKey } from '../helpers/apk-builder.ts';
import { needsSharedFixtures, realFixturesDir } from '../helpers/shared-fixtures.ts';

const FIXTURES = realFixturesDir();
const key = (file: string, name = file.split('/').pop()!.replace(/^.*__/, '')) =>
  loadPublicKey(name, readFileSync(join(FIXTURES, file)));
const open = (file: string) => createReadStream(join(FIXTURES, file));

describe('readIndex on real indexes', () => {
  const cases = [
    {
      file: 'go-apk/apk__alpine-316__APKINDEX.tar.gz',
      key: 'alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub',
      records: 4929,
    },
    {
      file: 'go-apk/apk__alpine-317__APKINDEX.tar.gz',
      key: 'alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub',
      records: 5004,
    },
    { file: 'apko/apk__rsa256-signed__APKINDEX.tar.gz', key: 'apko/apk__rsa256-signed__test-rsa256.rsa.pub' },
    { file: 'apko/cli__packages__x86_64__APKINDEX.tar.gz', key: 'apko/cli__packages__melange.rsa.pub' },
    { file: 'apko/cli__packages__aarch64__APKINDEX.tar.gz', key: 'apko/cli__packages__melange.rsa.pub' },
    {
      file: 'apko/cli__private_packages__packages__x86_64__APKINDEX.tar.gz',
      key: 'apko/cli__private_packages__private_pkg_key.rsa.pub',
    },
  ];
  for (const c of cases) {
    test(c.file, needsSharedFixtures, async () => {
      const index = await readIndex(open(c.file), { keys: [key(c.key)], requireValidSignature: true });
      assert.equal(index.verification?.verifiedBy, key(c.key).name);
      if (c.records) assert.equal(index.records.length, c.records);
      assert.ok(index.records.every((r) => r.checksum.startsWith('Q1') && r.checksum.length === 30));
      const wrong = loadPublicKey(key(c.key).name, generateRsaKey().publicPem);
      await assert.rejects(readIndex(open(c.file), { keys: [wrong], requireValidSignature: true }), (err) => {
        assert.ok(isAppError(err, 'INDEX_SIGNATURE_INVALID'));
        return true;
      });
    });
  }

  test('the apko index signed by three keys verifies with each of them', needsSharedFixtures, async () => {
    const file = 'apko/apk__signing__APKINDEX.tar.gz';
    const keyFiles = [
      'apko/apk__signing__keys__chainguard-0106f58bac88057c2ff5c2829850df492717a876ed700443550353c7ab23f5a0.rsa.pub',
      'apko/apk__signing__keys__chainguard-60912bbc46bfc8ed6bda0b50db3a8a5f3c4344d6bc8549ec9b84d96140b475d1.rsa.pub',
      'apko/apk__signing__keys__chainguard-61cb6bccd1f584b007db7be51ebce2b0530a54cc5a94e7650b570d113d537cf3.rsa.pub',
    ];
    const keys = keyFiles.map((f) => key(f, f.replace(/^.*keys__/, '')));
    const index = await readIndex(open(file), { keys });
    assert.equal(index.signatures.length, 3);
    assert.deepEqual(
      index.verification?.checks.map((c) => c.verdict),
      ['verified', 'verified', 'verified'],
    );
    for (const k of keys) {
      const one = await readIndex(open(file), { keys: [k], requireValidSignature: true });
      assert.equal(one.verification?.verifiedBy, k.name);
    }
  });

  test("the apko index's records carry the C: and S: of its packages", needsSharedFixtures, async () => {
    const index = await readIndex(open('apko/cli__packages__x86_64__APKINDEX.tar.gz'));
    for (const file of ['custom-ca-certs-2-1.0.0-r0', 'pretend-baselayout-1.0.0-r0', 'replayout-1.0.0-r0']) {
      const pkg = await readApk(open(`apko/cli__packages__x86_64__${file}.apk`));
      const record = index.records.find((r) => r.name === pkg.pkginfo.name);
      assert.equal(record?.checksum, pkg.checksum);
      assert.equal(record?.size, pkg.size);
    }
  });

  test("go-apk's synthetic one-member index is rejected", needsSharedFixtures, async () => {
    await assert.rejects(readIndex(open('go-apk/apk__APKINDEX.tar.gz')), (err) => {
      assert.ok(isAppError(err, 'INDEX_CORRUPT'), String(err));
      assert.match(err.message, /own gzip member|signature/);
      return true;
    });
  });

  test('an unsigned index is refused when a signature is required', async () => {
    const unsigned = await writeUnsignedIndex([], { arch: 'x86_64' });
    await assert.rejects(readIndex(chunked(unsigned), { requireValidSignature: true }), (err) =>
      isAppError(err, 'INDEX_UNSIGNED'),
    );
    await assert.rejects(readIndex(chunked(Buffer.from('nope'))), (err) => isAppError(err, 'INDEX_NOT_GZIP'));
  });

  test('plain APKINDEX text parses and bad lines are refused', needsSharedFixtures, () => {
    const records = parseIndexText(readFileSync(join(FIXTURES, 'go-apk/apk__extracted__APKINDEX'), 'utf8'));
    assert.equal(records.length, 2);
    assert.throws(
      () => parseIndexText('C:Q1abc\nPxyz\n\n'),
      (err) => isAppError(err, 'INDEX_BAD_RECORD'),
    );
  });
});

describe('writeIndex', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reef-index-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Packages of several arches, one noarch, names out of order and of mixed case. */
  const packages: Array<Parameters<typeof buildApk>[0]> = [
    { name: 'ruby3.2-base64', version: '0.2.0-r2', depends: ['ruby-3.2'] },
    { name: 'alpine-base', version: '3.12.0-r0', depends: ['alpine-baselayout', 'alpine-conf'] },
    { name: 'gitea-noarch', version: '1.4-r0', arch: 'noarch', depends: [] },
    { name: 'Custom-ca-certs', version: '1.0.0-r0', provides: ['ca-certs=1.0.0-r0'] },
    { name: 'hello', version: '0.1.0-r0' },
    { name: 'libcap', version: '2.69-r0', license: 'BSD-3-Clause OR GPL-2.0-only' },
  ];
  async function entries(): Promise<IndexEntry[]> {
    const out: IndexEntry[] = [];
    for (const options of packages) {
      const { pkginfo: p, checksum, size } = await readApk(chunked(await buildApk(options)));
      out.push({ ...p, checksum, size, installedSize: p.installedSize });
    }
    return out;
  }

  test('is verified by gzip, tar and openssl, and reads back to the same entries', async () => {
    const signer = generateRsaKey();
    const keyName = 'reef-test.rsa.pub';
    const list = await entries();
    const opts = {
      arch: 'x86_64',
      description: 'reef test',
      signers: [
        { keyName, privateKey: signer.privateKey, algorithms: ['RSA256', 'RSA'] as Array<'RSA256' | 'RSA'> },
      ],
    };
    const bytes = await writeIndex(list, opts);
    const again = await writeIndex([...list].reverse(), opts);
    assert.ok(bytes.equals(again), 'writing the same entries twice gives identical bytes');

    const file = join(dir, 'APKINDEX.tar.gz');
    writeFileSync(file, bytes);
    execFileSync('gzip', ['-t', file]);
    const names = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(names, [`.SIGN.RSA256.${keyName}`, `.SIGN.RSA.${keyName}`, 'DESCRIPTION', 'APKINDEX']);

    // The signed region is the unsigned index, which must be the file's tail;
    // the head must be one gzip member holding only the signatures.
    const unsigned = await writeUnsignedIndex(list, opts);
    assert.ok(bytes.subarray(bytes.length - unsigned.length).equals(unsigned));
    const head = bytes.subarray(0, bytes.length - unsigned.length);
    const headTar = zlib.gunzipSync(head);
    assert.equal(headTar.length % 512, 0);
    assert.ok(
      !headTar.subarray(headTar.length - 512).every((b) => b === 0),
      'no end-of-archive in the signature member',
    );
    writeFileSync(join(dir, 'signed'), unsigned);
    writeFileSync(join(dir, 'key.pem'), signer.publicPem);
    for (const [alg, digest] of [
      ['RSA256', '-sha256'],
      ['RSA', '-sha1'],
    ] as const) {
      writeFileSync(join(dir, `sig.${alg}`), execFileSync('tar', ['-xzOf', file, `.SIGN.${alg}.${keyName}`]));
      const out = execFileSync('openssl', [
        'dgst',
        digest,
        '-verify',
        join(dir, 'key.pem'),
        '-signature',
        join(dir, `sig.${alg}`),
        join(dir, 'signed'),
      ]).toString();
      assert.match(out, /Verified OK/);
    }
    const text = execFileSync('tar', ['-xzOf', file, 'APKINDEX'], { encoding: 'utf8' });
    assert.ok(text.endsWith('\n\n'));
    assert.equal(execFileSync('tar', ['-xzOf', file, 'DESCRIPTION'], { encoding: 'utf8' }), 'reef test');

    const back = await readIndex(chunked(bytes), {
      keys: [loadPublicKey(keyName, signer.publicPem)],
      requireValidSignature: true,
    });
    assert.equal(back.records.length, list.length);
    for (const e of list) {
      const r = back.records.find((x) => x.name === e.name && x.version === e.version);
      assert.ok(r, `${e.name} is listed`);
      assert.equal(r.checksum, e.checksum);
      assert.equal(r.size, e.size);
      assert.equal(r.installedSize, e.installedSize);
      assert.equal(r.arch, e.arch === 'noarch' ? 'x86_64' : e.arch, 'noarch is rewritten to the index arch');
    }
    // Sorted by name, case-insensitively.
    const names2 = back.records.map((r) => r.name.toLowerCase());
    assert.deepEqual(names2, [...names2].sort());
  });

  test('records follow apk-tools field order and omit empty optional fields', () => {
    const text = renderIndexRecord(
      {
        name: 'a',
        version: '1-r0',
        arch: 'noarch',
        checksum: 'Q1xxxxxxxxxxxxxxxxxxxxxxxxxxx=',
        size: 10,
        installedSize: 20,
        description: 'd',
        url: '',
        license: 'MIT',
        origin: 'a',
        maintainer: '',
        builddate: 5,
        commit: '',
        providerPriority: undefined,
        depends: ['b', 'c>=1'],
        provides: [],
        installIf: ['x', 'y=1'],
      },
      'aarch64',
    );
    assert.equal(
      text,
      'C:Q1xxxxxxxxxxxxxxxxxxxxxxxxxxx=\nP:a\nV:1-r0\nA:aarch64\nS:10\nI:20\nT:d\nU:\nL:MIT\no:a\nt:5\nD:b c>=1\ni:x y=1\n\n',
    );
  });
});
