import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IndexKey, Libc } from '../src/store/package-store.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import { syntheticPackage } from './publish.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  freePort,
  log,
  makeTempDir,
  percentile,
  round,
  sleep,
  startBenchServices,
} from './support.ts';

/**
 * Memory with a large database (issue 7): N packages (default 1,000,000)
 * spread over indexes of 100,000, inserted through the store by this
 * process; then a fresh `reef serve` on that folder (which builds every
 * index at start), two rounds of one publish into each index, and pages of
 * the package list. RSS and peak RSS are the server's, from /proc.
 * Goal: under 300 MB.
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
  const dataDir = join(temp.path, 'data');
  let child: ChildProcess | undefined;
  try {
    const keys: IndexKey[] = [];
    for (let i = 0; i * PER_INDEX < PACKAGES; i++) {
      keys.push({ repo: 'bench', libc: LIBCS[i % 2]!, arch: ARCHES[Math.floor(i / 2) % ARCHES.length]! });
    }
    // Seeded by this process; the server measured is a fresh `reef serve` on the same folder.
    const { services } = await startBenchServices(dataDir);
    const seedStarted = performance.now();
    try {
      for (const [k, key] of keys.entries()) {
        const count = Math.min(PER_INDEX, PACKAGES - k * PER_INDEX);
        services.db.transaction(() => {
          for (let i = 0; i < count; i++)
            services.store.insert({ ...syntheticPackage(k * PER_INDEX + i), ...key });
        })();
        log(`memory: ${k * PER_INDEX + count} packages seeded`);
      }
    } finally {
      await services.close();
    }
    const seedMs = performance.now() - seedStarted;

    // Its start builds every index (they were never built): the first build of each is a full one.
    const port = await freePort();
    const startStarted = performance.now();
    child = spawn(process.execPath, [fileURLToPath(new URL('../bin/reef.js', import.meta.url)), 'serve'], {
      env: {
        ...process.env,
        REEF_DATA_DIR: dataDir,
        REEF_PORT: String(port),
        REEF_ADMIN_TOKEN: BENCH_TOKEN,
        REEF_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const base = `http://127.0.0.1:${port}`;
    await waitReady(`${base}/readyz`, 15 * 60_000);
    const startMs = performance.now() - startStarted;
    const rssStarted = rssOf(child.pid!);

    // One publish into each index, two rounds. Indexes beyond the chunk cache budget
    // (64 MiB: about six of 100,000 entries) are rebuilt in full when published to.
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
    log(
      `memory: server RSS ${rssStarted.rss} MiB after start, ${rssServing.rss} MiB serving ` +
        `${PACKAGES} packages (peak ${rssServing.peak} MiB)`,
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
        rssStarted,
        rssServing,
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

/** VmRSS and VmHWM (peak) of a process, MiB, from /proc. */
function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}

async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(500);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms`);
}
