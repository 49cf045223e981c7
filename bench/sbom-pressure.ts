import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { buildApk } from '../test/helpers/apk-builder.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  exportCheckout,
  log,
  type Metric,
  MiB,
  makeTempDir,
  percentile,
  round,
  rssOf,
  sleep,
  startBundledServer,
} from './support.ts';

/**
 * What SBOMs cost the server while packages arrive. Three
 * loads, each on a fresh `reef serve` run as `npm start` runs it, for the
 * current code and a baseline commit exported beside it, in the same run:
 *
 * - embedded-32: 40 uploads at once of ~32 KB packages whose embedded SBOM
 *   inflates to 32 MiB (a small valid SPDX document padded with spaces).
 *   Peak RSS (VmHWM) over the idle server.
 * - embedded-16: the same with SBOMs of exactly 16 MiB, the accepted limit:
 *   every upload is valid, so all 40 must end in 201. A 503 (SBOM_BUSY) is
 *   retried after its Retry-After. Peak RSS and the time until all are in.
 * - sent-16: 16 uploads at once, each with a 16 MiB SPDX document of
 *   ~38,000 files sent as multipart field `sbom`. /readyz is asked every
 *   50 ms meanwhile, one request at a time: its slowest answer and p99 say
 *   how long the event loop was held.
 *
 * REEF_BENCH_BASELINE names the baseline (default db339bf, the commit before
 * this work); REEF_BENCH_CURRENT the code measured (default HEAD). Both are
 * exported with git archive, so uncommitted edits are not measured.
 */

const UPLOADS = 40;
const SENT_UPLOADS = 16;
const READYZ_EVERY_MS = 50;

type Phase = 'embedded-32' | 'embedded-16' | 'sent-16';

interface PhaseResult {
  idle: number;
  peak: number;
  seconds: number;
  statuses: Record<string, number>;
  busy: number;
  readyz?: { max: number; p99: number; p50: number; samples: number };
}

export async function benchSbomPressure(): Promise<BenchResult> {
  const temp = await makeTempDir('sbom-pressure');
  const notes: string[] = [];
  try {
    const baseline = await exportCheckout(
      process.env.REEF_BENCH_BASELINE ?? 'db339bf',
      join(temp.path, 'baseline'),
    );
    const current = await exportCheckout(
      process.env.REEF_BENCH_CURRENT ?? 'HEAD',
      join(temp.path, 'current'),
    );
    log(`sbom-pressure: baseline ${baseline.commit.slice(0, 7)}, current ${current.commit.slice(0, 7)}`);

    const embedded32 = await embeddedPackages(32 * MiB);
    const embedded16 = await embeddedPackages(16 * MiB);
    const sent = await sentUploads();
    log('sbom-pressure: packages built');

    const results: Record<string, Record<Phase, PhaseResult>> = {};
    for (const [label, checkout] of [
      ['baseline', baseline],
      ['current', current],
    ] as const) {
      const run = async (
        phase: Phase,
        load: (base: string) => Promise<Omit<PhaseResult, 'idle' | 'peak'>>,
      ) => {
        const server = await startBundledServer(
          { REEF_DATA_DIR: join(temp.path, `data-${label}-${phase}`), REEF_KEY_BITS: '2048' },
          60_000,
          { root: checkout.root, build: false },
        );
        try {
          await sleep(1000);
          const idle = rssOf(server.child.pid!).rss;
          const out = await load(server.base);
          const peak = rssOf(server.child.pid!).peak;
          log(`sbom-pressure: ${label} ${phase}: idle ${idle} MiB, peak ${peak} MiB, ${JSON.stringify(out)}`);
          return { idle, peak, ...out };
        } finally {
          await stop(server.child);
        }
      };
      results[label] = {
        'embedded-32': await run('embedded-32', (base) => uploadAll(base, embedded32, false)),
        'embedded-16': await run('embedded-16', (base) => uploadAll(base, embedded16, true)),
        'sent-16': await run('sent-16', (base) => sentAll(base, sent)),
      };
    }

    const before = results.baseline!;
    const after = results.current!;
    const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 1) : null);
    const metrics: Metric[] = [];
    for (const phase of ['embedded-32', 'embedded-16', 'sent-16'] as const) {
      const b = before[phase];
      const a = after[phase];
      metrics.push(
        { name: `${phase}: peak - idle, before`, value: b.peak - b.idle, unit: 'MiB' },
        { name: `${phase}: peak - idle, after`, value: a.peak - a.idle, unit: 'MiB' },
        {
          name: `${phase}: peak growth before / after`,
          value: ratio(b.peak - b.idle, a.peak - a.idle),
          unit: 'x',
        },
        { name: `${phase}: all answered, before`, value: round(b.seconds, 1), unit: 's' },
        { name: `${phase}: all answered, after`, value: round(a.seconds, 1), unit: 's' },
      );
    }
    const rb = before['sent-16'].readyz!;
    const ra = after['sent-16'].readyz!;
    metrics.push(
      { name: 'sent-16: /readyz slowest, before', value: round(rb.max, 0), unit: 'ms' },
      { name: 'sent-16: /readyz slowest, after', value: round(ra.max, 0), unit: 'ms' },
      { name: 'sent-16: /readyz slowest before / after', value: ratio(rb.max, ra.max), unit: 'x' },
      { name: 'sent-16: /readyz p99, before', value: round(rb.p99, 0), unit: 'ms' },
      { name: 'sent-16: /readyz p99, after', value: round(ra.p99, 0), unit: 'ms' },
      { name: 'embedded-16: 503 SBOM_BUSY retried, after', value: after['embedded-16'].busy, unit: '' },
    );
    return {
      name: 'sbom-pressure',
      metrics,
      details: { baseline: baseline.commit, current: current.commit, results },
      notes,
    };
  } finally {
    await temp.cleanup();
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A valid SPDX 2.3 document about name-version, with `files` file entries, padded with spaces to `size`. */
function spdxOf(name: string, version: string, size: number, files = 0): Buffer {
  const text = JSON.stringify({
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `apk-${name}-${version}`,
    documentNamespace: `https://example.org/spdxdocs/${name}-${version}`,
    creationInfo: { created: '2024-01-01T00:00:00Z', creators: ['Tool: reef-bench'] },
    packages: [{ SPDXID: 'SPDXRef-Package', name, versionInfo: version, downloadLocation: 'NOASSERTION' }],
    files: Array.from({ length: files }, (_, i) => ({
      SPDXID: `SPDXRef-File-${i}`,
      fileName: `/usr/share/${name}/some/longer/path/to/a/file/number-${i}.txt`,
      checksums: [
        { algorithm: 'SHA1', checksumValue: (i * 7919).toString(16).padStart(40, '0') },
        { algorithm: 'SHA256', checksumValue: (i * 104729).toString(16).padStart(64, '0') },
      ],
      licenseConcluded: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
    })),
    documentDescribes: ['SPDXRef-Package'],
  });
  if (text.length > size) throw new Error(`SPDX text of ${text.length} bytes is over ${size}`);
  return Buffer.concat([Buffer.from(text), Buffer.alloc(size - text.length, 0x20)]);
}

async function embeddedPackages(sbomSize: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < UPLOADS; i++) {
    const name = `emb${sbomSize / MiB}-${i}`;
    out.push(await buildApk({ name, depends: [], sbom: spdxOf(name, '1.0.0-r0', sbomSize) }));
  }
  return out;
}

