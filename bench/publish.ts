import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import type { IndexKey, NewPackage } from '../src/store/package-store.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  log,
  type Metric,
  makeTempDir,
  percentile,
  round,
  startBenchServices,
} from './support.ts';

/**
 * Publish latency: POST one package into an index that already lists N
 * packages, until the 201 (which reef sends only once an index listing the
 * package is live). The empty index is the baseline, measured in the same run.
 */

const SIZES = [0, 1_000, 10_000];
const PUBLISHES = 20;
/** Not measured: the first publish into each server pays for JIT warm-up. */
const WARMUP = 1;
const KEY: IndexKey = { repo: 'bench', libc: 'glibc', arch: 'x86_64' };

interface SizeResult {
  seeded: number;
  seedMs: number;
  firstIndexMs: number;
  samplesMs: number[];
  p50: number;
  p99: number;
  indexBytes: number | undefined;
}

export async function benchPublish(): Promise<BenchResult> {
  const bySize: SizeResult[] = [];
  for (const size of SIZES) {
    bySize.push(await publishInto(size));
    const r = bySize.at(-1)!;
    log(
      `publish: ${size} packages: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms ` +
        `(seed ${(r.seedMs / 1000).toFixed(1)} s, first index ${r.firstIndexMs.toFixed(0)} ms)`,
    );
  }
  const empty = bySize[0]!;
  const metrics: Metric[] = [];
  for (const r of bySize) {
    const label = r.seeded === 0 ? 'empty index' : `${r.seeded} packages`;
    metrics.push({ name: `${label}: p50`, value: round(r.p50, 1), unit: 'ms' });
    metrics.push({ name: `${label}: p99`, value: round(r.p99, 1), unit: 'ms' });
    if (r.seeded > 0) {
      metrics.push({ name: `${label}: p50 ratio vs empty`, value: round(r.p50 / empty.p50, 2), unit: 'x' });
    }
  }
  return {
    name: 'publish',
    metrics,
    details: { publishes: PUBLISHES, warmup: WARMUP, percentile: 'nearest-rank', bySize },
    notes: [],
  };
}

async function publishInto(seedCount: number): Promise<SizeResult> {
  const temp = await makeTempDir(`publish-${seedCount}`);
  const { services, logger } = await startBenchServices(temp.path);
  let app: FastifyInstance | undefined;
  try {
    const seedStarted = performance.now();
    // One outer transaction: each insert is a savepoint, and synchronous=FULL fsyncs once.
    await services.store.transaction(async () => {
      for (let i = 0; i < seedCount; i++) await services.store.insert(syntheticPackage(i));
    });
    const seedMs = performance.now() - seedStarted;
    const indexStarted = performance.now();
    if (seedCount > 0) await services.indexer.refresh([KEY]);
    const firstIndexMs = performance.now() - indexStarted;

    app = await buildApp(services, logger);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const url = `http://127.0.0.1:${address.port}/api/v1/repos/bench/glibc/packages`;

    const apks: Buffer[] = [];
    for (let i = 0; i < WARMUP + PUBLISHES; i++) {
      apks.push(
        await buildApk({
          name: `bench-new-${seedCount}-${i}`,
          version: '1.0.0-r0',
          depends: ['so:libc.so.6'],
          files: [
            { name: 'usr/bin/', type: 'directory' },
            { name: `usr/bin/bench-new-${i}`, content: randomBytes(8192) },
            {
              name: `usr/share/doc/bench-new-${i}/README`,
              content: 'a package published by the benchmark\n',
            },
          ],
        }),
      );
    }

    const samplesMs: number[] = [];
    for (const [i, apk] of apks.entries()) {
      const started = performance.now();
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(apk),
      });
      const text = await res.text();
      const ms = performance.now() - started;
      if (res.status !== 201) throw new Error(`publish returned ${res.status}: ${text.slice(0, 500)}`);
      if (i >= WARMUP) samplesMs.push(ms);
    }
    const index = await services.store.getIndex(KEY);
    if (index?.packageCount !== seedCount + apks.length) {
      throw new Error(`index lists ${index?.packageCount} packages, expected ${seedCount + apks.length}`);
    }
    return {
      seeded: seedCount,
      seedMs,
      firstIndexMs,
      samplesMs,
      p50: percentile(samplesMs, 50),
      p99: percentile(samplesMs, 99),
      indexBytes: index.size,
    };
  } finally {
    await app?.close();
    await services.close();
    await temp.cleanup();
  }
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** A well-formed row as a publish would store it; the blob itself does not exist. */
export function syntheticPackage(i: number): NewPackage {
  const name = `seed-lib${i.toString(36)}-${['dev', 'doc', 'utils', 'libs', 'tools'][i % 5]}`;
  const version = `${1 + (i % 7)}.${i % 31}.${i % 11}-r${i % 4}`;
  const size = 4096 + ((i * 7919) % 2_000_000);
  const datahash = hex(32);
  const description = `synthetic package number ${i} for the publish benchmark`;
  const depends = ['so:libc.so.6', `so:libseed${(i * 13) % 997}.so.1`, `cmd:seed-${(i * 31) % 501}`];
  const provides = [`so:libseed-${i}.so.1=1.0.${i % 9}`, `cmd:seed-tool-${i}=${version}`];
  const pkginfo: Array<[string, string]> = [
    ['pkgname', name],
    ['pkgver', version],
    ['pkgdesc', description],
    ['url', 'https://example.org/'],
    ['builddate', '1700000000'],
    ['size', String(size * 3)],
    ['arch', 'x86_64'],
    ['origin', name],
    ['license', 'MIT'],
    ...depends.map((d): [string, string] => ['depend', d]),
    ...provides.map((p): [string, string] => ['provides', p]),
    ['datahash', datahash],
  ];
  return {
    ...KEY,
    name,
    version,
    filename: `${name}-${version}.apk`,
    sha256: hex(32),
    size,
    checksum: `Q1${randomBytes(20).toString('base64')}`,
    datahash,
    installedSize: size * 3,
    description,
    url: 'https://example.org/',
    license: 'MIT',
    origin: name,
    maintainer: 'Bench <bench@example.org>',
    builddate: 1_700_000_000,
    commit: hex(20),
    providerPriority: undefined,
    depends,
    provides,
    installIf: [],
    pkginfo,
    signatures: [{ algorithm: 'RSA256', keyName: 'bench.rsa.pub' }],
  };
}
