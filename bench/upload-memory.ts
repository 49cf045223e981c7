import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { gzipMember, packTar } from '../test/helpers/apk-builder.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  log,
  MiB,
  makeTempDir,
  round,
  rssOf,
  sleep,
  startBundledServer,
} from './support.ts';

/**
 * Issue 7: server memory while it takes a 2 GiB package. A generated .apk of
 * eight 256 MiB files of random bytes plus 20,000 small files (so the file
 * list and the generated SBOM have some size: each carries the SHA-1 pax
 * record abuild writes, so the SBOM lists it) is streamed to a fresh
 * `reef serve` run as `npm start` runs it (the bundle, with its node flags); its RSS is sampled every 50 ms from /proc and its peak
 * (VmHWM) read at the end. The baseline is the same server idle before the
 * upload, in the same run. Goal: peak under 150 MB.
 */

const BIG_FILES = 8;
const BIG_FILE_BYTES = 256 * MiB;
const SMALL_FILES = 20_000;

export async function benchUploadMemory(): Promise<BenchResult> {
  const temp = await makeTempDir('upload-memory');
  let child: ChildProcess | undefined;
  try {
    const apkPath = join(temp.path, 'bench-huge-1.0.0-r0.apk');
    const started = performance.now();
    await generateHugeApk(temp.path, apkPath);
    const size = (await stat(apkPath)).size;
    log(
      `upload-memory: generated ${(size / MiB).toFixed(0)} MiB in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );

    // The server as `npm start` runs it: the esbuild bundle on plain node.
    const server = await startBundledServer(
      {
        REEF_DATA_DIR: join(temp.path, 'data'),
        REEF_KEY_BITS: '2048',
        REEF_MAX_UPLOAD_BYTES: String(2 ** 32 - 1),
      },
      60_000,
    );
    child = server.child;
    const { base, nodeFlags } = server;
    await sleep(1000);
    const idle = rssOf(child.pid!);

    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(rssOf(child!.pid!).rss), 50);
    const uploadStarted = performance.now();
    // When the last byte has left the client: what the streaming of the body cost, apart from
    // the work after it (SBOM, database row, index) until the 201.
    let bodySent: { rss: number; peak: number; ms: number } | undefined;
    const body = createReadStream(apkPath).on('end', () => {
      bodySent = { ...rssOf(child!.pid!), ms: performance.now() - uploadStarted };
    });
    const res = await fetch(`${base}/api/v1/repos/bench/glibc/packages`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${BENCH_TOKEN}`,
        'content-type': 'application/octet-stream',
        'content-length': String(size),
      },
      body: Readable.toWeb(body) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    const uploadMs = performance.now() - uploadStarted;
    clearInterval(sampler);
    if (res.status !== 201) throw new Error(`publish answered ${res.status}: ${text.slice(0, 300)}`);
    const end = rssOf(child.pid!);
    const sorted = [...samples].sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? end.rss;
    log(
      `upload-memory: ${(size / MiB).toFixed(0)} MiB in ${(uploadMs / 1000).toFixed(1)} s; RSS idle ${idle.rss} MiB, peak ${end.peak} MiB`,
    );
    return {
      name: 'upload-memory',
      metrics: [
        { name: 'package size', value: round(size / MiB, 0), unit: 'MiB' },
        { name: 'server RSS idle before (baseline)', value: idle.rss, unit: 'MiB' },
        { name: 'server RSS peak during upload (VmHWM)', value: end.peak, unit: 'MiB' },
        { name: 'server RSS p99 of 50 ms samples', value: p99, unit: 'MiB' },
        { name: 'peak - idle', value: end.peak - idle.rss, unit: 'MiB' },
        { name: 'upload to 201', value: round(uploadMs / 1000, 1), unit: 's' },
        { name: 'server RSS peak when the body was sent (VmHWM)', value: bodySent?.peak ?? 0, unit: 'MiB' },
        {
          name: 'body sent to 201',
          value: round((uploadMs - (bodySent?.ms ?? uploadMs)) / 1000, 1),
          unit: 's',
        },
      ],
      details: {
        size,
        idle,
        end,
        bodySent,
        samples: samples.length,
        bigFiles: BIG_FILES,
        smallFiles: SMALL_FILES,
        nodeFlags,
      },
      notes: ['goal (issue 7): RSS under 150 MB while a 2 GB package is uploaded'],
    };
  } finally {
    child?.kill('SIGKILL');
    await temp.cleanup();
  }
}

/** VmRSS and VmHWM (peak) of a process, MiB, from /proc. */

const MTIME = 1_700_000_000;

function header(name: string, size: number, type = '0'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${MTIME.toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/**
 * The pax record abuild writes before every file (APK-TOOLS.checksum.SHA1,
 * abuild abuild-tar.c). Without it the generated SBOM lists no file and stays
 * a few KB; with it, it lists all 20,000 (~8 MB), as for a real package.
 */
function sha1Record(body: Buffer): Buffer[] {
  const record = ` APK-TOOLS.checksum.SHA1=${createHash('sha1').update(body).digest('hex')}\n`;
  const text = Buffer.from(`${record.length + 2}${record}`);
  return [header('PaxHeader', text.length, 'x'), text, pad(text.length)];
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** The data tar: big random files (incompressible, so the .apk is ~2 GiB) and many small ones. */
async function* dataTar(): AsyncGenerator<Buffer> {
  for (let i = 0; i < BIG_FILES; i++) {
    yield header(`usr/share/huge/blob-${i}.bin`, BIG_FILE_BYTES);
    for (let done = 0; done < BIG_FILE_BYTES; done += 4 * MiB) yield randomBytes(4 * MiB);
  }
  let batch: Buffer[] = [];
  for (let i = 0; i < SMALL_FILES; i++) {
    const body = Buffer.from(`small file ${i}\n`);
    batch.push(
      ...sha1Record(body),
      header(`usr/share/huge/small/${i}.txt`, body.length),
      body,
      pad(body.length),
    );
    if (batch.length >= 3000) {
      yield Buffer.concat(batch);
      batch = [];
    }
  }
  yield Buffer.concat([...batch, Buffer.alloc(1024)]);
}

async function generateHugeApk(dir: string, apkPath: string): Promise<void> {
  const dataPath = join(dir, 'data.tar.gz');
  const hash = createHash('sha256');
  await pipeline(
    Readable.from(dataTar()),
    zlib.createGzip({ level: 1 }),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    }),
    createWriteStream(dataPath),
  );
  const pkginfo = Buffer.from(
    [
      'pkgname = bench-huge',
      'pkgver = 1.0.0-r0',
      'pkgdesc = a 2 GiB package for the upload memory benchmark',
      'url = https://example.org/',
      `builddate = ${MTIME}`,
      `size = ${BIG_FILES * BIG_FILE_BYTES}`,
      'arch = x86_64',
      'license = MIT',
      `datahash = ${hash.digest('hex')}`,
      '',
    ].join('\n'),
  );
  const control = await packTar(
    [{ header: { name: '.PKGINFO', size: pkginfo.length, mode: 0o644 }, body: pkginfo }],
    false,
  );
  await writeFile(apkPath, gzipMember(control));
  await pipeline(createReadStream(dataPath), createWriteStream(apkPath, { flags: 'a' }));
  await unlink(dataPath);
}
