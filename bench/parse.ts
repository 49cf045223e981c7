import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { build } from 'esbuild';
import { gzipMember, packTar } from '../test/helpers/apk-builder.ts';
import {
  type BenchResult,
  checkCommand,
  log,
  MiB,
  makeTempDir,
  median,
  round,
  runCommand,
  startNodeFlags,
} from './support.ts';

/**
 * Parsing throughput: readApk over a >= 200 MiB package on disk, against
 * `gzip -dc | sha256sum` over the same file, alternated in one run so both
 * see the same page cache and machine load.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MIN_APK_BYTES = 200 * MiB;
const ROUNDS = 5;
const MTIME = 1_700_000_000;

export async function benchParse(): Promise<BenchResult> {
  const temp = await makeTempDir('parse');
  try {
    const apkPath = join(temp.path, 'bench-big-1.0.0-r0.apk');
    const t0 = performance.now();
    const generated = await generateBigApk(temp.path, apkPath);
    const generateMs = performance.now() - t0;
    const fileBytes = (await stat(apkPath)).size;
    if (fileBytes < MIN_APK_BYTES) throw new Error(`generated package is only ${fileBytes} bytes`);
    log(
      `parse: generated ${(fileBytes / MiB).toFixed(1)} MiB (${generated.entries} entries, ` +
        `${(generated.tarBytes / MiB).toFixed(1)} MiB uncompressed) in ${(generateMs / 1000).toFixed(1)} s`,
    );

    // Pull the file into the page cache so round 1 is not the only one reading from disk.
    checkCommand('cat', await runCommand('bash', ['-c', 'cat "$1" > /dev/null', 'cat', apkPath]));

    const childBundle = join(temp.path, 'parse-child.mjs');
    await build({
      entryPoints: [join(ROOT, 'bench/parse-child.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      // CommonJS dependencies (tar-stream's streamx) require Node built-ins: give the ESM bundle a require.
      banner: {
        js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      },
      outfile: childBundle,
      logLevel: 'warning',
    });
    const tsxChild = JSON.parse(
      checkCommand(
        'parse-child (tsx)',
        await runCommand(
          process.execPath,
          [...startNodeFlags(), '--import', 'tsx', join(ROOT, 'bench/parse-child.ts'), apkPath],
          {
            cwd: ROOT,
          },
        ),
      )
        .stdout.trim()
        .split('\n')
        .at(-1)!,
    ) as { maxRssKB: number };

    const baselineMs: number[] = [];
    const reefMs: number[] = [];
    const reefWallMs: number[] = [];
    const reefRssKB: number[] = [];
    const reefRssBeforeKB: number[] = [];
    const children: unknown[] = [];
    let baselineDigest = '';
    for (let round = 1; round <= ROUNDS; round++) {
      const base = checkCommand(
        'gzip -dc | sha256sum',
        await runCommand('bash', ['-c', 'set -o pipefail; gzip -dc "$1" | sha256sum', 'baseline', apkPath]),
      );
      baselineMs.push(base.ms);
      baselineDigest = base.stdout.split(' ')[0] ?? '';

      // The parser runs as plain JavaScript (bundled by esbuild), as a built
      // deployment would; under tsx the loader alone adds ~35 MiB of RSS.
      const child = checkCommand(
        'parse-child',
        // With npm start's node flags: on Node 24 the young generation otherwise grows to 100+ MiB.
        await runCommand(process.execPath, [...startNodeFlags(), childBundle, apkPath], { cwd: ROOT }),
      );
      const parsed = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
        ms: number;
        maxRssKB: number;
        rssBeforeKB: number;
        size: number;
        files: number;
        datahashMatches: boolean;
      };
      if (parsed.size !== fileBytes || !parsed.datahashMatches || parsed.files !== generated.entries) {
        throw new Error(`readApk disagrees with the generator: ${child.stdout}`);
      }
      reefMs.push(parsed.ms);
      reefWallMs.push(child.ms);
      reefRssKB.push(parsed.maxRssKB);
      reefRssBeforeKB.push(parsed.rssBeforeKB);
      children.push(parsed);
      log(
        `parse: round ${round}: baseline ${(base.ms / 1000).toFixed(2)} s, reef ${(parsed.ms / 1000).toFixed(2)} s ` +
          `(${(parsed.maxRssKB / 1024).toFixed(0)} MiB peak RSS)`,
      );
    }

    const mibps = (ms: number) => fileBytes / MiB / (ms / 1000);
    const baselineMiBps = mibps(median(baselineMs));
    const reefMiBps = mibps(median(reefMs));
    const ratio = reefMiBps / baselineMiBps;
    const peakRssMiB = Math.max(...reefRssKB) / 1024;
    const floorMiB = median(reefRssBeforeKB) / 1024;
    const growthMiB = Math.max(...reefRssKB.map((kb, i) => kb - reefRssBeforeKB[i]!)) / 1024;
    return {
      name: 'parse',
      metrics: [
        { name: 'file size', value: round(fileBytes / MiB, 1), unit: 'MiB' },
        { name: 'baseline gzip -dc | sha256sum', value: round(baselineMiBps, 1), unit: 'MiB/s' },
        { name: 'reef readApk', value: round(reefMiBps, 1), unit: 'MiB/s' },
        {
          name: 'ratio reef / baseline',
          value: round(ratio, 3),
          unit: 'x',
          goal: '>= 0.8',
          ok: ratio >= 0.8,
        },
        {
          name: 'reef peak RSS (whole child, plain node)',
          value: round(peakRssMiB, 1),
          unit: 'MiB',
          goal: '< 100',
          ok: peakRssMiB < 100,
        },
        { name: 'reef RSS before parsing (plain node)', value: round(floorMiB, 1), unit: 'MiB' },
        {
          name: 'reef peak RSS under tsx (for reference)',
          value: round(tsxChild.maxRssKB / 1024, 1),
          unit: 'MiB',
        },
        { name: 'reef RSS growth while parsing', value: round(growthMiB, 1), unit: 'MiB' },
      ],
      details: {
        fileBytes,
        generated,
        generateMs,
        rounds: ROUNDS,
        baselineMs,
        baselineDigest,
        reefMs,
        reefChildWallMs: reefWallMs,
        reefMaxRssKB: reefRssKB,
        reefRssBeforeKB,
        children,
      },
      notes: [],
    };
  } finally {
    await temp.cleanup();
  }
}

// ---------------------------------------------------------------- the package

interface Generated {
  entries: number;
  tarBytes: number;
  dataMemberBytes: number;
  /** Uncompressed bytes of each kind of content. */
  kinds: Record<ContentKind, number>;
}

