import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import { migrate, openDb } from '../src/store/db.ts';
import { prng } from '../test/helpers/prng.ts';
import {
  type BenchResult,
  log,
  type Metric,
  makeTempDir,
  percentile,
  round,
  startBenchServices,
} from './support.ts';

/**
 * The auditor queries at scale (issue 7): N packages (default 1,000,000) with
 * 10 SBOM components each, written into the database by this process with
 * prepared statements (one transaction per 50,000 packages; the stores'
 * insert, which renders index records and marks indexes dirty, would take
 * several times as long), then the queries over HTTP against reef in this
 * process, as an anonymous caller (one package in ten is in a private
 * repository). Baseline in the same run: GET /healthz, a request that does no
 * work. RSS is this process's (server and client) from /proc/self/status;
 * the peak is reset before each query so it is that query's.
 *
 * The component pool: glibc in 90% of packages, openssl 40%, zlib 30%,
 * ca-certificates 20%, busybox 10%; the other five drawn from 200,000
 * libraries, skewed so that a few hundred are common and most are rare.
 * Licences: a handful of SPDX ones, 200 LicenseRef-s, 5% not SPDX at all.
 *
 * env: REEF_BENCH_COMPONENT_PACKAGES (default 1000000);
 *      REEF_BENCH_COMPONENT_SEED, a folder that keeps the seeded database
 *      between runs (seeding takes minutes; a newer reef migrates the copy).
 */

export const PACKAGES = Number(process.env.REEF_BENCH_COMPONENT_PACKAGES ?? 1_000_000);
const PER_PACKAGE = 10;
export const POOL = 200_000;
const BATCH = 50_000;
/** Samples per query: at most this many, or as many as fit in TIME_BUDGET_MS (at least MIN_SAMPLES). */
const MAX_SAMPLES = 200;
const MIN_SAMPLES = 5;
const TIME_BUDGET_MS = 30_000;
const ARCHES = ['x86_64', 'aarch64', 'armv7', 'riscv64', 'ppc64le'];
const COMMON: Array<{ name: string; share: number; purl: (v: string) => string; versions: string[] }> = [
  {
    name: 'glibc',
    share: 0.9,
    purl: (v) => `pkg:apk/wolfi/glibc@${v}`,
    versions: ['2.39-r0', '2.39-r4', '2.40-r1', '2.40-r3'],
  },
  {
    name: 'openssl',
    share: 0.4,
    purl: (v) => `pkg:apk/wolfi/openssl@${v}`,
    versions: ['3.0.15-r0', '3.1.7-r1', '3.3.2-r0', '3.4.0-r2'],
  },
  { name: 'zlib', share: 0.3, purl: (v) => `pkg:apk/wolfi/zlib@${v}`, versions: ['1.3-r0', '1.3.1-r2'] },
  {
    name: 'ca-certificates',
    share: 0.2,
    purl: (v) => `pkg:apk/wolfi/ca-certificates@${v}`,
    versions: ['20240705-r0', '20241121-r1'],
  },
  { name: 'busybox', share: 0.1, purl: (v) => `pkg:apk/wolfi/busybox@${v}`, versions: ['1.37.0-r0'] },
];
const LICENSES: Array<[string, number]> = [
  ['MIT', 0.3],
  ['Apache-2.0', 0.2],
  ['GPL-2.0-only', 0.1],
  ['BSD-3-Clause', 0.08],
  ['MIT OR Apache-2.0', 0.1],
  ['GPL-2.0-or-later', 0.05],
  ['LGPL-2.1-or-later', 0.05],
  ['ISC', 0.02],
  ['Custom', 0.02],
  ['Public Domain', 0.02],
  ['see COPYING', 0.01],
  // The rest: LicenseRef-vendor-0 … -199.
];

/** Library k of the pool: a name, and a purl type that uses semver for half of them. */
export function library(k: number, random: () => number) {
  const version = `${1 + (k % 5)}.${Math.floor(random() * 20)}.${Math.floor(random() * 4)}`;
  const name = `lib${k}`;
  const purl = k % 2 === 0 ? `pkg:npm/${name}@${version}` : `pkg:apk/wolfi/${name}@${version}-r0`;
  return { name, version: k % 2 === 0 ? version : `${version}-r0`, purl };
}

