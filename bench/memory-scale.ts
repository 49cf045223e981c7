import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
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
  startBenchServices,
} from './support.ts';

/**
 * Memory with a large database (issue 7): N packages (default 1,000,000)
 * spread over indexes of 100,000, inserted through the store; then the
 * server builds every index, takes one publish into each (so each holds its
 * chunk cache, up to the budget) and answers package-list pages. RSS is read
 * in this process, which is the server. Goal: under 300 MB.
 *
 * env: REEF_BENCH_MEMORY_PACKAGES (default 1000000).
 */

const PACKAGES = Number(process.env.REEF_BENCH_MEMORY_PACKAGES ?? 1_000_000);
const PER_INDEX = 100_000;
const GOAL_MIB = 300;
const ARCHES = ['x86_64', 'aarch64', 'armv7', 'riscv64', 'ppc64le'];
const LIBCS: Libc[] = ['glibc', 'musl'];

export async function benchMemoryScale(): Promise<BenchResult> {
  const temp = await makeTempDir('memory');
  const { services, logger } = await startBenchServices(join(temp.path, 'data'));
  let app: FastifyInstance | undefined;
  try {
    const keys: IndexKey[] = [];
    for (let i = 0; i * PER_INDEX < PACKAGES; i++) {
      keys.push({ repo: 'bench', libc: LIBCS[i % 2]!, arch: ARCHES[Math.floor(i / 2) % ARCHES.length]! });
    }
    const seedStarted = performance.now();
    for (const [k, key] of keys.entries()) {
      const count = Math.min(PER_INDEX, PACKAGES - k * PER_INDEX);
      services.db.transaction(() => {
        for (let i = 0; i < count; i++) {
          const p = syntheticPackage(k * PER_INDEX + i);
          services.store.insert({ ...p, ...key, depends: key.libc === 'musl' ? [] : p.depends });
        }
      })();
      log(`memory: ${k * PER_INDEX + count} packages seeded`);
    }
    const seedMs = performance.now() - seedStarted;
    const rssAfterSeed = rss();

    const buildStarted = performance.now();
    for (const key of keys) await services.indexer.refresh([key]);
    const buildMs = performance.now() - buildStarted;

    app = await buildApp(services, logger);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const base = `http://127.0.0.1:${address.port}`;

    // One publish into each index: each then holds its chunks (within the cache budget).
    // The first publish of a process loads and compiles what publishing needs: not measured.
    const publishMs: number[] = [];
    for (const [k, key] of [keys[0]!, ...keys].entries()) {
      const apk = await buildApk({
        name: `memory-new-${k}`,
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
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`publish answered ${res.status}`);
      if (k > 0) publishMs.push(performance.now() - started);
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
    const rssServing = rss();
    log(`memory: RSS ${rssAfterSeed} MiB after seeding, ${rssServing} MiB serving ${PACKAGES} packages`);
    return {
      name: 'memory',
      metrics: [
        {
          name: `${PACKAGES} packages: RSS while serving`,
          value: rssServing,
          unit: 'MiB',
          goal: `< ${GOAL_MIB}`,
          ok: rssServing < GOAL_MIB,
        },
        {
          name: `${PACKAGES} packages: publish p50 (indexes past the chunk cache budget rebuild in full)`,
          value: round(percentile(publishMs, 50), 1),
          unit: 'ms',
        },
        { name: `${PACKAGES} packages: list page p50`, value: round(percentile(pageMs, 50), 1), unit: 'ms' },
      ],
      details: {
        packages: PACKAGES,
        indexes: keys.length,
        seedMs,
        buildMs,
        rssAfterSeed,
        rssServing,
        publishMs,
        pageMs,
      },
      notes: [],
    };
  } finally {
    await app?.close();
    await services.close();
    await temp.cleanup();
  }
}

function rss(): number {
  return Math.round(process.memoryUsage().rss / 2 ** 20);
}