type ContentKind = 'text' | 'random' | 'binary';

/**
 * Streams a data tar through gzip -6 into a temp file while hashing the member
 * (the datahash), then writes control member + data member as the .apk.
 * Nothing of package size is held in memory.
 */
export async function generateBigApk(dir: string, apkPath: string): Promise<Generated> {
  const dataPath = join(dir, 'data.tar.gz');
  const hash = createHash('sha256');
  const counter = { compressed: 0 };
  const stats: Generated = {
    entries: 0,
    tarBytes: 0,
    dataMemberBytes: 0,
    kinds: { text: 0, random: 0, binary: 0 },
  };
  const measure = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      counter.compressed += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(
    batch(dataTar(new Rng(0x5eed), counter, stats)),
    zlib.createGzip({ level: 6 }),
    measure,
    createWriteStream(dataPath),
  );
  stats.dataMemberBytes = counter.compressed;
  const datahash = hash.digest('hex');

  const pkginfo = [
    '# Generated by reef bench',
    'pkgname = bench-big',
    'pkgver = 1.0.0-r0',
    'pkgdesc = a large package for parse benchmarks',
    'url = https://example.org/',
    `builddate = ${MTIME}`,
    `size = ${stats.tarBytes}`,
    'arch = x86_64',
    'origin = bench-big',
    'license = MIT',
    'depend = so:libc.so.6',
    `datahash = ${datahash}`,
    '',
  ].join('\n');
  const body = Buffer.from(pkginfo);
  const controlTar = await packTar(
    [{ header: { name: '.PKGINFO', size: body.length, mode: 0o644, mtime: new Date(MTIME * 1000) }, body }],
    false,
  );
  await writeFile(apkPath, gzipMember(controlTar));
  await pipeline(createReadStream(dataPath), createWriteStream(apkPath, { flags: 'a' }));
  await unlink(dataPath);
  return stats;
}

