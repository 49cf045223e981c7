import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fsck } from '../src/repo/fsck.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import { indexSizesWithTar } from '../test/helpers/index-text.ts';
import { opensslVerifyIndex } from '../test/helpers/server.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  log,
  type Metric,
  makeTempDir,
  percentile,
  round,
  sleep,
} from './support.ts';

/**
 * `npm run soak [-- --duration 10m]`: reef as a child process on 127.0.0.1
 * under mixed load from this script (Node's fetch): apk-style clients that
 * revalidate the index with If-None-Match and download packages (some
 * conditionally, some ranges), publishers and deleters churning packages,
 * auditors fetching SBOMs and searching components. It reports throughput,
 * p50/p99 latency per kind, every status seen (5xx must be zero), the
 * server's RSS over time, and at the end checks the design's invariants:
 * every index verifies with openssl and lists exactly the database's
 * packages with their S:, every listed package downloads with the recorded
 * SHA-256, every acknowledged publish not deleted is listed and every deleted
 * one is not; after a clean stop, `reef fsck` finds no damage and no garbage.
 * Results go to bench/results/soak-<timestamp>.json.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const REPO = 'soak';
const ARCHES = ['x86_64', 'aarch64'] as const;

interface PoolPkg {
  name: string;
  arch: 'x86_64' | 'aarch64' | 'noarch';
  file: string;
  bytes: Buffer;
  sha256: string;
}

type Kind =
  | 'index'
  | 'index-if-none-match'
  | 'package'
  | 'package-if-none-match'
  | 'package-range'
  | 'publish'
  | 'delete'
  | 'sbom-spdx'
  | 'sbom-cdx'
  | 'components'
  | 'package-api'
  | 'healthz';

class Stats {
  readonly latencies = new Map<Kind, number[]>();
  readonly statuses = new Map<string, number>();
  readonly failures: string[] = [];
  errors5xx = 0;
  networkErrors = 0;
  integrityErrors = 0;
  bytes = 0;

  record(kind: Kind, ms: number, status: number): void {
    let l = this.latencies.get(kind);
    if (!l) {
      l = [];
      this.latencies.set(kind, l);
    }
    l.push(ms);
    const key = `${kind} ${status}`;
    this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
    if (status >= 500) this.errors5xx++;
  }

  fail(message: string): void {
    if (this.failures.length < 50) this.failures.push(message);
  }
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--duration: '${text}' is not like 600, 90s, 10m or 1h`);
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function startServer(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      REEF_DATA_DIR: dataDir,
      REEF_PORT: '0',
      REEF_ADMIN_TOKEN: BENCH_TOKEN,
      REEF_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const logs: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reef did not start: ${out}`)), 120_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = / at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]! });
      }
      // Keep the server's warnings and errors for the report (bounded).
      for (const line of d.toString().split('\n')) if (line && logs.length < 200) logs.push(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`reef exited with ${code}: ${out}`)));
    serverLogs = logs;
  });
}

let serverLogs: string[] = [];

function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function timed(
  stats: Stats,
  kind: Kind,
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Buffer; headers: Headers } | undefined> {
  const started = performance.now();
  try {
    const res = await fetch(url, init);
    const body = Buffer.from(await res.arrayBuffer());
    stats.record(kind, performance.now() - started, res.status);
    stats.bytes += body.length;
    if (res.status >= 500) stats.fail(`${kind} ${url}: ${res.status} ${body.toString().slice(0, 200)}`);
    return { status: res.status, body, headers: res.headers };
  } catch (err) {
    stats.networkErrors++;
    stats.fail(`${kind} ${url}: ${(err as Error).message}`);
    return undefined;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10m' },
      clients: { type: 'string', default: '16' },
      publishers: { type: 'string', default: '2' },
      pool: { type: 'string', default: '300' },
      keep: { type: 'boolean', default: false },
    },
  });
  const durationMs = parseDuration(values.duration);
  const clients = Number(values.clients);
  const publishers = Number(values.publishers);
  const poolSize = Number(values.pool);
  const tmp = await makeTempDir('soak');
  const dataDir = join(tmp.path, 'data');
  const work = join(tmp.path, 'work');
  await mkdir(work, { recursive: true });
  log(`soak: building ${poolSize} packages`);

  // The pool publishers and deleters churn through; a few are over the 1 MiB the server keeps in memory.
  const pool: PoolPkg[] = [];
  for (let i = 0; i < poolSize; i++) {
    const arch = (['x86_64', 'aarch64', 'noarch'] as const)[i % 3]!;
    const name = `soak${i}`;
    const size = i % 50 === 7 ? 1_500_000 : 2_000 + ((i * 7919) % 60_000);
    const content = i % 2 === 0 ? randomBytes(size) : Buffer.from(`${name}\n`.repeat(size / 8));
    const bytes = await buildApk({
      name,
      arch,
      license: i % 3 === 0 ? 'MIT' : 'Apache-2.0',
      depends: i % 4 === 0 ? [`soak${(i + 1) % poolSize}`] : [],
      files: [{ name: `usr/share/${name}/data`, content }],
    });
    pool.push({ name, arch, file: `${name}-1.0.0-r0.apk`, bytes, sha256: sha256(bytes) });
  }

  const server = await startServer(dataDir);
  const pid = server.child.pid!;
  log(`soak: reef at ${server.url} (pid ${pid}), load for ${values.duration}`);
  const auth = { authorization: `Bearer ${BENCH_TOKEN}` };
  const stats = new Stats();

  /** Client-side truth: acknowledged and not deleted since. */
  const live = new Map<string, PoolPkg>();
  /** Under publish or delete right now: downloads of these may 404. */
  const busy = new Set<string>();
  const deleted = new Set<string>();

  // Seed half the pool, so clients have something from the first second.
  for (const p of pool.slice(0, Math.floor(poolSize / 2))) {
    const res = await fetch(`${server.url}/api/v1/repos/${REPO}/musl/packages`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(p.bytes),
    });
    await res.arrayBuffer();
    if (res.status !== 201) throw new Error(`seeding ${p.file}: ${res.status}`);
    live.set(p.file, p);
  }

  const started = performance.now();
  const deadline = started + durationMs;
  const running = () => performance.now() < deadline;
  const rss: Array<{ s: number; bytes: number; heapUsed?: number; external?: number }> = [];
  const sampler = setInterval(() => {
    const bytes = rssOf(pid);
    if (bytes === undefined) return;
    const sample: (typeof rss)[number] = { s: round((performance.now() - started) / 1000, 1), bytes };
    rss.push(sample);
    // The JS heap and off-heap buffers as the server reports them: what part of RSS grows.
    fetch(`${server.url}/metrics`)
      .then((r) => r.text())
      .then((text) => {
        const gauge = (name: string) =>
          Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
        sample.heapUsed = gauge('nodejs_heap_size_used_bytes');
        sample.external = gauge('nodejs_external_memory_bytes');
      })
      .catch(() => {});
  }, 5000);
  const progress = setInterval(() => {
    const done = Math.round((performance.now() - started) / 1000);
    const total = [...stats.latencies.values()].reduce((n, l) => n + l.length, 0);
    log(
      `soak: ${done} s, ${total} requests, ${stats.errors5xx} 5xx, ${stats.integrityErrors} integrity errors, ${live.size} live packages, RSS ${Math.round((rssOf(pid) ?? 0) / 2 ** 20)} MiB`,
    );
  }, 30_000);

  const pick = <T>(items: T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

  // apk clients: revalidate the index, fetch a few packages (some already cached, some ranges).
  const apkClient = async () => {
    const etags = new Map<string, string>();
    const have = new Map<string, string>();
    while (running()) {
      const arch = pick([...ARCHES])!;
      const url = `${server.url}/${REPO}/musl/${arch}/APKINDEX.tar.gz`;
      const etag = etags.get(arch);
      const r = await timed(stats, etag ? 'index-if-none-match' : 'index', url, {
        headers: etag ? { 'if-none-match': etag } : {},
      });
      if (r?.status === 200) etags.set(arch, r.headers.get('etag') ?? '');
      for (let i = 0; i < 3 && running(); i++) {
        const p = pick([...live.values()].filter((x) => x.arch === arch || x.arch === 'noarch'));
        if (!p) break;
        const pkgUrl = `${server.url}/${REPO}/musl/${arch}/${p.file}`;
        const roll = Math.random();
        if (roll < 0.3 && have.has(p.file)) {
          const c = await timed(stats, 'package-if-none-match', pkgUrl, {
            headers: { 'if-none-match': have.get(p.file)! },
          });
          if (c && c.status !== 304 && c.status !== 404) stats.fail(`conditional ${p.file}: ${c.status}`);
        } else if (roll < 0.4) {
          const start = Math.floor(Math.random() * (p.bytes.length - 100));
          const c = await timed(stats, 'package-range', pkgUrl, {
            headers: { range: `bytes=${start}-${start + 99}` },
          });
          if (c?.status === 206 && !c.body.equals(p.bytes.subarray(start, start + 100))) {
            stats.integrityErrors++;
            stats.fail(`range of ${p.file}: wrong bytes`);
          }
        } else {
          const c = await timed(stats, 'package', pkgUrl);
          if (c?.status === 200) {
            if (sha256(c.body) !== p.sha256) {
              stats.integrityErrors++;
              stats.fail(`${p.file}: downloaded bytes differ from the published ones`);
            }
            have.set(p.file, c.headers.get('etag') ?? '');
          } else if (c && c.status === 404 && !busy.has(p.file) && live.has(p.file)) {
            stats.fail(`${p.file}: 404 while published`);
          }
        }
      }
    }
  };

  // Publishers: publish from the pool what is not live; deleters: take live packages away.
  const publisher = async () => {
    while (running()) {
      const p = pick(pool.filter((x) => !live.has(x.file) && !busy.has(x.file)));
      if (!p) {
        await sleep(50);
        continue;
      }
      busy.add(p.file);
      const started = performance.now();
      try {
        const res = await fetch(`${server.url}/api/v1/repos/${REPO}/musl/packages`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/octet-stream' },
          body: new Uint8Array(p.bytes),
        });
        const body = await res.text();
        stats.record('publish', performance.now() - started, res.status);
        if (res.status === 201 || res.status === 200) {
          live.set(p.file, p);
          deleted.delete(p.file);
        } else stats.fail(`publish ${p.file}: ${res.status} ${body.slice(0, 200)}`);
      } catch (err) {
        stats.networkErrors++;
        stats.fail(`publish ${p.file}: ${(err as Error).message}`);
      } finally {
        busy.delete(p.file);
      }
    }
  };
  const deleter = async () => {
    while (running()) {
      // Keep about half the pool live.
      if (live.size < poolSize / 2) {
        await sleep(100);
        continue;
      }
      const p = pick([...live.values()].filter((x) => !busy.has(x.file)));
      if (!p) {
        await sleep(50);
        continue;
      }
      busy.add(p.file);
      live.delete(p.file);
      const r = await timed(
        stats,
        'delete',
        `${server.url}/api/v1/repos/${REPO}/musl/${p.arch}/${p.name}/1.0.0-r0`,
        { method: 'DELETE', headers: auth },
      );
      if (r && r.status >= 200 && r.status < 300) deleted.add(p.file);
      else {
        live.set(p.file, p);
        if (r) stats.fail(`delete ${p.file}: ${r.status} ${r.body.toString().slice(0, 200)}`);
      }
      busy.delete(p.file);
      await sleep(20);
    }
  };

  // Auditors: SBOMs in both formats, component searches, package metadata.
  const auditor = async () => {
    while (running()) {
      const p = pick([...live.values()]);
      if (!p) {
        await sleep(50);
        continue;
      }
      const arch = p.arch === 'noarch' ? 'x86_64' : p.arch;
      const roll = Math.random();
      if (roll < 0.35)
        await timed(stats, 'sbom-spdx', `${server.url}/${REPO}/musl/${arch}/${p.file}.spdx.json`);
      else if (roll < 0.6)
        await timed(stats, 'sbom-cdx', `${server.url}/${REPO}/musl/${arch}/${p.file}.cdx.json`);
      else if (roll < 0.85)
        await timed(stats, 'components', `${server.url}/api/v1/components?name=${p.name}`);
      else
        await timed(
          stats,
          'package-api',
          `${server.url}/api/v1/packages/${REPO}/musl/${p.arch}/${p.name}/1.0.0-r0`,
        );
      if (Math.random() < 0.05) await timed(stats, 'healthz', `${server.url}/healthz`);
    }
  };

  await Promise.all([
    ...Array.from({ length: clients }, apkClient),
    ...Array.from({ length: publishers }, publisher),
    deleter(),
    auditor(),
    auditor(),
  ]);
  const elapsedS = (performance.now() - started) / 1000;
  clearInterval(sampler);
  clearInterval(progress);
  log(`soak: load done after ${elapsedS.toFixed(0)} s; checking invariants`);

  // Invariants, against the quiet server.
  const invariants: Array<{ name: string; ok: boolean; detail?: string }> = [];
  const check = (name: string, ok: boolean, detail?: string) => {
    invariants.push({ name, ok, detail });
    log(`soak: ${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
  };
  const keys = (await (await fetch(`${server.url}/keys`)).json()) as { keys: string[] };
  const pems: Record<string, string> = {};
  for (const k of keys.keys) pems[k] = await (await fetch(`${server.url}/keys/${k}`)).text();
  let listedTotal = 0;
  for (const arch of ARCHES) {
    const res = await fetch(`${server.url}/${REPO}/musl/${arch}/APKINDEX.tar.gz`);
    const file = join(work, `APKINDEX-${arch}.tar.gz`);
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
    const verified = opensslVerifyIndex(file, pems, work);
    check(`${arch}: index verifies with openssl`, verified.length > 0, verified.join(', '));
    const records = indexSizesWithTar(file);
    listedTotal += records.size;
    const api: Array<{ filename: string; size: number; sha256: string; arch: string }> = [];
    for (let after = 0; ; ) {
      const page = (await (
        await fetch(`${server.url}/api/v1/repos/${REPO}/musl/${arch}/packages?limit=1000&after=${after}`)
      ).json()) as {
        packages: Array<{ filename: string; size: number; sha256: string; arch: string }>;
        next: number | null;
      };
      api.push(...page.packages);
      if (page.next === null) break;
      after = page.next;
    }
    const same = api.length === records.size && api.every((p) => records.get(p.filename) === p.size);
    check(
      `${arch}: index lists exactly the database's packages, with their S:`,
      same,
      `${records.size} listed, ${api.length} in the database`,
    );
    const expected = [...live.values()].filter((p) => p.arch === arch || p.arch === 'noarch');
    const missing = expected.filter((p) => !records.has(p.file)).map((p) => p.file);
    check(
      `${arch}: every acknowledged, undeleted publish is listed`,
      missing.length === 0,
      missing.slice(0, 5).join(' '),
    );
    const ghosts = [...deleted].filter((f) => records.has(f) && !live.has(f));
    check(`${arch}: no deleted package is listed`, ghosts.length === 0, ghosts.slice(0, 5).join(' '));
    let bad = 0;
    for (const p of api) {
      const got = await fetch(`${server.url}/${REPO}/musl/${arch}/${p.filename}`);
      const body = Buffer.from(await got.arrayBuffer());
      if (got.status !== 200 || body.length !== p.size || sha256(body) !== p.sha256) bad++;
    }
    check(
      `${arch}: every listed package downloads with its recorded size and SHA-256`,
      bad === 0,
      `${bad} of ${api.length} differ`,
    );
  }
  const finalRss = rssOf(pid);
  server.child.kill('SIGTERM');
  const exitCode = await new Promise<number | null>((r) => server.child.on('exit', (code) => r(code)));
  check('reef stops cleanly on SIGTERM', exitCode === 0, `exit ${exitCode}`);
  const report = await fsck(dataDir);
  check(
    'fsck: no damage',
    report.problems.length === 0,
    report.problems
      .slice(0, 5)
      .map((p) => `${p.code} ${p.subject}`)
      .join('; '),
  );
  check(
    'fsck: no garbage',
    report.garbage.length === 0,
    report.garbage
      .slice(0, 5)
      .map((g) => `${g.code} ${g.path}`)
      .join('; '),
  );
  check('no 5xx', stats.errors5xx === 0, `${stats.errors5xx}`);
  check('no network errors', stats.networkErrors === 0, `${stats.networkErrors}`);
  check('no wrong bytes served', stats.integrityErrors === 0, `${stats.integrityErrors}`);
  check('tmp/ is empty', (await readdir(join(dataDir, 'tmp'))).length === 0);

  // The figures.
  const totalRequests = [...stats.latencies.values()].reduce((n, l) => n + l.length, 0);
  const metrics: Metric[] = [
    { name: 'duration', value: round(elapsedS, 1), unit: 's' },
    { name: 'requests', value: totalRequests, unit: 'req' },
    { name: 'throughput', value: round(totalRequests / elapsedS, 1), unit: 'req/s' },
    { name: '5xx', value: stats.errors5xx, unit: 'responses', goal: '0', ok: stats.errors5xx === 0 },
    {
      name: 'network errors',
      value: stats.networkErrors,
      unit: 'requests',
      goal: '0',
      ok: stats.networkErrors === 0,
    },
    {
      name: 'wrong bytes served',
      value: stats.integrityErrors,
      unit: 'responses',
      goal: '0',
      ok: stats.integrityErrors === 0,
    },
  ];
  const latency: Record<string, unknown> = {};
  for (const [kind, l] of [...stats.latencies].sort(([a], [b]) => a.localeCompare(b))) {
    latency[kind] = {
      count: l.length,
      perSecond: round(l.length / elapsedS, 1),
      p50: round(percentile(l, 50), 1),
      p99: round(percentile(l, 99), 1),
      max: round(
        l.reduce((a, b) => Math.max(a, b), 0),
        1,
      ),
    };
    metrics.push({ name: `${kind} p50`, value: round(percentile(l, 50), 1), unit: 'ms' });
    metrics.push({ name: `${kind} p99`, value: round(percentile(l, 99), 1), unit: 'ms' });
    metrics.push({ name: `${kind} rate`, value: round(l.length / elapsedS, 1), unit: 'req/s' });
  }
  const rssMiB = rss.map((r) => r.bytes / 2 ** 20);
  const firstMinute = rss.filter((r) => r.s <= 60).map((r) => r.bytes / 2 ** 20);
  const lastMinute = rss.filter((r) => r.s >= elapsedS - 60).map((r) => r.bytes / 2 ** 20);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  metrics.push(
    {
      name: 'RSS max',
      value: round(
        rssMiB.reduce((a, b) => Math.max(a, b), 0),
        1,
      ),
      unit: 'MiB',
    },
    { name: 'RSS first minute (mean)', value: round(avg(firstMinute), 1), unit: 'MiB' },
    { name: 'RSS last minute (mean)', value: round(avg(lastMinute), 1), unit: 'MiB' },
    { name: 'RSS at end', value: finalRss === undefined ? null : round(finalRss / 2 ** 20, 1), unit: 'MiB' },
    {
      name: 'JS heap used, first sample',
      value: round((rss[0]?.heapUsed ?? Number.NaN) / 2 ** 20, 1),
      unit: 'MiB',
    },
    {
      name: 'JS heap used, last sample',
      value: round((rss.at(-1)?.heapUsed ?? Number.NaN) / 2 ** 20, 1),
      unit: 'MiB',
    },
  );
  const allOk = invariants.every((i) => i.ok);
  metrics.push({
    name: 'invariants',
    value: invariants.filter((i) => i.ok).length,
    unit: `of ${invariants.length}`,
    goal: 'all',
    ok: allOk,
  });
  const result: BenchResult = {
    name: 'soak',
    metrics,
    details: {
      settings: { durationMs, clients, publishers, deleters: 1, auditors: 2, pool: poolSize },
      environment: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        memoryBytes: totalmem(),
        node: process.version,
      },
      latency,
      statuses: Object.fromEntries([...stats.statuses].sort()),
      rssSamples: rss,
      invariants,
      fsck: {
        checked: report.checked,
        problems: report.problems,
        garbage: report.garbage,
        durationMs: report.durationMs,
      },
      livePackagesAtEnd: live.size,
      listedAtEnd: listedTotal,
      failures: stats.failures,
      serverLog: serverLogs.slice(0, 50),
    },
    notes: [],
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const out = join(RESULTS_DIR, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `\n${metrics.map((m) => `${m.name.padEnd(28)} ${String(m.value).padStart(10)} ${m.unit}${m.ok === false ? '  FAIL' : ''}`).join('\n')}\n\nresults: ${out}\n`,
  );
  if (!values.keep) await tmp.cleanup();
  else log(`soak: data kept in ${dataDir}`);
  return allOk ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