/** Files in a sent document: as many as fit in 16 MiB. */
const SENT_FILES = 60_000;

async function sentUploads(): Promise<Array<{ apk: Buffer; sbom: Buffer }>> {
  let files = SENT_FILES;
  const fits = (n: number) => {
    try {
      spdxOf('sent-00', '1.0.0-r0', 16 * MiB, n);
      return true;
    } catch {
      return false;
    }
  };
  while (!fits(files)) files = Math.floor(files * 0.95);
  const out: Array<{ apk: Buffer; sbom: Buffer }> = [];
  for (let i = 0; i < SENT_UPLOADS; i++) {
    const name = `sent-${String(i).padStart(2, '0')}`;
    out.push({ apk: await buildApk({ name, depends: [] }), sbom: spdxOf(name, '1.0.0-r0', 16 * MiB, files) });
  }
  log(`sbom-pressure: sent documents of ${files} files, ${(out[0]!.sbom.length / MiB).toFixed(1)} MiB`);
  return out;
}

async function post(
  base: string,
  body: Uint8Array<ArrayBuffer> | FormData,
): Promise<{ status: number; code?: string; retryAfter?: number }> {
  const res = await fetch(`${base}/api/v1/repos/bench/glibc/packages`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${BENCH_TOKEN}`,
      ...(body instanceof FormData ? {} : { 'content-type': 'application/octet-stream' }),
    },
    body,
  });
  const json = (await res.json().catch(() => ({}))) as { code?: string };
  const retryAfter = Number(res.headers.get('retry-after') ?? Number.NaN);
  return {
    status: res.status,
    code: json.code,
    retryAfter: Number.isFinite(retryAfter) ? retryAfter : undefined,
  };
}

async function uploadAll(
  base: string,
  packages: Buffer[],
  retryBusy: boolean,
): Promise<Omit<PhaseResult, 'idle' | 'peak'>> {
  const started = performance.now();
  const statuses: Record<string, number> = {};
  let busy = 0;
  await Promise.all(
    packages.map(async (apk) => {
      for (let attempt = 0; ; attempt++) {
        const r = await post(base, new Uint8Array(apk));
        if (retryBusy && r.status === 503 && r.code === 'SBOM_BUSY' && attempt < 50) {
          busy++;
          await sleep((r.retryAfter ?? 1) * 1000);
          continue;
        }
        const key = `${r.status} ${r.code ?? ''}`.trim();
        statuses[key] = (statuses[key] ?? 0) + 1;
        return;
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, statuses, busy };
}

async function sentAll(
  base: string,
  uploads: Array<{ apk: Buffer; sbom: Buffer }>,
): Promise<Omit<PhaseResult, 'idle' | 'peak'>> {
  const latencies: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const t = performance.now();
      await fetch(`${base}/readyz`).then((r) => r.arrayBuffer());
      latencies.push(performance.now() - t);
      await sleep(READYZ_EVERY_MS);
    }
  })();
  const started = performance.now();
  const statuses: Record<string, number> = {};
  await Promise.all(
    uploads.map(async ({ apk, sbom }) => {
      const form = new FormData();
      form.set('sbom', new Blob([new Uint8Array(sbom)]), 'sbom.spdx.json');
      form.set('package', new Blob([new Uint8Array(apk)]), 'package.apk');
      const r = await post(base, form);
      const key = `${r.status} ${r.code ?? ''}`.trim();
      statuses[key] = (statuses[key] ?? 0) + 1;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  polling = false;
  await poller;
  return {
    seconds,
    statuses,
    busy: 0,
    readyz: {
      max: Math.max(...latencies),
      p99: percentile(latencies, 99),
      p50: percentile(latencies, 50),
      samples: latencies.length,
    },
  };
}
