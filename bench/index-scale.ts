import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { ChunkedIndex } from '../src/apk/index-chunks.ts';
import { readIndex } from '../src/apk/index-reader.ts';
import { rewriteRecordArch, sortIndexEntries, writeIndexText } from '../src/apk/index-writer.ts';
import { loadPublicKey } from '../src/apk/signature.ts';
import { buildApp } from '../src/http/app.ts';
import { Indexer } from '../src/repo/indexer.ts';
import type { Services } from '../src/repo/services.ts';
import { writeFileAtomic } from '../src/store/atomic-file.ts';
import type { IndexKey } from '../src/store/package-store.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import { syntheticPackage } from './publish.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  checkCommand,
  log,
  type Metric,
  makeTempDir,
  median,
  percentile,
  round,
  runCommand,
  startBenchServices,
} from './support.ts';

/**
 * Wolfi-scale indexes (issue 7): an index of N entries (generated packages
 * inserted through the store), then publish-to-visible over HTTP for single
 * publishes and for bursts of concurrent ones. Compared in the same run with
 * a full rebuild of the same index by reef's one-pass writer (what every
 * publish cost before the chunked index) and, where an `apk` binary exists,
 * with apk-tools' `apk index` over as many generated .apk files.
 *
 * env: REEF_BENCH_INDEX_SIZES (default 1000,10000,100000),
 *      REEF_BENCH_APK_INDEX_MAX (largest size apk index runs at; default 100000),
 *      APK_BIN (default: /tmp/apk2/apk, then `apk` on PATH).
 */

const SIZES = (process.env.REEF_BENCH_INDEX_SIZES ?? '1000,10000,100000').split(',').map(Number);
const APK_INDEX_MAX = Number(process.env.REEF_BENCH_APK_INDEX_MAX ?? 100_000);
const SINGLES = 20;
const WARMUP = 2;
const BURSTS = 3;
const BURST_SIZE = 50;
const REBUILDS = 3;
const DELETES = 10;
const KEY: IndexKey = { repo: 'bench', libc: 'glibc', arch: 'x86_64' };
/** Goals of issue 7, at the largest size. */
const GOAL_P50_MS = 150;
const GOAL_SPEEDUP = 10;

export interface Sample {
  /** POST until its 201 (the index listing the package is live by then). */
  created: number;
  /** POST until a GET of APKINDEX.tar.gz answers with the new index (its headers). */
  visible: number;
  /**
   * CPU time of this process (server and client, all threads) from the POST to
   * the 201: unlike wall time, other load on the machine barely changes it.
   */
  cpu: number;
}

interface SizeResult {
  entries: number;
  seedMs: number;
  /** reef's first build of a never-built index: every record from SQLite, every chunk compressed. */
  chunkedFullBuildMs: number;
  /** A restarted indexer's first build (one new package): chunks found again in the live file, then a delta. */
  firstAfterRestartMs: number;
  /** The one-pass baseline: snapshot, sort, render, gzip, sign, hash, write (median). */
  onePassRebuildMs: number[];
  onePassCpuMs: number[];
  indexBytes: number;
  onePassBytes: number;
  gzip6Bytes: number | undefined;
  textBytes: number;
  chunks: number;
  singles: Sample[];
  bursts: Sample[];
  /** Milliseconds per GET (after one unmeasured). */
  reads: Record<string, number[]>;
  rssMiB: number;
  loadAfterSingles: number;
  /** DELETE until its 204. */
  deletes: number[];
  apkIndex: { files: number; buildFilesMs: number; ms: number; bytes: number } | { skipped: string };
}

