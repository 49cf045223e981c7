import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseDependencyList } from '../../src/apk/dependency.ts';
import { parseIndexText, readIndex } from '../../src/apk/index-reader.ts';
import { parsePkgInfo } from '../../src/apk/pkginfo.ts';
import { readApk } from '../../src/apk/read-apk.ts';
import {
  assertValidVersion,
  compareVersions,
  isValidVersion,
  matchVersion,
  splitNameVersion,
} from '../../src/apk/version.ts';
import { ERROR_CODES, isAppError } from '../../src/errors.ts';
import { checkDescribes, parseSbom } from '../../src/sbom/parse.ts';
import { chunked } from '../helpers/apk-builder.ts';
import { sampleSpdx } from '../sbom/sbom-fixtures.ts';
import { BLOCK, gz, makeApk, tar } from './tar.ts';

/**
 * Property-based fuzzing of the parsers of untrusted bytes. Each property
 * runs a bounded number of times within a time limit; the seed of a failure
 * is printed by fast-check, so it can be replayed.
 *
 * The property everywhere: a parser returns, or throws an AppError whose code
 * is one of reef's (so it becomes a 4xx), never a TypeError or RangeError
 * (a 500), and never hangs.
 */

const RUNS = { numRuns: 300, interruptAfterTimeLimit: 3000 };

/** Fails on a promise that never settles, instead of letting the test hang. */
async function settles<T>(p: Promise<T>, what: string): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within 10 s`)), 10_000);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn`; passes if it returns or throws an AppError with a client-error code of `prefixes`. */
async function onlyAppErrors(fn: () => unknown, prefixes: string[]): Promise<void> {
  try {
    await settles(Promise.resolve().then(fn), 'the parser');
  } catch (err) {
    if (!isAppError(err)) throw new Error(`threw ${(err as Error)?.stack ?? err}`);
    assert.ok(err.code in ERROR_CODES, err.code);
    assert.notEqual(err.kind, 'internal', `${err.code}: ${err.message}`);
    assert.ok(
      prefixes.some((p) => err.code.startsWith(p)),
      `${err.code} is not one of ${prefixes.join(', ')}: ${err.message}`,
    );
  }
}

/** Edits of a byte string: flips, overwrites, insertions, deletions, a cut. */
const mutation = (length: number) =>
  fc.oneof(
    fc.record({
      op: fc.constant('flip' as const),
      at: fc.nat(length - 1),
      mask: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({
      op: fc.constant('set' as const),
      at: fc.nat(length - 1),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({
      op: fc.constant('insert' as const),
      at: fc.nat(length),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }),
    }),
    fc.record({
      op: fc.constant('delete' as const),
      at: fc.nat(length - 1),
      count: fc.integer({ min: 1, max: 600 }),
    }),
    fc.record({ op: fc.constant('cut' as const), at: fc.nat(length) }),
  );

type Mutation =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'set'; at: number; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'cut'; at: number };

function mutate(input: Buffer, edits: Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const e of edits) {
    const at = Math.min(e.at, Math.max(0, b.length - 1));
    if (e.op === 'flip' && b.length > 0) b[at]! ^= e.mask;
    else if (e.op === 'set')
      b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at + e.bytes.length)]);
    else if (e.op === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
    else if (e.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.count)]);
    else if (e.op === 'cut') b = b.subarray(0, Math.min(e.at, b.length));
  }
  return b;
}

const mutations = (length: number) => fc.array(mutation(length), { minLength: 1, maxLength: 4 });

/** Small limits, so that fuzzed inputs reach every bound too. */
const SMALL = {
  maxControlMemberBytes: 64 * 1024,
  maxSignatureMemberBytes: 8 * 1024,
  maxPkginfoBytes: 4096,
  maxPkginfoLines: 200,
  maxEntries: 40,
  maxNameLength: 256,
  maxSbomBytes: 4096,
  maxDecompressedBytes: 2 * 2 ** 20,
};