function pickLicense(random: () => number): string {
  let u = random();
  for (const [license, share] of LICENSES) {
    if (u < share) return license;
    u -= share;
  }
  return `LicenseRef-vendor-${Math.floor(random() * 200)}`;
}

/** Raw inserts into a database no server has open (its own connection, a big cache, no fsync). */
function seedDatabase(path: string): void {
  const db = openDb(path);
  migrate(db);
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -262144');
  // Indexes are built once at the end, by sorting, instead of by 10,000,000 random inserts.
  const indexes = (
    db
      .prepare(
        `SELECT name, sql FROM sqlite_master
         WHERE type = 'index' AND tbl_name IN ('packages', 'components') AND sql IS NOT NULL`,
      )
      .all() as Array<{ name: string; sql: string }>
  ).map((index) => {
    db.exec(`DROP INDEX ${index.name}`);
    return index.sql;
  });
  const random = prng(7);
  const now = Date.now();
  const insertRepo = db.prepare('INSERT OR IGNORE INTO repos (name, private, created_at) VALUES (?, ?, ?)');
  insertRepo.run('wolfi', 0, now);
  insertRepo.run('internal', 1, now);
  const insertPackage = db.prepare(
    `INSERT INTO packages (id, repo, libc, arch, name, version, filename, sha256, size, checksum, datahash,
       installed_size, description, url, license, origin, maintainer, commit_id, depends, provides, install_if,
       index_record, pkginfo, signatures, uploaded_at, published_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1000, 'Q1', ?, 4000, '', '', ?, ?, '', '', '', '', '', '', '[]', '[]', ?, ?)`,
  );
  const insertComponent = db.prepare(
    `INSERT INTO components (package_id, name, version, purl, license, supplier, checksums)
     VALUES (?, ?, ?, ?, ?, NULL, '[]')`,
  );
  for (let start = 0; start < PACKAGES; start += BATCH) {
    db.transaction(() => {
      for (let i = start; i < Math.min(PACKAGES, start + BATCH); i++) {
        const id = i + 1;
        const repo = i % 10 === 9 ? 'internal' : 'wolfi';
        const name = `pkg${i}`;
        const version = `${1 + (i % 9)}.${i % 13}-r${i % 3}`;
        const hex = id.toString(16).padStart(64, '0');
        const license = pickLicense(random);
        insertPackage.run(
          id,
          repo,
          i % 2 === 0 ? 'glibc' : 'musl',
          ARCHES[i % ARCHES.length],
          name,
          version,
          `${name}-${version}.apk`,
          hex,
          hex,
          license,
          name,
          now,
          now,
        );
        let count = 0;
        for (const c of COMMON) {
          if (random() >= c.share) continue;
          const v = c.versions[Math.floor(random() * c.versions.length)]!;
          insertComponent.run(id, c.name, v, c.purl(v), 'MIT');
          count++;
        }
        while (count < PER_PACKAGE) {
          const u = random();
          const lib = library(Math.floor(POOL * u * u * u), random);
          insertComponent.run(id, lib.name, lib.version, lib.purl, license);
          count++;
        }
      }
    })();
    log(`components: ${Math.min(PACKAGES, start + BATCH)} packages seeded`);
  }
  for (const sql of indexes) db.exec(sql);
  log(`components: ${indexes.length} indexes rebuilt`);
  db.close();
}

interface Memory {
  rssMiB: number;
  peakMiB: number;
}

export function memory(): Memory {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rssMiB: Math.round(kib('VmRSS') / 1024), peakMiB: Math.round(kib('VmHWM') / 1024) };
}

/** Resets VmHWM to the current RSS (Linux clear_refs 5), so the next peak is the next query's. */
export function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