export async function benchIndexScale(): Promise<BenchResult> {
  const apkBin = await findApk();
  const notes: string[] = [];
  if (!apkBin) notes.push('apk-tools not found (set APK_BIN): the `apk index` baseline was skipped');
  const bySize: SizeResult[] = [];
  for (const size of SIZES) {
    const r = await measureSize(size, apkBin);
    bySize.push(r);
    const s = summary(r);
    log(
      `index: ${size} entries: single p50 ${s.singleVisibleP50.toFixed(1)} ms (201 ${s.singleCreatedP50.toFixed(1)}), ` +
        `burst p50 ${s.burstVisibleP50.toFixed(1)} ms; one-pass rebuild ${s.onePass.toFixed(0)} ms ` +
        `(${(s.onePass / s.singleVisibleP50).toFixed(1)}x); size ${(r.indexBytes / 2 ** 20).toFixed(1)} MiB, ` +
        `${r.gzip6Bytes ? `${(r.indexBytes / r.gzip6Bytes).toFixed(3)}x gzip -6` : ''}`,
    );
    if ('skipped' in r.apkIndex) {
      if (apkBin) notes.push(`${size}: apk index skipped: ${r.apkIndex.skipped}`);
    }
  }
  const metrics: Metric[] = [];
  const largest = bySize.at(-1);
  for (const r of bySize) {
    const s = summary(r);
    const label = `${r.entries} entries`;
    const isGoal = r === largest && r.entries >= 100_000;
    metrics.push(
      {
        name: `${label}: single publish-to-visible p50`,
        value: round(s.singleVisibleP50, 1),
        unit: 'ms',
        ...(isGoal ? { goal: `< ${GOAL_P50_MS}`, ok: s.singleVisibleP50 < GOAL_P50_MS } : {}),
      },
      { name: `${label}: single publish-to-visible p99`, value: round(s.singleVisibleP99, 1), unit: 'ms' },
      { name: `${label}: single 201 p50`, value: round(s.singleCreatedP50, 1), unit: 'ms' },
      {
        name: `${label}: single publish CPU time p50 (POST to 201)`,
        value: round(s.singleCpuP50, 1),
        unit: 'ms',
      },
      { name: `${label}: one-pass rebuild CPU time`, value: round(s.onePassCpu, 1), unit: 'ms' },
      {
        name: `${label}: one-pass rebuild CPU / single publish CPU`,
        value: round(s.onePassCpu / s.singleCpuP50, 2),
        unit: 'x',
      },
      {
        name: `${label}: burst of ${BURST_SIZE} publish-to-visible p50`,
        value: round(s.burstVisibleP50, 1),
        unit: 'ms',
      },
      {
        name: `${label}: burst of ${BURST_SIZE} publish-to-visible p99`,
        value: round(s.burstVisibleP99, 1),
        unit: 'ms',
      },
      { name: `${label}: one-pass full rebuild (baseline)`, value: round(s.onePass, 1), unit: 'ms' },
      {
        name: `${label}: one-pass rebuild / single p50`,
        value: round(s.onePass / s.singleVisibleP50, 2),
        unit: 'x',
        ...(isGoal ? { goal: `>= ${GOAL_SPEEDUP}`, ok: s.onePass / s.singleVisibleP50 >= GOAL_SPEEDUP } : {}),
      },
      {
        name: `${label}: chunked full build (an index never built)`,
        value: round(r.chunkedFullBuildMs, 1),
        unit: 'ms',
      },
      {
        name: `${label}: first build after a restart (chunks read back from the file, one new package)`,
        value: round(r.firstAfterRestartMs, 1),
        unit: 'ms',
      },
      {
        name: `${label}: index size / gzip -6`,
        value: r.gzip6Bytes ? round(r.indexBytes / r.gzip6Bytes, 3) : null,
        unit: 'x',
        goal: '<= 1.1',
        ok: r.gzip6Bytes ? r.indexBytes / r.gzip6Bytes <= 1.1 : undefined,
      },
    );
    metrics.push({ name: `${label}: delete p50`, value: round(percentile(r.deletes, 50), 1), unit: 'ms' });
    metrics.push({ name: `${label}: process RSS after publishes`, value: r.rssMiB, unit: 'MiB' });
    for (const [what, samples] of Object.entries(r.reads)) {
      metrics.push({
        name: `${label}: GET ${what} p50`,
        value: round(percentile(samples, 50), 1),
        unit: 'ms',
      });
    }
    if (!('skipped' in r.apkIndex)) {
      metrics.push(
        { name: `${label}: apk index (apk-tools, unsigned)`, value: round(r.apkIndex.ms, 1), unit: 'ms' },
        {
          name: `${label}: apk index / single p50`,
          value: round(r.apkIndex.ms / s.singleVisibleP50, 2),
          unit: 'x',
        },
      );
    }
  }
  return {
    name: 'index',
    metrics,
    details: {
      sizes: SIZES,
      singles: SINGLES,
      warmup: WARMUP,
      bursts: BURSTS,
      burstSize: BURST_SIZE,
      percentile: 'nearest-rank',
      apkBin,
      // Other work on the machine skews latencies; the 1-minute load average at the end of the run.
      loadAverage: loadavg(),
      bySize: bySize.map((r) => ({ ...r, summary: summary(r) })),
    },
    notes,
  };
}