describe('fuzzing the package reader', () => {
  const apk = makeApk().bytes;
  const apkParts = makeApk();

  test('random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 4096 }),
        fc.integer({ min: 1, max: 700 }),
        async (bytes, chunk) =>
          onlyAppErrors(() => readApk(chunked(Buffer.from(bytes), chunk), { limits: SMALL }), ['APK_']),
      ),
      RUNS,
    );
  });

  test('a valid package, mutated in its compressed bytes', async () => {
    await fc.assert(
      fc.asyncProperty(mutations(apk.length), fc.integer({ min: 1, max: 2000 }), async (edits, chunk) =>
        onlyAppErrors(() => readApk(chunked(mutate(apk, edits), chunk), { limits: SMALL }), ['APK_']),
      ),
      RUNS,
    );
  });

  test('a valid package, mutated inside its tar streams (re-gzipped)', async () => {
    const tars = [apkParts.controlTar, apkParts.dataTar!];
    await fc.assert(
      fc.asyncProperty(
        fc.nat(1),
        mutations(BLOCK * 4),
        fc.integer({ min: 1, max: 2000 }),
        async (which, edits, chunk) => {
          const members = [apkParts.controlMember, apkParts.dataMember];
          members[which] = gz(mutate(tars[which]!, edits), 1);
          return onlyAppErrors(
            () => readApk(chunked(Buffer.concat(members), chunk), { limits: SMALL }),
            ['APK_'],
          );
        },
      ),
      RUNS,
    );
  });

  test('random tar entries as control and data', async () => {
    const entry = fc.record({
      name: fc.oneof(
        fc.string({ maxLength: 120 }),
        fc.constantFrom('.PKGINFO', '.SIGN.RSA.k', '../x', '/etc/x', 'a/b', '.post-install'),
      ),
      type: fc.constantFrom('0', '1', '2', '3', '5', 'x', 'L', 'g', 'K', 'S', '\0'),
      body: fc.oneof(
        fc.string({ maxLength: 600 }),
        fc.constant('pkgname = a\npkgver = 1-r0\narch = noarch\nsize = 1\ndatahash = 00\n'),
      ),
      linkname: fc.string({ maxLength: 60 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { maxLength: 6 }),
        fc.array(entry, { maxLength: 6 }),
        fc.boolean(),
        async (control, data, eoa) => {
          const bytes = Buffer.concat([gz(tar(control, false), 1), gz(tar(data, eoa), 1)]);
          return onlyAppErrors(() => readApk(chunked(bytes, 512), { limits: SMALL }), ['APK_']);
        },
      ),
      RUNS,
    );
  });

  test('.PKGINFO text and dependency lists', async () => {
    const line = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc
        .tuple(
          fc.constantFrom(
            'pkgname',
            'pkgver',
            'arch',
            'size',
            'datahash',
            'depend',
            'provides',
            'install_if',
            'replaces',
            'license',
            'builddate',
            'provider_priority',
            'replaces_priority',
            'triggers',
          ),
          fc.string({ maxLength: 80 }),
        )
        .map(([k, v]) => `${k} = ${v}`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { maxLength: 30 }),
        fc.uint8Array({ maxLength: 8 }),
        async (lines, junk) => {
          const bytes = Buffer.concat([Buffer.from(lines.join('\n')), Buffer.from(junk)]);
          await onlyAppErrors(() => parsePkgInfo(bytes, { maxBytes: 4096, maxLines: 100 }), ['APK_']);
          await onlyAppErrors(() => parseDependencyList(lines.join(' ')), ['APK_']);
        },
      ),
      RUNS,
    );
  });
});

describe('fuzzing the index reader', () => {
  const APKINDEX = 'C:Q1abc=\nP:hello\nV:1.0-r0\nA:x86_64\nS:10\nI:20\nD:so:libc.musl-x86_64.so.1\n\n';
  const indexTar = tar(
    [
      { name: 'DESCRIPTION', body: 'd' },
      { name: 'APKINDEX', body: APKINDEX },
    ],
    true,
  );
  const index = Buffer.concat([
    gz(tar([{ name: '.SIGN.RSA256.k.rsa.pub', body: Buffer.alloc(256, 7) }], false)),
    gz(indexTar),
  ]);

  test('a valid index, mutated in its compressed bytes or inside its tar', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        mutations(index.length),
        fc.integer({ min: 1, max: 2000 }),
        async (inTar, edits, chunk) => {
          const bytes = inTar
            ? Buffer.concat([
                index.subarray(0, index.length - gz(indexTar).length),
                gz(mutate(indexTar, edits), 1),
              ])
            : mutate(index, edits);
          return onlyAppErrors(
            () => readIndex(chunked(bytes, chunk), { maxDecompressedBytes: 2 ** 20 }),
            ['INDEX_', 'APK_INVALID'],
          );
        },
      ),
      RUNS,
    );
  });

  test('random APKINDEX text', async () => {
    const line = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc
        .tuple(
          fc.constantFrom(
            'C',
            'P',
            'V',
            'A',
            'S',
            'I',
            'D',
            'p',
            'i',
            'o',
            'm',
            't',
            'c',
            'k',
            'T',
            'U',
            'L',
          ),
          fc.string({ maxLength: 40 }),
        )
        .map(([k, v]) => `${k}:${v}`),
      fc.constant(''),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 40 }), async (lines) => {
        let records: ReturnType<typeof parseIndexText> = [];
        await onlyAppErrors(() => {
          records = parseIndexText(lines.join('\n'));
        }, ['INDEX_']);
        // What parses has what a record needs.
        for (const r of records) assert.ok(r.name && r.version && r.checksum);
      }),
      RUNS,
    );
  });
});

