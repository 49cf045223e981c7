import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { test } from 'node:test';
import { type ReadIndexOptions, readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { type ErrorCode, isAppError } from '../../src/errors.ts';
import { chunked, generateRsaKey } from '../helpers/apk-builder.ts';
import { tarBoundaries } from './corpus.ts';
import { BLOCK, gz, tar, tarEntry, ustarHeader } from './tar.ts';

/**
 * Malformed APKINDEX.tar.gz files. No HTTP route accepts an index (reef
 * builds its own), so they go to the index reader that `reef fsck` and the
 * tests use, with the signature required as apk requires it.
 */

const key = generateRsaKey();
const other = generateRsaKey();
const KEY_NAME = 'hostile-index.rsa.pub';
const keys = [loadPublicKey(KEY_NAME, key.publicPem)];

const APKINDEX = [
  'C:Q1hHHvn1YkU2zGxkp1bZI9lJSYOaA=',
  'P:hello',
  'V:1.0-r0',
  'A:x86_64',
  'S:1234',
  'I:4096',
  'T:the hello package',
  '',
  'C:Q1aaaaaaaaaaaaaaaaaaaaaaaaaaaa=',
  'P:world',
  'V:2.0-r1',
  'A:x86_64',
  'S:999',
  'I:2048',
  `T:${'a long description '.repeat(40)}`,
  '',
  '',
].join('\n');

function indexTar(apkindex = APKINDEX): Buffer {
  return tar(
    [
      { name: 'DESCRIPTION', body: 'hostile test index' },
      { name: 'APKINDEX', body: apkindex },
    ],
    true,
  );
}

function signed(indexMember: Buffer, privateKey = key.privateKey, name = KEY_NAME): Buffer {
  return gz(tar([{ name: `.SIGN.RSA256.${name}`, body: sign('sha256', indexMember, privateKey) }], false));
}

function flip(buf: Buffer, at: number, mask: number): Buffer {
  const out = Buffer.from(buf);
  out[at]! ^= mask;
  return out;
}

test('malformed indexes are refused with their INDEX_* code', { timeout: 60_000 }, async (t) => {
  const itar = indexTar();
  const index = gz(itar);
  const sigMember = signed(index);
  const sigTar = tar(
    [{ name: `.SIGN.RSA256.${KEY_NAME}`, body: sign('sha256', index, key.privateKey) }],
    false,
  );
  const whole = Buffer.concat([sigMember, index]);
  // The base index is good: the corpus differs from it by its faults only.
  const good = await readIndex(chunked(whole, 512), { keys, requireValidSignature: true });
  assert.deepEqual(
    good.records.map((r) => r.name),
    ['hello', 'world'],
  );

  const cases: Array<{ name: string; bytes: Buffer; code: ErrorCode; options?: ReadIndexOptions }> = [];
  const add = (name: string, bytes: Buffer, code: ErrorCode, options?: ReadIndexOptions) =>
    cases.push({ name, bytes, code, options });

  // Truncation of the file.
  const cuts = new Set<number>();
  for (const [start, end] of [
    [0, sigMember.length],
    [sigMember.length, whole.length],
  ] as const) {
    for (const at of [start + 1, start + 3, start + 9, start + 10, (start + end) >> 1, end - 8, end - 1])
      cuts.add(at);
  }
  cuts.add(sigMember.length);
  for (let at = 1; at < whole.length; at += 97) cuts.add(at);
  for (const at of cuts) {
    const code: ErrorCode =
      at < 10 ? 'INDEX_NOT_GZIP' : at === sigMember.length ? 'INDEX_MISSING_APKINDEX' : 'INDEX_CORRUPT';
    add(`cut at byte ${at}`, whole.subarray(0, at), code);
  }
  add('empty', Buffer.alloc(0), 'INDEX_CORRUPT');

  // Truncation of each tar at every block boundary.
  for (let k = 0; k < sigTar.length / BLOCK; k++) {
    add(
      `signature tar cut at block ${k}`,
      Buffer.concat([gz(sigTar.subarray(0, k * BLOCK)), index]),
      'INDEX_CORRUPT',
    );
  }
  const bounds = tarBoundaries(itar);
  const apkindexEnd = Math.max(...[...bounds].filter((b) => b * BLOCK <= itar.length - 1024));
  for (let k = 0; k < apkindexEnd; k++) {
    const cut = gz(itar.subarray(0, k * BLOCK));
    // A cut between DESCRIPTION and APKINDEX leaves no APKINDEX; nothing at all is a member without entries.
    const code: ErrorCode = k > 0 && bounds.has(k) ? 'INDEX_MISSING_APKINDEX' : 'INDEX_CORRUPT';
    add(`index tar cut at block ${k}`, Buffer.concat([signed(cut), cut]), code);
  }

  // Bit flips: gzip headers and trailers, tar header fields.
  for (const [m, start, end] of [
    [0, 0, sigMember.length],
    [1, sigMember.length, whole.length],
  ] as const) {
    for (const at of [0, 1, 2]) {
      add(
        `member ${m} magic byte ${at}`,
        flip(whole, start + at, 1),
        m === 0 ? 'INDEX_NOT_GZIP' : 'INDEX_CORRUPT',
      );
    }
    add(`member ${m} reserved flag`, flip(whole, start + 3, 0x80), 'INDEX_CORRUPT');
    for (let t = 1; t <= 8; t++)
      add(`member ${m} trailer byte -${t}`, flip(whole, end - t, 0x08), 'INDEX_CORRUPT');
  }
  for (const [what, tarBytes, isSig] of [
    ['signature', sigTar, true],
    ['index', itar, false],
  ] as const) {
    for (let b = 0; b * BLOCK < tarBytes.length; b++) {
      const h = tarBytes.subarray(b * BLOCK, b * BLOCK + 262);
      if (h.toString('latin1', 257, 262) !== 'ustar') continue;
      for (const [field, off] of [
        ['magic', 257],
        ['size', 124],
        ['mode', 100],
        ['uid', 108],
        ['mtime', 136],
        ['type', 156],
      ] as const) {
        const bad = gz(flip(tarBytes, b * BLOCK + off, 0x40));
        add(
          `${what} tar block ${b}: ${field} flipped`,
          isSig ? Buffer.concat([bad, index]) : Buffer.concat([signed(bad), bad]),
          'INDEX_CORRUPT',
        );
      }
    }
  }

  // Structure.
  add(
    'signature member with end-of-archive blocks',
    Buffer.concat([gz(Buffer.concat([sigTar, Buffer.alloc(1024)])), index]),
    'INDEX_CORRUPT',
  );
  add('two index members', Buffer.concat([sigMember, index, index]), 'INDEX_CORRUPT');
  add(
    'index member holding a signature',
    Buffer.concat([sigMember, gz(Buffer.concat([tarEntry({ name: '.SIGN.RSA.x', body: 'x' }), itar]))]),
    'INDEX_CORRUPT',
  );
  add(
    'signature member holding APKINDEX',
    Buffer.concat([gz(Buffer.concat([sigTar, tarEntry({ name: 'APKINDEX', body: APKINDEX })])), index]),
    'INDEX_CORRUPT',
  );
  add('trailing garbage', Buffer.concat([whole, Buffer.from('garbage')]), 'INDEX_CORRUPT');
  add(
    'APKINDEX named ../APKINDEX',
    (() => {
      const m = gz(tar([{ name: '../APKINDEX', body: APKINDEX }], true));
      return Buffer.concat([signed(m), m]);
    })(),
    'INDEX_CORRUPT',
  );
  {
    const huge = ustarHeader({ name: 'APKINDEX', type: '0', size: 2 ** 30 });
    const m = gz(huge);
    add('APKINDEX entry claiming 1 GiB', Buffer.concat([signed(m), m]), 'INDEX_TOO_LARGE');
  }
  {
    const m = gz(
      tar(
        Array.from({ length: 1001 }, (_, i) => ({ name: `f${i}`, body: '' })),
        true,
      ),
    );
    add('1001 tar entries', Buffer.concat([signed(m), m]), 'INDEX_TOO_LARGE');
  }
  {
    const m = gz(Buffer.concat([itar, Buffer.alloc(40 * 2 ** 20)]), 9);
    add('40 MiB of zeros after the index (limit 32 MiB)', Buffer.concat([signed(m), m]), 'INDEX_TOO_LARGE', {
      maxDecompressedBytes: 32 * 2 ** 20,
    });
  }

  // Records and signatures.
  for (const [what, text] of [
    ['a line that is not X:value', `${APKINDEX}garbage line\n`],
    ['a record without C:', 'P:x\nV:1.0-r0\nA:x86_64\n\n'],
    ['a record with an empty P:', 'C:Q1x=\nP:\nV:1.0-r0\n\n'],
    ['a record without V:', 'C:Q1x=\nP:x\n\n'],
  ] as const) {
    const m = gz(indexTar(text));
    add(`APKINDEX with ${what}`, Buffer.concat([signed(m), m]), 'INDEX_BAD_RECORD');
  }
  add('unsigned', index, 'INDEX_UNSIGNED');
  add(
    'signed by another key of the same name',
    Buffer.concat([signed(index, other.privateKey), index]),
    'INDEX_SIGNATURE_INVALID',
  );
  add(
    'signed with an unknown key name',
    Buffer.concat([signed(index, key.privateKey, 'nobody.rsa.pub'), index]),
    'INDEX_SIGNATURE_INVALID',
  );
  add(
    'index re-compressed after signing',
    Buffer.concat([sigMember, gz(itar, 1)]),
    'INDEX_SIGNATURE_INVALID',
  );
  {
    const bodyAt = BLOCK + 10; // a byte of the signature itself
    add(
      'signature bytes flipped',
      Buffer.concat([gz(flip(sigTar, bodyAt, 1)), index]),
      'INDEX_SIGNATURE_INVALID',
    );
  }

  assert.ok(cases.length >= 80, `${cases.length} cases`);
  t.diagnostic(`${cases.length} malformed indexes`);
  const failures: string[] = [];
  for (const c of cases) {
    try {
      await readIndex(chunked(c.bytes, 1000), { keys, requireValidSignature: true, ...c.options });
      failures.push(`${c.name}: accepted`);
    } catch (err) {
      if (!isAppError(err) || err.code !== c.code) {
        failures.push(`${c.name}: got ${isAppError(err) ? err.code : err}, want ${c.code}`);
      }
    }
  }
  assert.deepEqual(failures, []);
});