function summary(r: SizeResult) {
  const singles = r.singles.map((s) => s.visible);
  const bursts = r.bursts.map((s) => s.visible);
  return {
    singleVisibleP50: percentile(singles, 50),
    singleVisibleP99: percentile(singles, 99),
    singleCpuP50: percentile(
      r.singles.map((s) => s.cpu),
      50,
    ),
    singleCreatedP50: percentile(
      r.singles.map((s) => s.created),
      50,
    ),
    burstVisibleP50: percentile(bursts, 50),
    burstVisibleP99: percentile(bursts, 99),
    onePass: median(r.onePassRebuildMs),
    onePassCpu: median(r.onePassCpuMs),
  };
}

async function measureSize(entries: number, apkBin: string | undefined): Promise<SizeResult> {
  const temp = await makeTempDir(`index-${entries}`);
  const { services, logger } = await startBenchServices(join(temp.path, 'data'));
  let app: FastifyInstance | undefined;
  try {
    const seedStarted = performance.now();
    // One outer transaction: each insert is a savepoint, and synchronous=FULL fsyncs once.
    await services.store.transaction(async () => {
      for (let i = 0; i < entries; i++) await services.store.insert(syntheticPackage(i));
    });
    const seedMs = performance.now() - seedStarted;
    log(`index: ${entries} entries seeded in ${(seedMs / 1000).toFixed(1)} s`);

    const buildStarted = performance.now();
    await services.indexer.refresh([KEY]);
    const chunkedFullBuildMs = performance.now() - buildStarted;

    const onePassRebuildMs: number[] = [];
    const onePassCpuMs: number[] = [];
    let onePassBytes = 0;
    for (let i = 0; i < REBUILDS; i++) {
      const r = await onePassRebuild(services, join(temp.path, 'one-pass'));
      onePassRebuildMs.push(r.ms);
      onePassCpuMs.push(r.cpu);
      onePassBytes = r.bytes;
    }

    const indexBytes = (await services.store.getIndex(KEY))!.size!;
    const { chunks, textBytes, gzip6Bytes } = await compareWithGzip(services, temp.path);

    app = await buildApp(services, logger);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const base = `http://127.0.0.1:${address.port}`;

    const apks: Buffer[] = [];
    const total = WARMUP + SINGLES + BURSTS * BURST_SIZE;
    for (let i = 0; i < total; i++) {
      apks.push(
        await buildApk({
          name: `bench-new-${entries}-${i}`,
          version: '1.0.0-r0',
          depends: ['so:libc.so.6'],
          files: [
            { name: 'usr/bin/', type: 'directory' },
            { name: `usr/bin/bench-new-${i}`, content: randomBytes(8192) },
          ],
        }),
      );
    }
    const singles: Sample[] = [];
    for (let i = 0; i < WARMUP + SINGLES; i++) {
      const sample = await publishAndSee(base, apks[i]!, performance.now());
      if (i >= WARMUP) singles.push(sample);
    }
    // Other processes on the machine stretch every latency here: the 1-minute load average then.
    const loadAfterSingles = loadavg()[0]!;
    const bursts: Sample[] = [];
    for (let b = 0; b < BURSTS; b++) {
      const from = WARMUP + SINGLES + b * BURST_SIZE;
      const started = performance.now();
      const samples = await Promise.all(
        apks.slice(from, from + BURST_SIZE).map((apk) => publishAndSee(base, apk, started)),
      );
      bursts.push(...samples);
    }

    // Other read paths at this size (issue 7 asks that they stay sublinear): a page of the
    // package list (first, and from the middle by `after`), and one package's metadata.
    const middle = Math.floor(entries / 2);
    const seeded = syntheticPackage(middle);
    const reads = {
      listFirstPage: await timeGets(`${base}/api/v1/repos/bench/glibc/x86_64/packages?limit=100`),
      listMiddlePage: await timeGets(
        `${base}/api/v1/repos/bench/glibc/x86_64/packages?limit=100&after=${middle}`,
      ),
      metadata: await timeGets(`${base}/api/v1/packages/bench/glibc/x86_64/${seeded.name}/${seeded.version}`),
    };

    // Deletes: until the 204, which reef sends once an index without the package is live.
    const deletes: number[] = [];
    for (let i = WARMUP; i < WARMUP + DELETES; i++) {
      const started = performance.now();
      const res = await fetch(`${base}/api/v1/repos/bench/glibc/x86_64/bench-new-${entries}-${i}/1.0.0-r0`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${BENCH_TOKEN}` },
      });
      await res.arrayBuffer();
      if (res.status !== 204) throw new Error(`delete answered ${res.status}`);
      deletes.push(performance.now() - started);
    }

    // This process (server, store, chunk cache, and the benchmark's own buffers) after the publishes.
    const rssMiB = Math.round(process.memoryUsage().rss / 2 ** 20);

    // The last index lists every seeded and published package, and its signature verifies.
    const final = (await services.store.getIndex(KEY))!;
    const read = await readIndex(
      (async function* () {
        const res = await fetch(`${base}/bench/glibc/x86_64/APKINDEX.tar.gz`);
        yield Buffer.from(await res.arrayBuffer());
      })(),
      {
        keys: services.signingKeys.map((k) => loadPublicKey(k.keyName, k.publicPem)),
        requireValidSignature: true,
      },
    );
    const expected = entries + total - DELETES;
    if (read.records.length !== expected || final.packageCount !== expected) {
      throw new Error(`index lists ${read.records.length} packages, expected ${expected}`);
    }

    // As after a restart: an indexer with nothing in memory, on the same blob store, and one new package.
    const restarted = new Indexer(services.store, services.blobs, () => services.keyRing.signers(), logger);
    await services.store.insert(syntheticPackage(entries));
    const restartStarted = performance.now();
    await restarted.refresh([KEY]);
    const firstAfterRestartMs = performance.now() - restartStarted;

    const apkIndex =
      apkBin === undefined
        ? { skipped: 'no apk binary' }
        : entries > APK_INDEX_MAX
          ? { skipped: `more than REEF_BENCH_APK_INDEX_MAX=${APK_INDEX_MAX} entries` }
          : await apkIndexOver(apkBin, entries, join(temp.path, 'apks'));
    return {
      entries,
      seedMs,
      chunkedFullBuildMs,
      firstAfterRestartMs,
      onePassRebuildMs,
      onePassCpuMs,
      indexBytes,
      onePassBytes,
      gzip6Bytes,
      textBytes,
      chunks,
      singles,
      bursts,
      reads,
      loadAfterSingles,
      deletes,
      rssMiB,
      apkIndex,
    };
  } finally {
    await app?.close();
    await services.close();
    await temp.cleanup();
  }
}

/** POST one package; then GET the index until it is a different one than before the POST. */
export async function publishAndSee(base: string, apk: Buffer, started: number): Promise<Sample> {
  const cpuBefore = process.cpuUsage();
  const res = await fetch(`${base}/api/v1/repos/bench/glibc/packages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/octet-stream' },
    body: new Uint8Array(apk),
  });
  const json = (await res.json()) as { sha256?: string };
  const created = performance.now() - started;
  const used = process.cpuUsage(cpuBefore);
  const cpu = (used.user + used.system) / 1000;
  if (res.status !== 201)
    throw new Error(`publish returned ${res.status}: ${JSON.stringify(json).slice(0, 300)}`);
  // Served after the 201: the response headers of a GET are what a client waits for first.
  const index = await fetch(`${base}/bench/glibc/x86_64/APKINDEX.tar.gz`);
  const visible = performance.now() - started;
  if (index.status !== 200) throw new Error(`index answered ${index.status}`);
  await index.arrayBuffer();
  return { created, visible, cpu };
}

async function timeGets(url: string, times = 10): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i <= times; i++) {
    const started = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
    if (i > 0) samples.push(performance.now() - started);
  }
  return samples;
}