describe('fuzzing version parsing', () => {
  // Versions from apk's grammar, and strings near it.
  const digits = fc.stringMatching(/^[0-9]{1,4}$/);
  const valid = fc
    .tuple(
      fc.array(digits, { minLength: 1, maxLength: 4 }),
      fc.option(fc.constantFrom('a', 'b', 'z')),
      fc.array(
        fc.tuple(
          fc.constantFrom('alpha', 'beta', 'pre', 'rc', 'cvs', 'svn', 'git', 'hg', 'p'),
          fc.option(digits),
        ),
        { maxLength: 2 },
      ),
      fc.option(fc.stringMatching(/^[0-9a-f]{1,8}$/)),
      fc.option(digits),
    )
    .map(
      ([nums, letter, suffixes, hash, rev]) =>
        `${nums.join('.')}${letter ?? ''}${suffixes.map(([s, n]) => `_${s}${n ?? ''}`).join('')}${hash ? `~${hash}` : ''}${rev ? `-r${rev}` : ''}`,
    );
  const nearly = fc.stringMatching(/^[0-9a-z._~-]{0,20}$/);
  const any = fc.oneof(valid, nearly, fc.string({ maxLength: 30 }));

  test('the grammar generator only makes valid versions', () => {
    fc.assert(
      fc.property(valid, (v) => {
        assert.ok(isValidVersion(v), v);
      }),
      RUNS,
    );
  });

  test('validation never throws anything but APK_INVALID_VERSION', () => {
    fc.assert(
      fc.property(any, (v) => {
        assert.equal(typeof isValidVersion(v), 'boolean');
        try {
          assertValidVersion(v, 'pkgver');
          assert.ok(isValidVersion(v));
        } catch (err) {
          assert.ok(isAppError(err, 'APK_INVALID_VERSION'), String(err));
        }
        const split = splitNameVersion(`name-${v}`);
        if (split) assert.equal(`${split.name}-${split.version}`, `name-${v}`);
      }),
      RUNS,
    );
  });

  test('comparison is reflexive, antisymmetric and agrees with the operators', () => {
    fc.assert(
      fc.property(any, any, (a, b) => {
        assert.equal(compareVersions(a, a), 0);
        assert.equal(compareVersions(a, b), -compareVersions(b, a) || 0, `${a} vs ${b}`);
        const c = compareVersions(a, b);
        assert.equal(matchVersion(a, '<', b), c < 0);
        assert.equal(matchVersion(a, '=', b), c === 0);
        assert.equal(matchVersion(a, '>=', b), c >= 0);
      }),
      RUNS,
    );
  });

  test('comparison of valid versions is transitive', () => {
    fc.assert(
      fc.property(valid, valid, valid, (a, b, c) => {
        const sorted = [a, b, c].sort(compareVersions);
        assert.ok(compareVersions(sorted[0]!, sorted[1]!) <= 0);
        assert.ok(compareVersions(sorted[1]!, sorted[2]!) <= 0);
        assert.ok(compareVersions(sorted[0]!, sorted[2]!) <= 0, sorted.join(' ≤ '));
      }),
      RUNS,
    );
  });
});

describe('fuzzing the SBOM parsers', () => {
  const golden = Buffer.from(JSON.stringify(sampleSpdx('sed', '4.9-r8'), null, 2));
  const cdx = Buffer.from(
    JSON.stringify({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      version: 1,
      metadata: { component: { type: 'application', name: 'sed', version: '4.9-r8', 'bom-ref': 'sed' } },
      components: [{ type: 'library', name: 'zlib', version: '1.3', 'bom-ref': 'zlib' }],
      dependencies: [{ ref: 'sed', dependsOn: ['zlib'] }],
    }),
  );

  const check = (bytes: Buffer) =>
    onlyAppErrors(() => {
      const parsed = parseSbom(bytes, { maxBytes: 2 ** 20, maxDepth: 32 });
      checkDescribes(parsed, { name: 'sed', version: '4.9-r8' });
    }, ['SBOM_']);

  test('the seeds parse and describe sed', () => {
    for (const seed of [golden, cdx]) checkDescribes(parseSbom(seed), { name: 'sed', version: '4.9-r8' });
  });

  test('arbitrary JSON values and bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 40 }).map((v) => Buffer.from(JSON.stringify(v) ?? '')),
          fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
        ),
        check,
      ),
      RUNS,
    );
  });

  test('valid SPDX and CycloneDX documents, mutated as text', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(mutation(cdx.length), { minLength: 1, maxLength: 3 }),
        async (spdx, edits) => check(mutate(spdx ? golden : cdx, edits)),
      ),
      { ...RUNS, numRuns: 150 },
    );
  });

  test('valid documents with a field replaced by an arbitrary value', async () => {
    const docs = [JSON.parse(golden.toString('utf8')), JSON.parse(cdx.toString('utf8'))];
    const paths = (v: unknown, prefix: string[] = [], out: string[][] = []): string[][] => {
      if (v && typeof v === 'object' && out.length < 400) {
        for (const [k, child] of Object.entries(v)) {
          out.push([...prefix, k]);
          paths(child, [...prefix, k], out);
        }
      }
      return out;
    };
    const all = docs.map((d) => paths(d));
    await fc.assert(
      fc.asyncProperty(fc.nat(1), fc.nat(), fc.jsonValue({ maxDepth: 4 }), async (which, pick, value) => {
        const doc = structuredClone(docs[which]);
        const path = all[which]![pick % all[which]!.length]!;
        let node = doc;
        for (const k of path.slice(0, -1)) node = node[k];
        node[path.at(-1)!] = value;
        return check(Buffer.from(JSON.stringify(doc)));
      }),
      RUNS,
    );
  });
});
