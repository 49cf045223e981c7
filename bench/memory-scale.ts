import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { IndexKey, Libc } from '../src/store/package-store.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import { syntheticPackage } from './publish.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  log,
  makeTempDir,
  percentile,
  round,
  rssOf,
  startBenchServices,
  startBundledServer,
} from './support.ts';

/**
 * Memory with a large database (issue 7): N packages (default 1,000,000)
 * spread over indexes of 100,000, inserted through the store by this
 * process; then a fresh `reef serve` on that folder (which builds every
 * index at start), two rounds of one publish into each index, and pages of
 * the package list. RSS and peak RSS are the server's, from /proc.
 * Goal: under 300 MB.
 *
 * The server runs as `npm start` runs it: the esbuild bundle on plain node,
 * with the start script's node flags.
 *
 * env: REEF_BENCH_MEMORY_PACKAGES (default 1000000); REEF_BENCH_MEMORY_SEED,
 * a folder that keeps the seeded data between runs (seeding takes minutes);
 * REEF_BENCH_MEMORY_ENV, extra server settings as JSON (e.g. a cache size).
 */

const PACKAGES = Number(process.env.REEF_BENCH_MEMORY_PACKAGES ?? 1_000_000);
const PER_INDEX = 100_000;
const GOAL_MIB = 300;
const ARCHES = ['x86_64', 'aarch64', 'armv7', 'riscv64', 'ppc64le'];
const LIBCS: Libc[] = ['glibc', 'musl'];

export async function benchMemoryScale(): Promise<BenchResult> {
  const temp = await makeTempDir('memory');
  const dataDir = join(temp.path, 'data');
  let child: ChildProcess | undefined;
  try {
    const keys: IndexKey[] = [];
    for (let i = 0; i * PER_INDEX < PACKAGES; i++) {
      keys.push({ repo: 'bench', libc: LIBCS[i % 2]!, arch: ARCHES[Math.floor(i / 2) % ARCHES.length]! });
    }
    const seedStarted = performance.now();
    const seed = process.env.REEF_BENCH_MEMORY_SEED;
    const seedDir = seed ? join(seed, `data-${PACKAGES}`) : dataDir;
    if (!existsSync(join(seedDir, 'reef.db'))) {
      await rm(seedDir, { recursive: true, force: true });
      await seedPackages(seedDir, keys);
    } else {
      log(`memory: reusing the seeded folder ${seedDir}`);
    }
    if (seedDir !== dataDir) {
      await mkdir(dataDir, { recursive: true });
      await cp(seedDir, dataDir, { recursive: true });
    }
    const seedMs = performance.now() - seedStarted;

    // Its start builds every index (they were never built): the first build of each is a full one.
    const serverEnv = JSON.parse(process.env.REEF_BENCH_MEMORY_ENV ?? '{}') as Record<string, string>;
    const startStarted = performance.now();
    const server = await startBundledServer({ REEF_DATA_DIR: dataDir, ...serverEnv }, 15 * 60_000);
    child = server.child;
    const { base, nodeFlags } = server;
    const startMs = performance.now() - startStarted;
    const rssStarted = rssOf(child.pid!);
    const heapStarted = await heapOf(base);

    // One publish into each index, two rounds: the first publish to an index after a
    // start is a delta on the chunks its start-up build left.
    const publishMs: number[][] = [[], []];
    for (const round of [0, 1]) {
      for (const [k, key] of keys.entries()) {
        const apk = await buildApk({
          name: `memory-new-${round}-${k}`,
          version: '1.0.0-r0',
          arch: key.arch,
          depends: key.libc === 'musl' ? [`so:libc.musl-${key.arch}.so.1`] : ['so:libc.so.6'],
          files: [{ name: 'usr/share/memory-new', content: randomBytes(4096) }],
        });
        const started = performance.now();
        const res = await fetch(`${base}/api/v1/repos/bench/${key.libc}/packages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/octet-stream' },
          body: new Uint8Array(apk),
        });
        const text = await res.text();
        if (res.status !== 201) throw new Error(`publish answered ${res.status}: ${text.slice(0, 300)}`);
        publishMs[round]!.push(performance.now() - started);
      }
    }
    const pageMs: number[] = [];
    for (const key of keys) {
      for (let i = 0; i < 6; i++) {
        const started = performance.now();
        const res = await fetch(
          `${base}/api/v1/repos/bench/${key.libc}/${key.arch}/packages?limit=100&after=${PACKAGES / 2}`,
        );
        await res.arrayBuffer();
        if (i > 0) pageMs.push(performance.now() - started);
      }
    }
    const rssServing = rssOf(child.pid!);
    const heapServing = await heapOf(base);
    log(
      `memory: server RSS ${rssStarted.rss} MiB after start, ${rssServing.rss} MiB serving ` +
        `${PACKAGES} packages (peak ${rssServing.peak} MiB); heap ${JSON.stringify(heapServing)}`,
    );
    return {
      name: 'memory',
      metrics: [
        {
          name: `${PACKAGES} packages: server RSS while serving`,
          value: rssServing.rss,
          unit: 'MiB',
          goal: `< ${GOAL_MIB}`,
          ok: rssServing.rss < GOAL_MIB,
        },
        {
          name: `${PACKAGES} packages: server peak RSS (incl. start-up index builds)`,
          value: rssServing.peak,
          unit: 'MiB',
        },
        {
          name: `${PACKAGES} packages: start with ${keys.length} index builds`,
          value: round(startMs / 1000, 1),
          unit: 's',
        },
        {
          name: `${PACKAGES} packages: publish p50, first round (incl. the process's first publish)`,
          value: round(percentile(publishMs[0]!, 50), 1),
          unit: 'ms',
        },
        {
          name: `${PACKAGES} packages: publish p50, second round`,
          value: round(percentile(publishMs[1]!, 50), 1),
          unit: 'ms',
        },
        { name: `${PACKAGES} packages: list page p50`, value: round(percentile(pageMs, 50), 1), unit: 'ms' },
      ],
      details: {
        packages: PACKAGES,
        indexes: keys.length,
        seedMs,
        startMs,
        serverEnv,
        nodeFlags,
        rssStarted,
        rssServing,
        heapStarted,
        heapServing,
        publishMs,
        pageMs,
      },
      notes: [],
    };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await temp.cleanup();
  }
}

/** Inserts the generated packages through the store, one transaction per index. */
async function seedPackages(dataDir: string, keys: IndexKey[]): Promise<void> {
  const { services } = await startBenchServices(dataDir);
  try {
    for (const [k, key] of keys.entries()) {
      const count = Math.min(PER_INDEX, PACKAGES - k * PER_INDEX);
      await services.store.transaction(async () => {
        for (let i = 0; i < count; i++)
          await services.store.insert({ ...syntheticPackage(k * PER_INDEX + i), ...key });
      });
      log(`memory: ${k * PER_INDEX + count} packages seeded`);
    }
  } finally {
    await services.close();
  }
}

/** The server's own view of its memory (prom-client's process and Node.js gauges), MiB. */
async function heapOf(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const name of [
    'process_resident_memory_bytes',
    'nodejs_heap_size_total_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_external_memory_bytes',
  ]) {
    const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
    out[name.replace(/_bytes$/, '')] = round(Number(value) / 2 ** 20, 1);
  }
  return out;
}