/** What every publish cost before issue 7: the whole index from SQLite, rendered, gzipped in one pass, signed, written. */
async function onePassRebuild(
  services: Services,
  dir: string,
): Promise<{ ms: number; cpu: number; bytes: number }> {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const { records } = await services.store.snapshotForIndex(KEY);
  const text = sortIndexEntries(records)
    .map((p) => rewriteRecordArch(p.record, p.arch, KEY.arch))
    .join('');
  const bytes = await writeIndexText(text, {
    arch: KEY.arch,
    description: `${KEY.repo}/${KEY.libc}`,
    signers: services.keyRing.signers(),
  });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFileAtomic(join(dir, `${sha256}.tar.gz`), bytes);
  const used = process.cpuUsage(cpuBefore);
  return { ms: performance.now() - started, cpu: (used.user + used.system) / 1000, bytes: bytes.length };
}

/** Chunk count, text size, and the size `gzip -6` gives the same tar in one pass. */
async function compareWithGzip(
  services: Services,
  dir: string,
): Promise<{ chunks: number; textBytes: number; gzip6Bytes: number | undefined }> {
  const { records } = await services.store.snapshotForIndex(KEY);
  const index = ChunkedIndex.build(records.map((p) => rewriteRecordArch(p.record, p.arch, KEY.arch)));
  const member = index.assemble({ description: `${KEY.repo}/${KEY.libc}`, mtime: 0 });
  const tarFile = join(dir, 'index.tar');
  await writeFile(tarFile, gunzipSync(member));
  const r = await runCommand('bash', ['-c', 'gzip -6 -n -c "$1" | wc -c', 'gzip6', tarFile]);
  return {
    chunks: index.chunkCount,
    textBytes: index.textLength,
    gzip6Bytes: r.code === 0 ? Number(r.stdout.trim()) : undefined,
  };
}

