import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import { type CannonRun, installAutocannon, processCpuMs, runCannon, smallPackage } from './download.ts';
import { type BenchEngines, startBenchEngines } from './engines.ts';
import { publishAndSee, type Sample } from './index-scale.ts';
import { syntheticPackage } from './publish.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  log,
  type Metric,
  makeTempDir,
  median,
  percentile,
  round,
  startBenchServices,
  startBundledServer,
} from './support.ts';

/**
 * reef on PostgreSQL + S3 against the embedded default, in one run:
 *
 * - publish-to-visible into an index of N entries (generated packages
 *   inserted through the store, then one build): POST one package, then GET
 *   the index, 2 warm-up and 20 measured, one installation of each kind,
 *   both served in this process as index-scale does;
 * - downloads per second of one small package through one replica, and
 *   through two replicas of the same installation (two `npm start` servers,
 *   an autocannon on each at once, their rates added).
 *
 * env: REEF_BENCH_SCALE_SIZE (default 100000); the engines of the tests
 * (REEF_TEST_DATABASE_URL, REEF_TEST_S3_*) or, unset, ones started here.
 */

const SIZE = Number(process.env.REEF_BENCH_SCALE_SIZE ?? 100_000);
const WARMUP = 2;
const SEED_BATCH = 1000;
const SINGLES = 20;
const CANNON_SECONDS = 10;
const ROUNDS = 2;
/** The goal: publish-to-visible on PostgreSQL + S3 at most twice the embedded p50. */
const GOAL_RATIO = 2;

interface Installation {
  kind: string;
  seedMs: number;
  firstBuildMs: number;
  singles: Sample[];
}

export async function benchScaleOut(): Promise<BenchResult> {
  const engines = await startBenchEngines();
  try {
    const embedded = await publishInto('embedded (SQLite + data folder)', {});
    const scaled = await publishInto('PostgreSQL + S3', await engines.installation());
    const downloads = await replicaDownloads(engines);
    const p50 = (i: Installation) =>
      percentile(
        i.singles.map((s) => s.visible),
        50,
      );
    const p99 = (i: Installation) =>
      percentile(
        i.singles.map((s) => s.visible),
        99,
      );
    const ratio = p50(scaled) / p50(embedded);
    const metrics: Metric[] = [];
    for (const i of [embedded, scaled]) {
      metrics.push(
        { name: `${i.kind}: ${SIZE} entries seeded`, value: round(i.seedMs / 1000, 1), unit: 's' },
        { name: `${i.kind}: first full build`, value: round(i.firstBuildMs, 0), unit: 'ms' },
        { name: `${i.kind}: publish-to-visible p50`, value: round(p50(i), 1), unit: 'ms' },
        { name: `${i.kind}: publish-to-visible p99`, value: round(p99(i), 1), unit: 'ms' },
      );
    }
    metrics.push({
      name: 'publish-to-visible p50, PostgreSQL + S3 / embedded',
      value: round(ratio, 2),
      unit: 'x',
      goal: `<= ${GOAL_RATIO}`,
      ok: ratio <= GOAL_RATIO,
    });
    const one = median(downloads.one.map((r) => r.requestsPerSec));
    const two = median(downloads.two.map((r) => r.requestsPerSec));
    metrics.push(
      { name: 'downloads through 1 replica', value: round(one, 0), unit: 'req/s' },
      { name: 'downloads through 2 replicas', value: round(two, 0), unit: 'req/s' },
      { name: '2 replicas / 1 replica', value: round(two / one, 2), unit: 'x' },
      {
        name: 'replica CPU per download, 1 replica',
        value: round(median(downloads.one.map((r) => 1000 / r.requestsPerCpuSecond)), 3),
        unit: 'ms',
      },
    );
    return {
      name: 'scale-out',
      metrics,
      details: {
        size: SIZE,
        singles: SINGLES,
        warmup: WARMUP,
        embedded,
        scaled,
        downloads,
        loadAverage: loadavg(),
      },
      notes: [
        'two replicas and two autocannons share the same 2 cores here: the download figure shows that a second ' +
          'replica serves from the same PostgreSQL and bucket without errors, not how far it scales on its own machine',
      ],
    };
  } finally {
    await engines.stop();
  }
}

