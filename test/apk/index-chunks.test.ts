import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import zlib from 'node:zlib';
import fc from 'fast-check';
import {
  ChunkedIndex,
  type ChunkingRule,
  crc32Combine,
  type FragmentSource,
  indexMemberOffset,
} from '../../src/apk/index-chunks.ts';
import { parseIndexText, readIndex } from '../../src/apk/index-reader.ts';
import {
  type IndexEntry,
  renderIndexRecord,
  sortIndexEntries,
  writeIndexFromChunks,
  writeUnsignedIndexText,
} from '../../src/apk/index-writer.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { chunked, generateRsaKey } from '../helpers/apk-builder.ts';
import { prng } from '../helpers/prng.ts';
import { opensslVerifyIndex } from '../helpers/server.ts';
import { needsSharedFixtures, realFixturesDir } from '../helpers/shared-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'reef-index-chunks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Small chunks, so a few dozen records exercise cuts, merges and the byte cap. */
const TINY: ChunkingRule = { averageRecords: 3, maxBytes: 1200 };

function entry(name: string, version: string, arch = 'x86_64', extra = ''): IndexEntry {
  return {
    name,
    version,
    arch,
    checksum: `Q1${randomBytes(20).toString('base64')}`,
    size: 1000 + name.length,
    installedSize: 4096,
    description: `the ${name} package${extra}`,
    url: 'https://example.org/',
    license: 'MIT',
    origin: name,
    maintainer: 'Ünïcode Maintainer <m@example.org>',
    builddate: 1_700_000_000,
    commit: 'abc123',
    providerPriority: undefined,
    depends: ['so:libc.so.6'],
    provides: [`cmd:${name}=${version}`],
    installIf: [],
  };
}

/**
 * A pool of records with what makes ordering hard: many versions of one
 * name, names differing only in case, one name-version in two arches
 * (noarch rewritten to x86_64), equal versions spelled differently.
 */
function pool(): string[] {
  const entries: IndexEntry[] = [];
  for (let v = 0; v < 12; v++) entries.push(entry('glibc', `2.${v}-r${v % 3}`));
  for (const n of ['Abc', 'abc', 'ABC', 'a-b', 'zlib', 'zz', 'python-3.12', 'py3-foo', 'busybox']) {
    entries.push(entry(n, '1.0-r0'), entry(n, '1.10-r0'), entry(n, '1.9_rc1-r0'));
  }
  entries.push(entry('dup', '1.0-r0', 'x86_64'), entry('dup', '1.0-r0', 'noarch'));
  entries.push(entry('same', '1.0-r0'), entry('same', '1.00-r0'));
  // Large records, so the byte cap cuts some runs.
  for (let i = 0; i < 6; i++) entries.push(entry(`big${i}`, '1-r0', 'x86_64', ` ${'long text '.repeat(60)}`));
  // renderIndexRecord writes noarch as the index arch, as the indexer does.
  return entries.map((e) => renderIndexRecord(e, 'x86_64'));
}

const gunzip = (b: Buffer) => zlib.gunzipSync(b);

/** A written member as the place its fragments are read back from (the indexer reads the index file). */
function memberSource(member: Buffer): FragmentSource {
  return (target, at, offset, length) => {
    if (offset + length > member.length) throw new Error('read past the member');
    member.copy(target, at, offset, offset + length);
  };
}

describe('crc32Combine', () => {
  test('equals the CRC-32 of the concatenation, for many lengths', () => {
    for (const len of [0, 1, 2, 7, 64, 1000, 65_537, 1_000_003]) {
      const a = randomBytes(len % 997);
      const b = randomBytes(len);
      assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(b), b.length), zlib.crc32(Buffer.concat([a, b])));
    }
  });
});

