import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import { sqliteOf } from '../src/store/sqlite-database.ts';
import { get, memory, PACKAGES, POOL, prepareComponentData, resetPeak } from './components.ts';
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
 * "Which packages does this vulnerability affect?" at scale (issue 16): the
 * components benchmark's data (N packages, default 1,000,000, with 10 SBOM
 * components each), 10,000 OSV records uploaded in one request (npm
 * libraries of that data, SEMVER ranges fixed at 3.0.0), then the first page
 * (1,000 matches) of GET /api/v1/vulnerabilities/<id> for a record naming a
 * common library (in 14 % of packages) and one naming a rare one (tens
 * of packages), as an admin (every repository searched). Baseline in the same
 * run: GET /healthz.
 *
 * env: as the components benchmark (REEF_BENCH_COMPONENT_PACKAGES,
 *      REEF_BENCH_COMPONENT_SEED).
 */

const RECORDS = 10_000;
const MAX_SAMPLES = 100;
const MIN_SAMPLES = 5;
const TIME_BUDGET_MS = 20_000;

/** The record for library `lib{2k}` (an npm package in the seeded data). */
function record(k: number) {
  return {
    id: `GHSA-bnch-${String(k).padStart(4, '0')}-0000`,
    modified: '2024-06-01T00:00:00Z',
    aliases: [`CVE-2099-${10000 + k}`],
    affected: [
      {
        package: { ecosystem: 'npm', name: `lib${2 * k}` },
        ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '3.0.0' }] }],
      },
    ],
  };
}

export async function benchVulnerabilities(): Promise<BenchResult> {
  const temp = await makeTempDir('vulnerabilities');
  const dataDir = join(temp.path, 'data');
  let app: FastifyInstance | undefined;
  let services: Awaited<ReturnType<typeof startBenchServices>>['services'] | undefined;
  try {
    const { seedMs } = await prepareComponentData(dataDir);
    const started = await startBenchServices(dataDir);
    services = started.services;
    app = await buildApp(services, started.logger);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const auth = { authorization: `Bearer ${BENCH_TOKEN}` };
    const timed = async (path: string) => {
      const t = performance.now();
      const res = await fetch(base + path, { headers: auth });
      const body = (await res.json()) as Record<string, unknown>;
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      return { ms: performance.now() - t, body };
    };

    for (let i = 0; i < 20; i++) await get(`${base}/healthz`);
    const sample = async (label: string, path: string) => {
      const samples: number[] = [];
      let rows = -1;
      const until = performance.now() + TIME_BUDGET_MS;
      while (samples.length < MAX_SAMPLES && (samples.length < MIN_SAMPLES || performance.now() < until)) {
        const r = await timed(path);
        samples.push(r.ms);
        if (rows < 0) rows = (r.body.matches as unknown[] | undefined)?.length ?? 0;
      }
      log(
        `vulnerabilities: ${label}: ${samples.length} × p50 ${round(percentile(samples, 50), 2)} ms, ` +
          `p99 ${round(percentile(samples, 99), 2)} ms, ${rows} rows`,
      );
      return { label, samples, rows };
    };

    const healthzBefore = await sample('baseline GET /healthz', '/healthz');
    // Loading: one request of 10,000 records, parsed, checked and stored in one transaction.
    resetPeak();
    const before = memory();
    const body = JSON.stringify(Array.from({ length: RECORDS }, (_, k) => record(k)));
    const loadStarted = performance.now();
    const res = await fetch(`${base}/api/v1/vulnerabilities`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body,
    });
    const loadMs = performance.now() - loadStarted;
    const loaded = (await res.json()) as { stored: number };
    if (res.status !== 200 || loaded.stored !== RECORDS)
      throw new Error(`upload: ${res.status} ${JSON.stringify(loaded)}`);
    const afterLoad = memory();
    log(
      `vulnerabilities: ${RECORDS} records (${(body.length / 2 ** 20).toFixed(1)} MiB) loaded in ${round(loadMs, 0)} ms`,
    );

    const healthz = await sample('baseline GET /healthz', '/healthz');
    // lib0 is the most common library of the pool (in 14 % of packages at 1,000,000); lib19000 a
    // rare one (54 packages), at versions 1.x, below the fix.
    const common = await sample(
      'affected by X, common component (lib0)',
      '/api/v1/vulnerabilities/GHSA-bnch-0000-0000',
    );
    const rare = await sample(
      'affected by X, rare component (lib19000)',
      '/api/v1/vulnerabilities/CVE-2099-19500',
    );
    const cursor = (await timed('/api/v1/vulnerabilities/GHSA-bnch-0000-0000')).body.next;
    const second =
      typeof cursor === 'string'
        ? await sample(
            'common, second page (cursor)',
            `/api/v1/vulnerabilities/GHSA-bnch-0000-0000?after=${cursor}`,
          )
        : undefined;
    // A public package whose SBOM has lib0, for the reverse view.
    const holder = sqliteOf(services.database)
      .prepare(
        `SELECT p.repo, p.libc, p.arch, p.name, p.version FROM components c JOIN packages p ON p.id = c.package_id
         WHERE c.purl >= 'pkg:npm/lib0@' AND c.purl < 'pkg:npm/lib0A' AND p.repo = 'wolfi' LIMIT 1`,
      )
      .get() as { repo: string; libc: string; arch: string; name: string; version: string };
    const reverse = await sample(
      'one package: its vulnerabilities (reverse view)',
      `/api/v1/packages/${holder.repo}/${holder.libc}/${holder.arch}/${holder.name}/${encodeURIComponent(holder.version)}/vulnerabilities`,
    );

    const baseP50 = percentile(healthz.samples, 50);
    const metrics: Metric[] = [
      { name: 'packages', value: PACKAGES, unit: 'rows' },
      { name: 'OSV records', value: RECORDS, unit: 'records' },
      { name: 'load: one upload of all records', value: round(loadMs, 0), unit: 'ms' },
      { name: 'load: per record', value: round((loadMs * 1000) / RECORDS, 0), unit: 'µs' },
      { name: 'load: upload / healthz p50', value: round(loadMs / baseP50, 0), unit: 'x' },
      { name: 'load: RSS peak during the upload', value: afterLoad.peakMiB, unit: 'MiB' },
      { name: 'load: RSS before the upload', value: before.rssMiB, unit: 'MiB' },
      {
        name: 'healthz p50 before the upload',
        value: round(percentile(healthzBefore.samples, 50), 2),
        unit: 'ms',
      },
    ];
    for (const m of [healthz, common, rare, second, reverse]) {
      if (!m) continue;
      const p50 = percentile(m.samples, 50);
      metrics.push(
        { name: `${m.label} p50`, value: round(p50, 2), unit: 'ms' },
        { name: `${m.label} p99`, value: round(percentile(m.samples, 99), 2), unit: 'ms' },
      );
      if (m !== healthz) {
        metrics.push(
          { name: `${m.label} p50 / healthz p50`, value: round(p50 / baseP50, 1), unit: 'x' },
          { name: `${m.label}: matches on the page`, value: m.rows, unit: 'rows' },
        );
      }
    }
    return {
      name: 'vulnerabilities',
      metrics,
      details: { packages: PACKAGES, pool: POOL, records: RECORDS, seedMs, loadavg: loadavg() },
      notes: ['admin caller: every repository searched; first pages of 1,000 matches'],
    };
  } finally {
    await app?.close();
    await services?.close();
    await temp.cleanup();
  }
}