/** Small tar headers are joined into ~1 MiB chunks; gzip handles few large writes best. */
async function* batch(source: Iterable<Buffer>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let bytes = 0;
  for (const chunk of source) {
    parts.push(chunk);
    bytes += chunk.length;
    if (bytes >= MiB) {
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}

/**
 * The data tar, as abuild writes it: directories, files and symlinks, each
 * file and symlink preceded by a pax header carrying APK-TOOLS.checksum.SHA1.
 * It stops once the compressed output has reached the size goal.
 */
function* dataTar(rng: Rng, counter: { compressed: number }, stats: Generated): Generator<Buffer> {
  const vocab = makeVocabulary(rng, 4000);
  const emit = (b: Buffer) => {
    stats.tarBytes += b.length;
    return b;
  };
  let dirIndex = -1;
  let dir = '';
  let fileIndex = 0;
  // The compressed bytes lag the tar by what gzip and the stream buffers hold: a few MiB at most.
  while (counter.compressed < MIN_APK_BYTES + 2 * MiB) {
    if (fileIndex % 40 === 0) {
      dirIndex++;
      dir = `usr/share/bench/d${String(dirIndex).padStart(4, '0')}`;
      stats.entries++;
      yield emit(tarHeader({ name: `${dir}/`, type: '5', size: 0, mode: 0o755 }));
    }
    const kindRoll = rng.float();
    const kind: ContentKind = kindRoll < 0.45 ? 'text' : kindRoll < 0.85 ? 'random' : 'binary';
    // Log-uniform sizes from 64 B to 1 MiB: many small files, a few big ones.
    const size = Math.floor(64 * 2 ** (rng.float() * 14));
    const content = Buffer.alloc((size + 3) & ~3);
    if (kind === 'text') fillText(content, rng, vocab);
    else if (kind === 'random') fillRandom(content, rng);
    else fillBinary(content, rng);
    const body = content.subarray(0, size);
    stats.kinds[kind] += size;
    const name = `${dir}/f${String(fileIndex).padStart(6, '0')}.${kind === 'text' ? 'txt' : 'bin'}`;
    fileIndex++;
    stats.entries++;
    yield emit(paxHeader(name, createHash('sha1').update(body).digest('hex')));
    yield emit(tarHeader({ name, type: '0', size, mode: 0o644 }));
    yield emit(body);
    const pad = (512 - (size % 512)) % 512;
    if (pad > 0) yield emit(Buffer.alloc(pad));
    if (fileIndex % 97 === 0) {
      const linkName = `${dir}/link${fileIndex}`;
      const target = name.slice(dir.length + 1);
      stats.entries++;
      yield emit(paxHeader(linkName, createHash('sha1').update(target).digest('hex')));
      yield emit(tarHeader({ name: linkName, type: '2', size: 0, mode: 0o777, linkname: target }));
    }
  }
  yield emit(Buffer.alloc(1024));
}

function tarHeader(h: { name: string; type: string; size: number; mode: number; linkname?: string }): Buffer {
  const b = Buffer.alloc(512);
  if (Buffer.byteLength(h.name) > 100) throw new Error(`tar name too long: ${h.name}`);
  b.write(h.name, 0, 100, 'utf8');
  writeOctal(b, h.mode, 100, 8);
  writeOctal(b, 0, 108, 8);
  writeOctal(b, 0, 116, 8);
  writeOctal(b, h.size, 124, 12);
  writeOctal(b, MTIME, 136, 12);
  b.fill(0x20, 148, 156);
  b.write(h.type, 156, 1, 'latin1');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 8, 'latin1');
  b.write('root', 265, 32, 'latin1');
  b.write('root', 297, 32, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

function writeOctal(b: Buffer, value: number, offset: number, length: number): void {
  b.write(value.toString(8).padStart(length - 1, '0'), offset, length - 1, 'latin1');
  b[offset + length - 1] = 0;
}

/** A pax 'x' entry, padded to whole blocks. */
function paxHeader(name: string, sha1: string): Buffer {
  const rest = ` APK-TOOLS.checksum.SHA1=${sha1}\n`;
  const n = Buffer.byteLength(rest);
  let len = n + 1;
  while (len !== n + String(len).length) len = n + String(len).length;
  const body = Buffer.from(`${len}${rest}`);
  const paxName = `PaxHeaders/${name.split('/').at(-1)}`;
  const padded = Buffer.alloc(512 + Math.ceil(body.length / 512) * 512);
  tarHeader({ name: paxName, type: 'x', size: body.length, mode: 0o644 }).copy(padded, 0);
  body.copy(padded, 512);
  return padded;
}

// ---------------------------------------------------------------- content

/** xorshift32: deterministic, so every run parses the same bytes. */
class Rng {
  constructor(private state: number) {}

  u32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  float(): number {
    return this.u32() / 2 ** 32;
  }
}

function makeVocabulary(rng: Rng, count: number): Buffer[] {
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  const words: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const length = 2 + (rng.u32() % 9);
    let w = '';
    // Skewed towards frequent letters, like prose.
    for (let j = 0; j < length; j++) w += letters[Math.floor(letters.length * rng.float() ** 2)];
    words.push(Buffer.from(w));
  }
  return words;
}

/** Pseudo-random words, Zipf-ish (frequent words are frequent), lines of about 80 characters. */
function fillText(buf: Buffer, rng: Rng, vocab: Buffer[]): void {
  let pos = 0;
  let line = 0;
  while (pos < buf.length) {
    const r = rng.float();
    const word = vocab[Math.floor(vocab.length * r * r * r)]!;
    const n = Math.min(word.length, buf.length - pos);
    word.copy(buf, pos, 0, n);
    pos += n;
    line += n;
    if (pos < buf.length) {
      buf[pos++] = line > 72 ? 0x0a : 0x20;
      if (line > 72) line = 0;
    }
  }
}

/** Incompressible bytes (already-compressed assets). `buf.length` is a multiple of 4. */
function fillRandom(buf: Buffer, rng: Rng): void {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = rng.u32();
}

/** Machine-code-like: random 256-byte blocks mixed with zero runs and repeats of earlier blocks. */
function fillBinary(buf: Buffer, rng: Rng): void {
  fillRandom(buf, rng);
  for (let off = 0; off + 256 <= buf.length; off += 256) {
    const roll = rng.float();
    if (roll < 0.2) buf.fill(0, off, off + 256);
    else if (roll < 0.55 && off >= 256) {
      const back = 256 * (1 + (rng.u32() % Math.min(off / 256, 64)));
      buf.copy(buf, off, off - back, off - back + 256);
    }
  }
}