describe('ChunkedIndex', () => {
  const records = pool();

  test('incremental updates give the bytes of a build from scratch (random inserts and deletes)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.tuple(fc.boolean(), fc.nat(records.length - 1)), { minLength: 1, maxLength: 8 }),
          {
            minLength: 1,
            maxLength: 25,
          },
        ),
        fc.subarray(records.map((_, i) => i)),
        (batches, initial) => {
          const present = new Set(initial);
          const index = ChunkedIndex.build(
            initial.map((i) => records[i]!),
            TINY,
          );
          const options = { description: 'prop', mtime: 0 };
          // As the indexer does: write the member, let go of the fragments, read them back from it.
          let written = index.assemble(options);
          index.written();
          for (const batch of batches) {
            const add: string[] = [];
            const remove: string[] = [];
            const touched = new Set<number>();
            for (const [insert, i] of batch) {
              if (touched.has(i)) continue;
              touched.add(i);
              if (insert && !present.has(i)) {
                add.push(records[i]!);
                present.add(i);
              } else if (!insert && present.has(i)) {
                remove.push(records[i]!);
                present.delete(i);
              }
            }
            index.update({ add, remove }, memberSource(written));
            const scratch = ChunkedIndex.build(
              [...present].map((i) => records[i]!),
              TINY,
            );
            assert.deepEqual(index.layout(), scratch.layout());
            const member = index.assemble(options, memberSource(written));
            assert.ok(member.equals(scratch.assemble(options)), 'same bytes as from scratch');
            index.written();
            assert.equal(index.heldBytes, 0, 'no fragment held once written');
            written = member;
            // As after a restart: the same chunks found again in the written member alone.
            const reopened = ChunkedIndex.fromMember(member, options, TINY);
            assert.deepEqual(reopened.layout(), scratch.layout());
            assert.ok(reopened.assemble(options, memberSource(member)).equals(member));
            assert.deepEqual(
              [...index.records(memberSource(written))].sort(),
              [...present].map((i) => records[i]!).sort(),
              'exactly the records present',
            );
          }
        },
      ),
      { seed: 7, numRuns: 150 },
    );
  });

  test('a builder fed sorted runs of any size gives the bytes of build; a run out of order throws', () => {
    const all = ChunkedIndex.build(records, TINY);
    const sorted = all.records();
    const options = { description: 'runs', mtime: 0 };
    const random = prng(11);
    for (let round = 0; round < 20; round++) {
      const builder = ChunkedIndex.builder(TINY);
      for (let i = 0; i < sorted.length; ) {
        const run = sorted.slice(i, i + 1 + Math.floor(random() * 12));
        // Within a run, any order.
        builder.add(run.slice().reverse());
        i += run.length;
      }
      assert.ok(builder.finish().assemble(options).equals(all.assemble(options)));
    }
    const builder = ChunkedIndex.builder(TINY);
    builder.add(sorted.slice(10, 20));
    assert.throws(() => builder.add(sorted.slice(5, 6)), /out of order/);
  });

  test('fromMember finds the chunks of a written member; another rule, description or writer, or a changed byte, is refused', async () => {
    const options = { description: 'main/glibc', mtime: 0 };
    const index = ChunkedIndex.build(records, TINY);
    const member = index.assemble(options);
    const reopened = ChunkedIndex.fromMember(member, options, TINY);
    assert.deepEqual(reopened.layout(), index.layout());
    assert.deepEqual(reopened.records(memberSource(member)), index.records());
    // It goes on as the original would: an update gives the bytes of a build from scratch.
    reopened.update({ add: [], remove: records.slice(3, 9) }, memberSource(member));
    index.update({ add: [], remove: records.slice(3, 9) });
    assert.ok(reopened.assemble(options, memberSource(member)).equals(index.assemble(options)));

    const refused = (bytes: Buffer, opts = options, rule = TINY) =>
      assert.throws(() => ChunkedIndex.fromMember(bytes, opts, rule), { name: 'ChunkReadBackError' });
    refused(member, options, { averageRecords: 5, maxBytes: 1200 });
    refused(member, { description: 'main/musl', mtime: 0 });
    refused(
      await writeUnsignedIndexText(index.records().join(''), { arch: 'x86_64', description: 'main/glibc' }),
    );
    for (const at of [12, Math.floor(member.length / 2), member.length - 6]) {
      const flipped = Buffer.from(member);
      flipped[at]! ^= 0x08;
      refused(flipped);
    }
    refused(member.subarray(0, member.length - 1));
  });

  test('a chunk read back that does not match its CRC-32 is refused, not reused', () => {
    const index = ChunkedIndex.build(records, TINY);
    const options = { description: 'crc', mtime: 0 };
    const member = index.assemble(options);
    index.written();
    // A changed byte in every fragment, whichever chunk a call reads back.
    const flipped = Buffer.from(member);
    for (let at = 10; at < member.length - 20; at += 37) flipped[at]! ^= 0x40;
    assert.throws(() => index.assemble(options, memberSource(flipped)), /CRC-32/);
    assert.throws(() => index.assemble(options), /neither held nor written/);
    assert.ok(index.assemble(options, memberSource(member)).equals(member));
    assert.throws(() => index.update({ add: [], remove: [records[0]!] }, memberSource(flipped)), /CRC-32/);
  });

  test("records come in apk's order (the one-pass writer's sort)", () => {
    const entries = [entry('b', '1.0-r0'), entry('B', '2-r0'), entry('a', '1.10-r0'), entry('a', '1.9-r0')];
    for (let v = 0; v < 40; v++) entries.push(entry(`n${v % 7}`, `${v}.0-r0`));
    const index = ChunkedIndex.build(
      entries.map((e) => renderIndexRecord(e, 'x86_64')),
      TINY,
    );
    assert.ok(index.chunkCount > 3);
    const expected = sortIndexEntries(entries).map((e) => renderIndexRecord(e, 'x86_64'));
    assert.deepEqual(index.records(), expected);
  });

  test('a bad update throws and leaves the index as it was', () => {
    const index = ChunkedIndex.build(records.slice(0, 20), TINY);
    const before = index.assemble({ description: '', mtime: 0 });
    assert.throws(() => index.update({ add: [records[30]!], remove: [records[25]!] }), /not listed/);
    assert.throws(() => index.update({ add: [records[3]!], remove: [] }), /twice/);
    assert.ok(index.assemble({ description: '', mtime: 0 }).equals(before));
    assert.equal(index.count, 20);
  });

  test('removing every record and adding again works', () => {
    const index = ChunkedIndex.build(records.slice(0, 10), TINY);
    index.update({ add: [], remove: records.slice(0, 10) });
    assert.equal(index.count, 0);
    index.update({ add: records.slice(5, 15), remove: [] });
    const scratch = ChunkedIndex.build(records.slice(5, 15), TINY);
    assert.ok(
      index.assemble({ description: 'x', mtime: 0 }).equals(scratch.assemble({ description: 'x', mtime: 0 })),
    );
  });
});