async function publishInto(kind: string, env: Record<string, string>): Promise<Installation> {
  const temp = await makeTempDir('scale-out');
  const { services, logger } = await startBenchServices(join(temp.path, 'data'), env);
  let app: FastifyInstance | undefined;
  try {
    const seedStarted = performance.now();
    // Transactions of SEED_BATCH inserts: each insert takes its slot's lock until the commit, and
    // PostgreSQL's lock table holds a few thousand per transaction, not a hundred thousand.
    for (let from = 0; from < SIZE; from += SEED_BATCH) {
      await services.store.transaction(async () => {
        for (let i = from; i < Math.min(SIZE, from + SEED_BATCH); i++) {
          await services.store.insert(syntheticPackage(i));
        }
      });
    }
    const seedMs = performance.now() - seedStarted;
    const buildStarted = performance.now();
    await services.indexer.refresh([{ repo: 'bench', libc: 'glibc', arch: 'x86_64' }]);
    const firstBuildMs = performance.now() - buildStarted;
    log(
      `scale-out: ${kind}: ${SIZE} entries seeded in ${(seedMs / 1000).toFixed(1)} s, built in ${firstBuildMs.toFixed(0)} ms`,
    );

    app = await buildApp(services, logger);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const base = `http://127.0.0.1:${address.port}`;
    const singles: Sample[] = [];
    for (let i = 0; i < WARMUP + SINGLES; i++) {
      const apk = await buildApk({
        name: `scale-new-${i}`,
        version: '1.0.0-r0',
        depends: ['so:libc.so.6'],
        files: [
          { name: 'usr/bin/', type: 'directory' },
          { name: `usr/bin/scale-new-${i}`, content: randomBytes(8192) },
        ],
      });
      const sample = await publishAndSee(base, apk, performance.now());
      if (i >= WARMUP) singles.push(sample);
    }
    log(
      `scale-out: ${kind}: publish-to-visible p50 ${percentile(
        singles.map((s) => s.visible),
        50,
      ).toFixed(1)} ms`,
    );
    return { kind, seedMs, firstBuildMs, singles };
  } finally {
    await app?.close();
    await services.close();
    await temp.cleanup();
  }
}

async function replicaDownloads(engines: BenchEngines): Promise<{ one: CannonRun[]; two: CannonRun[] }> {
  const cannon = await installAutocannon();
  const env = await engines.installation();
  const temps = [await makeTempDir('replica-a'), await makeTempDir('replica-b')];
  const replicas: ChildProcess[] = [];
  try {
    const a = await startBundledServer({ ...env, REEF_DATA_DIR: temps[0]!.path }, 60_000);
    replicas.push(a.child);
    const b = await startBundledServer({ ...env, REEF_DATA_DIR: temps[1]!.path }, 60_000, { build: false });
    replicas.push(b.child);
    const apk = await smallPackage();
    const published = await fetch(`${a.base}/api/v1/repos/bench/glibc/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(apk),
    });
    if (published.status !== 201) throw new Error(`publish answered ${published.status}`);
    const path = '/bench/glibc/x86_64/bench-small-1.0.0-r0.apk';
    const targets = [a, b].map((r, i) => ({
      name: `replica ${i + 1}`,
      url: `${r.base}${path}`,
      cpuMs: () => processCpuMs(r.child.pid!),
    }));
    for (const t of targets) {
      // The package another replica published is served here too, byte for byte.
      const got = Buffer.from(await (await fetch(t.url)).arrayBuffer());
      if (!got.equals(apk)) throw new Error(`${t.name} served other bytes than were published`);
      await runCannon(cannon, t, 3);
    }
    const one: CannonRun[] = [];
    const two: CannonRun[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const single = await runCannon(cannon, targets[0]!, CANNON_SECONDS);
      const pair = await Promise.all(targets.map((t) => runCannon(cannon, t, CANNON_SECONDS)));
      for (const run of [single, ...pair]) {
        if (run.non2xx > 0 || run.errors > 0) throw new Error(`${run.non2xx} non-2xx, ${run.errors} errors`);
      }
      one.push(single);
      two.push({
        ...pair[0]!,
        requestsPerSec: pair[0]!.requestsPerSec + pair[1]!.requestsPerSec,
        total: pair[0]!.total + pair[1]!.total,
      });
      log(
        `scale-out: round ${r}: 1 replica ${single.requestsPerSec.toFixed(0)} req/s, ` +
          `2 replicas ${(pair[0]!.requestsPerSec + pair[1]!.requestsPerSec).toFixed(0)} req/s`,
      );
    }
    return { one, two };
  } finally {
    for (const child of replicas) child.kill('SIGTERM');
    for (const t of temps) await t.cleanup();
  }
}