export async function get(url: string): Promise<{ ms: number; body: Record<string, unknown> }> {
  const started = performance.now();
  const res = await fetch(url);
  const text = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${text.slice(0, 300)}`);
  return { ms, body: JSON.parse(text) as Record<string, unknown> };
}

interface Measured {
  label: string;
  samples: number[];
  /** Rows in the (first) answer. */
  rows: number;
  memoryBefore: Memory;
  memoryAfter: Memory;
}

/**
 * A data folder with the seeded packages and components at `dataDir`: seeded
 * there, or copied from REEF_BENCH_COMPONENT_SEED's copy (seeded there first
 * when it has none). The vulnerabilities benchmark uses the same data.
 */
export async function prepareComponentData(dataDir: string): Promise<{ seedMs: number }> {
  const seed = process.env.REEF_BENCH_COMPONENT_SEED;
  const seedDir = seed ? join(seed, `data-${PACKAGES}`) : dataDir;
  const seedStarted = performance.now();
  if (!existsSync(join(seedDir, 'reef.db'))) {
    await rm(seedDir, { recursive: true, force: true });
    await mkdir(seedDir, { recursive: true });
    seedDatabase(join(seedDir, 'reef.db'));
  } else {
    log(`components: reusing the seeded database in ${seedDir}`);
  }
  const seedMs = performance.now() - seedStarted;
  if (seedDir !== dataDir) await cp(seedDir, dataDir, { recursive: true });
  log(
    `components: ${PACKAGES} packages × ${PER_PACKAGE} components ready in ${(seedMs / 1000).toFixed(1)} s`,
  );

  return { seedMs };
}

export async function benchComponents(): Promise<BenchResult> {
  const temp = await makeTempDir('components');
  const dataDir = join(temp.path, 'data');
  let app: FastifyInstance | undefined;
  let services: Awaited<ReturnType<typeof startBenchServices>>['services'] | undefined;
  try {
    const { seedMs } = await prepareComponentData(dataDir);

    // Starting applies any migration the seeded database lacks (at 1M rows, a CREATE INDEX).
    const startStarted = performance.now();
    const started = await startBenchServices(dataDir);
    services = started.services;
    const startMs = performance.now() - startStarted;
    app = await buildApp(services, started.logger);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const canResetPeak = resetPeak();
    const idle = memory();

    const random = prng(11);
    const rareName = () => `lib${POOL - 1 - Math.floor(random() * (POOL / 2))}`;
    const rarePurl = () => `pkg:npm/lib${2 * Math.floor(POOL / 4 + random() * (POOL / 4))}`;
    const spdx = encodeURIComponent('MIT OR Apache-2.0');
    const ge = encodeURIComponent('>=3.3');
    const measured: Measured[] = [];
    const measure = async (label: string, path: () => string | undefined) => {
      global.gc?.();
      resetPeak();
      const memoryBefore = memory();
      const samples: number[] = [];
      let rows = -1;
      const until = performance.now() + TIME_BUDGET_MS;
      while (samples.length < MAX_SAMPLES && (samples.length < MIN_SAMPLES || performance.now() < until)) {
        const p = path();
        if (p === undefined) break;
        const r = await get(base + p);
        samples.push(r.ms);
        if (rows < 0) rows = ((r.body.matches ?? r.body.packages) as unknown[] | undefined)?.length ?? 0;
      }
      const m = { label, samples, rows, memoryBefore, memoryAfter: memory() };
      measured.push(m);
      log(
        `components: ${label}: ${samples.length} × p50 ${round(percentile(samples, 50), 2)} ms, ` +
          `p99 ${round(percentile(samples, 99), 2)} ms, ${rows} rows, peak RSS ${m.memoryAfter.peakMiB} MiB`,
      );
    };
    /** The `next` of a first page, or undefined when the server does not page (before issue 7). */
    const cursorOf = async (path: string) => {
      const next = (await get(base + path)).body.next;
      return typeof next === 'string' ? next : undefined;
    };

    for (let i = 0; i < 20; i++) await get(`${base}/healthz`); // warm-up
    await measure('baseline GET /healthz', () => '/healthz');
    await measure('by name, common (glibc, 90% of packages)', () => '/api/v1/components?name=glibc');
    await measure('by name, rare', () => `/api/v1/components?name=${rareName()}`);
    await measure(
      'by purl without version, common',
      () => `/api/v1/components?purl=${encodeURIComponent('pkg:apk/wolfi/glibc')}`,
    );
    await measure(
      'by purl without version, rare',
      () => `/api/v1/components?purl=${encodeURIComponent(rarePurl())}`,
    );
    await measure('by name + version >=3.3 (openssl)', () => `/api/v1/components?name=openssl&version=${ge}`);
    // The worst case: every glibc row is read and refused (the version verdict is cached).
    await measure(
      'by name + version matching none (glibc >=9), worst case',
      () => `/api/v1/components?name=glibc&version=${encodeURIComponent('>=9')}`,
    );
    await measure(
      'by purl + semver range, rare',
      () => `/api/v1/components?purl=${encodeURIComponent(rarePurl())}&version=${encodeURIComponent('>=2')}`,
    );
    const componentCursor = await cursorOf('/api/v1/components?name=glibc');
    await measure(
      'by name, common: second page (cursor)',
      () => componentCursor && `/api/v1/components?name=glibc&after=${encodeURIComponent(componentCursor)}`,
    );
    await measure('licences satisfies MIT OR Apache-2.0', () => `/api/v1/licenses?expression=${spdx}`);
    await measure(
      'licences conflicts MIT OR Apache-2.0',
      () => `/api/v1/licenses?expression=${spdx}&mode=conflicts`,
    );
    await measure('licences satisfies, limit=100', () => `/api/v1/licenses?expression=${spdx}&limit=100`);
    const licenseCursor = await cursorOf(`/api/v1/licenses?expression=${spdx}`);
    await measure(
      'licences satisfies: second page (cursor)',
      () => licenseCursor && `/api/v1/licenses?expression=${spdx}&after=${encodeURIComponent(licenseCursor)}`,
    );

    const baseline = measured[0]!;
    const baseP50 = percentile(baseline.samples, 50);
    const baseP99 = percentile(baseline.samples, 99);
    const metrics: Metric[] = [
      { name: 'packages', value: PACKAGES, unit: 'rows' },
      { name: 'components', value: PACKAGES * PER_PACKAGE, unit: 'rows' },
      { name: 'start incl. migrations', value: round(startMs / 1000, 1), unit: 's' },
      { name: 'RSS idle, after start', value: idle.rssMiB, unit: 'MiB' },
    ];
    for (const m of measured) {
      if (m.samples.length === 0) {
        metrics.push({ name: `${m.label} p50`, value: null, unit: 'ms' });
        continue;
      }
      const p50 = percentile(m.samples, 50);
      const p99 = percentile(m.samples, 99);
      metrics.push(
        { name: `${m.label} p50`, value: round(p50, 2), unit: 'ms' },
        { name: `${m.label} p99`, value: round(p99, 2), unit: 'ms' },
      );
      if (m !== baseline) {
        metrics.push(
          { name: `${m.label} p50 / healthz p50`, value: round(p50 / baseP50, 1), unit: 'x' },
          { name: `${m.label} p99 / healthz p99`, value: round(p99 / baseP99, 1), unit: 'x' },
          { name: `${m.label} peak RSS`, value: m.memoryAfter.peakMiB, unit: 'MiB' },
        );
      }
    }
    const final = memory();
    metrics.push({ name: 'RSS after the queries', value: final.rssMiB, unit: 'MiB' });
    return {
      name: 'components',
      metrics,
      details: {
        packages: PACKAGES,
        perPackage: PER_PACKAGE,
        pool: POOL,
        seedMs,
        startMs,
        idle,
        final,
        canResetPeak,
        loadavg: loadavg(),
        queries: measured,
      },
      notes: [
        'anonymous caller; one package in ten is in a private repository',
        ...(canResetPeak ? [] : ['could not reset VmHWM: peaks include seeding']),
        ...measured.filter((m) => m.samples.length === 0).map((m) => `${m.label}: not measured (no cursor)`),
      ],
    };
  } finally {
    await app?.close();
    await services?.close();
    await temp.cleanup();
  }
}