describe('the assembled member', needsSharedFixtures, () => {
  // 4929 real records from Alpine's v3.16 index.
  const alpine = readFileSync(join(realFixturesDir(), 'go-apk/apk__alpine-316__APKINDEX.tar.gz'));
  const realText = (() => {
    // The tar entry's text: between its 512-byte header and the zero padding.
    const tarBytes = zlib.gunzipSync(alpine);
    for (let off = 0; off < tarBytes.length; ) {
      const name = tarBytes
        .subarray(off, off + 100)
        .toString('latin1')
        .replace(/\0.*$/s, '');
      const size = Number.parseInt(tarBytes.subarray(off + 124, off + 136).toString('latin1'), 8);
      if (name === 'APKINDEX') return tarBytes.subarray(off + 512, off + 512 + size).toString('utf8');
      off += 512 + Math.ceil(size / 512) * 512;
    }
    throw new Error('no APKINDEX in the fixture');
  })();

  // Alpine's records are not in reef's field order; reef renders what it parses.
  const realRecords = parseIndexText(realText).map(
    (r) => `${r.fields.map(([k, v]) => `${k}:${v}`).join('\n')}\n\n`,
  );
  const reordered = realRecords.map((t) => {
    const lines = t.trimEnd().split('\n');
    const first = (l: string) => lines.find((x) => x.startsWith(l))!;
    const rest = lines.filter((x) => !/^[CPV]:/.test(x));
    return `${[first('C:'), first('P:'), first('V:'), ...rest].join('\n')}\n\n`;
  });

  test('passes gzip -t, has the right CRC and ISIZE (python zlib), untars, and is within 10% of gzip -6', async () => {
    const index = ChunkedIndex.build(reordered);
    assert.ok(index.chunkCount > 10, `${index.chunkCount} chunks`);
    const member = index.assemble({ description: 'main/musl', mtime: 0 });
    const reopened = ChunkedIndex.fromMember(member, { description: 'main/musl', mtime: 0 });
    assert.deepEqual(reopened.layout(), index.layout(), 'the same chunks found again in 4,929 real records');
    const file = join(dir, 'unsigned.tar.gz');
    writeFileSync(file, member);
    execFileSync('gzip', ['-t', file]);
    // Python's gzip module checks CRC-32 and ISIZE while it decompresses; the
    // trailer is also compared with zlib.crc32 of the whole decompressed tar.
    const py = execFileSync(
      'python3',
      [
        '-c',
        `import gzip, struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
t = gzip.decompress(d)
crc, isize = struct.unpack('<II', d[-8:])
assert crc == zlib.crc32(t), 'crc'
assert isize == len(t) % 2**32, 'isize'
print(len(t))`,
        file,
      ],
      { encoding: 'utf8' },
    );
    const text = execFileSync('tar', ['-xzOf', file, 'APKINDEX'], { encoding: 'utf8', maxBuffer: 2 ** 26 });
    assert.equal(Number(py.trim()), zlib.gunzipSync(member).length);
    assert.deepEqual(execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n'), [
      'DESCRIPTION',
      'APKINDEX',
    ]);
    assert.equal(execFileSync('tar', ['-xzOf', file, 'DESCRIPTION'], { encoding: 'utf8' }), 'main/musl');
    assert.equal(text, index.records().join(''));
    assert.deepEqual(
      [...parseIndexText(text).map((r) => r.checksum)].sort(),
      realRecords.map((t) => t.slice(2, 32)).sort(),
    );

    // Same tar bytes as reef's one-pass writer (tar-stream), so only the compression differs.
    const onePass = await writeUnsignedIndexText(text, { arch: 'x86_64', description: 'main/musl' });
    assert.ok(gunzip(onePass).equals(gunzip(member)), 'same tar as the one-pass writer');

    const tarFile = join(dir, 'index.tar');
    writeFileSync(tarFile, gunzip(member));
    const gzip6 = execFileSync('gzip', ['-6', '-n', '-c', tarFile]).length;
    assert.ok(member.length <= gzip6 * 1.1, `chunked ${member.length} bytes vs gzip -6 ${gzip6}`);
  });

  test('signed: openssl verifies the signature over the member, and reef reads back every record', async () => {
    const signer = generateRsaKey();
    const keyName = 'reef-chunks.rsa.pub';
    const index = ChunkedIndex.build(reordered.slice(0, 700));
    const { bytes, memberOffset } = await writeIndexFromChunks(index, {
      description: 'main/musl',
      signers: [{ keyName, privateKey: signer.privateKey, algorithms: ['RSA256', 'RSA'] }],
    });
    const file = join(dir, 'APKINDEX.tar.gz');
    writeFileSync(file, bytes);
    execFileSync('gzip', ['-t', file]);
    const unsigned = index.assemble({ description: 'main/musl', mtime: 0 });
    assert.ok(bytes.subarray(bytes.length - unsigned.length).equals(unsigned));
    assert.equal(memberOffset, bytes.length - unsigned.length);
    assert.equal(indexMemberOffset(bytes), memberOffset, 'the member is found after the signature');
    assert.equal(indexMemberOffset(unsigned), 0);
    // openssl over the signed part as Python's zlib splits it off, one call per .SIGN entry.
    assert.deepEqual(opensslVerifyIndex(file, { [keyName]: signer.publicPem }, dir).sort(), [
      `.SIGN.RSA.${keyName}`,
      `.SIGN.RSA256.${keyName}`,
    ]);
    const back = await readIndex(chunked(bytes), {
      keys: [loadPublicKey(keyName, signer.publicPem)],
      requireValidSignature: true,
    });
    assert.equal(back.description, 'main/musl');
    assert.deepEqual(
      back.records.map((r) => r.checksum).sort(),
      reordered
        .slice(0, 700)
        .map((t) => t.slice(2, 32))
        .sort(),
    );
  });
});