async function findApk(): Promise<string | undefined> {
  for (const candidate of [process.env.APK_BIN, '/tmp/apk2/apk']) {
    if (candidate && (await runCommand(candidate, ['--version']).catch(() => undefined))?.code === 0) {
      return candidate;
    }
  }
  const r = await runCommand('bash', ['-c', 'command -v apk']);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** `apk index` over `count` generated .apk files with the seeded names and versions (apk-tools does not sign). */
async function apkIndexOver(
  apkBin: string,
  count: number,
  dir: string,
): Promise<{ files: number; buildFilesMs: number; ms: number; bytes: number }> {
  await mkdir(dir, { recursive: true });
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const p = syntheticPackage(i);
    const apk = await buildApk({
      name: p.name,
      version: p.version,
      description: p.description,
      depends: p.depends,
      provides: p.provides,
    });
    await writeFile(join(dir, `${p.name}-${p.version}.apk`), apk);
  }
  const buildFilesMs = performance.now() - started;
  const files = (await readdir(dir)).filter((f) => f.endsWith('.apk')).length;
  // 100,000 file names exceed the default argument size limit; a bigger stack raises it.
  const r = checkCommand(
    'apk index',
    await runCommand('bash', [
      '-c',
      'ulimit -s unlimited 2>/dev/null || ulimit -s 1048576; cd "$2" && exec "$1" index --allow-untrusted -q -o ../APKINDEX.unsigned.tar.gz -- *.apk',
      'apk-index',
      apkBin,
      dir,
    ]),
  );
  const bytes = (await stat(join(dir, '..', 'APKINDEX.unsigned.tar.gz'))).size;
  return { files, buildFilesMs, ms: r.ms, bytes };
}
