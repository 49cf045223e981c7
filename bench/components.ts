import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import type { SbomComponent } from '../src/sbom/types.ts';
import { type BenchResult, log, makeTempDir, percentile, round, startBenchServices } from './support.ts';

/**
 * Component search (issue 5): 10,000 packages with 50 SBOM components each,
 * seeded through the stores, then GET /api/v1/components by name and by purl
 * over HTTP. Baseline in the same run: GET /healthz, the cost of a request
 * that does no work.
 */

const PACKAGES = 10_000;
const PER_PACKAGE = 50;
const POOL = 5_000;
const QUERIES = 300;

function component(i: number): SbomComponent {
  return {
    name: `lib-${i}`,
    version: `${1 + (i % 7)}.${i % 13}.${i % 3}`,
    purl: `pkg:npm/lib-${i}@${1 + (i % 7)}.${i % 13}.${i % 3}`,
    license: i % 3 === 0 ? 'Apache-2.0' : 'MIT',
    checksums: [{ algorithm: 'SHA256', value: randomBytes(32).toString('hex') }],
  };
}

async function timeGets(url: string, paths: string[]): Promise<number[]> {
  const ms: number[] = [];
  for (const path of paths) {
    const started = performance.now();
    const res = await fetch(url + path);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    ms.push(performance.now() - started);
  }
  return ms;
}

export async function benchComponents(): Promise<BenchResult> {
  const temp = await makeTempDir('components');
  const { services, logger } = await startBenchServices(temp.path);
  let app: FastifyInstance | undefined;
  try {
    const seedStarted = performance.now();
    services.db.transaction(() => {
      for (let p = 0; p < PACKAGES; p++) {
        const created = services.store.insert(
          {
            repo: 'bench',
            libc: 'glibc',
            arch: 'x86_64',
            name: `pkg${p}`,
            version: '1.0.0-r0',
            filename: `pkg${p}-1.0.0-r0.apk`,
            sha256: randomBytes(32).toString('hex'),
            size: 1000,
            checksum: `Q1${randomBytes(20).toString('base64')}`,
            datahash: randomBytes(32).toString('hex'),
            installedSize: 1000,
            description: '',
            url: '',
            license: 'MIT',
            origin: `pkg${p}`,
            maintainer: '',
            builddate: undefined,
            commit: '',
            providerPriority: undefined,
            depends: [],
            provides: [],
            installIf: [],
            pkginfo: [],
            signatures: [],
          },
          Date.now(),
        );
        const components = Array.from({ length: PER_PACKAGE }, (_, k) => component((p * 31 + k * 97) % POOL));
        services.sboms.save(created.pkg.id, {
          source: 'generated',
          format: 'spdx',
          specVersion: '2.3',
          sha256: randomBytes(32).toString('hex'),
          size: 1,
          components,
        });
      }
      services.db.prepare('UPDATE packages SET published_at = 1').run();
    })();
    const seedMs = performance.now() - seedStarted;
    log(
      `components: seeded ${PACKAGES} packages × ${PER_PACKAGE} components in ${(seedMs / 1000).toFixed(1)} s`,
    );

    app = await buildApp(services, logger);
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const names = Array.from(
      { length: QUERIES },
      (_, i) => `/api/v1/components?name=lib-${(i * 7919) % POOL}`,
    );
    const purls = Array.from(
      { length: QUERIES },
      (_, i) =>
        `/api/v1/components?purl=${encodeURIComponent(`pkg:npm/lib-${(i * 104729) % POOL}`)}&version=${encodeURIComponent('>=2')}`,
    );
    await timeGets(url, names.slice(0, 20)); // warm-up
    const baseline = await timeGets(url, Array(QUERIES).fill('/healthz'));
    const byName = await timeGets(url, names);
    const byPurl = await timeGets(url, purls);
    const p99 = Math.max(percentile(byName, 99), percentile(byPurl, 99));
    return {
      name: 'components',
      metrics: [
        { name: 'packages × components', value: PACKAGES * PER_PACKAGE, unit: 'rows' },
        { name: 'baseline GET /healthz p50', value: round(percentile(baseline, 50), 2), unit: 'ms' },
        { name: 'by name p50', value: round(percentile(byName, 50), 2), unit: 'ms' },
        {
          name: 'by name p99',
          value: round(percentile(byName, 99), 2),
          unit: 'ms',
          goal: '< 20',
          ok: percentile(byName, 99) < 20,
        },
        { name: 'by purl + semver range p50', value: round(percentile(byPurl, 50), 2), unit: 'ms' },
        {
          name: 'by purl + semver range p99',
          value: round(percentile(byPurl, 99), 2),
          unit: 'ms',
          goal: '< 20',
          ok: percentile(byPurl, 99) < 20,
        },
        { name: 'p99 ratio vs /healthz p99', value: round(p99 / percentile(baseline, 99), 1), unit: 'x' },
      ],
      details: { seedMs, byName, byPurl, baseline },
      notes: [`each name matches ~${Math.round((PACKAGES * PER_PACKAGE) / POOL)} packages`],
    };
  } finally {
    await app?.close();
    await services.close();
    await temp.cleanup();
  }
}
