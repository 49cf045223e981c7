import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import { buildApk } from '../test/helpers/apk-builder.ts';
import {
  BENCH_TOKEN,
  type BenchResult,
  checkCommand,
  commandExists,
  freePort,
  log,
  type Metric,
  makeTempDir,
  median,
  round,
  runCommand,
  sleep,
  startBenchServices,
} from './support.ts';

/**
 * Downloads per second of one small package: reef's GET
 * /<repo>/<libc>/<arch>/<file>.apk against nginx serving the same bytes from
 * disk, with identical autocannon settings, alternated in one run.
 */

const AUTOCANNON_VERSION = '8';
const CONNECTIONS = 50;
const DURATION_S = 10;
const WARMUP_S = 3;
const ROUNDS = 2;
/** Shared across runs so the npm install happens once per machine, not once per run. */
const AUTOCANNON_DIR = join(tmpdir(), `reef-bench-autocannon-${AUTOCANNON_VERSION}`);
const FILE = 'bench-small-1.0.0-r0.apk';

export interface Target {
  name: string;
  url: string;
  /** CPU time the server process has used so far, in ms. */
  cpuMs(): number;
}

export interface CannonRun {
  requestsPerSec: number;
  /** CPU the server used during the run, as a percentage of one core. */
  serverCpuPercent: number;
  requestsPerCpuSecond: number;
  latencyP50: number;
  latencyP99: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export async function benchDownload(): Promise<BenchResult> {
  const notes: string[] = [];
  const cannon = await installAutocannon();
  const temp = await makeTempDir('download');
  const { services, logger } = await startBenchServices(join(temp.path, 'reef'));
  let app: FastifyInstance | undefined;
  let nginx: Nginx | undefined;
  try {
    const apk = await smallPackage();
    app = await buildApp(services, logger);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const reefBase = `http://127.0.0.1:${address.port}`;
    const published = await fetch(`${reefBase}/api/v1/repos/bench/glibc/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(apk),
    });
    if (published.status !== 201)
      throw new Error(`publish returned ${published.status}: ${await published.text()}`);
    const reefUrl = `${reefBase}/bench/glibc/x86_64/${FILE}`;
    await expectSameBytes(reefUrl, apk);

    const wwwDir = join(temp.path, 'www');
    await mkdir(join(wwwDir, 'bench/glibc/x86_64'), { recursive: true });
    await writeFile(join(wwwDir, 'bench/glibc/x86_64', FILE), apk);
    nginx = await startNginx(temp.path, wwwDir, notes);
    const nginxUrl = nginx ? `http://127.0.0.1:${nginx.port}/bench/glibc/x86_64/${FILE}` : undefined;
    if (nginxUrl) await expectSameBytes(nginxUrl, apk);

    // Server CPU is measured too: on two cores autocannon itself saturates one, so the
    // faster server may be client-bound, and requests per CPU-second still compare them.
    const targets: Target[] = [{ name: 'reef', url: reefUrl, cpuMs: ownCpuMs }];
    if (nginx && nginxUrl) {
      const pid = nginx.pid;
      targets.push({ name: 'nginx', url: nginxUrl, cpuMs: () => processCpuMs(pid) });
    }
    for (const t of targets) {
      log(`download: warming up ${t.name} for ${WARMUP_S} s`);
      await runCannon(cannon, t, WARMUP_S);
    }
    // Reference: the same server answering a route that touches neither SQLite nor the disk.
    const healthz = await runCannon(
      cannon,
      { name: 'reef', url: `${reefBase}/healthz`, cpuMs: ownCpuMs },
      DURATION_S,
    );
    log(`download: reef /healthz ${healthz.requestsPerSec.toFixed(0)} req/s (reference)`);
    const runs: Record<string, CannonRun[]> = { reef: [], nginx: [] };
    for (let r = 1; r <= ROUNDS; r++) {
      for (const t of targets) {
        const run = await runCannon(cannon, t, DURATION_S);
        if (run.non2xx > 0 || run.errors > 0) {
          throw new Error(`${t.name}: ${run.non2xx} non-2xx responses, ${run.errors} errors`);
        }
        runs[t.name]!.push(run);
        log(
          `download: round ${r}: ${t.name} ${run.requestsPerSec.toFixed(0)} req/s, ` +
            `p99 ${run.latencyP99} ms, server CPU ${run.serverCpuPercent.toFixed(0)}%`,
        );
      }
    }

    const summary = (name: string) => {
      const list = runs[name]!;
      return {
        rps: median(list.map((r) => r.requestsPerSec)),
        p99: median(list.map((r) => r.latencyP99)),
        cpu: median(list.map((r) => r.serverCpuPercent)),
        perCpuSecond: median(list.map((r) => r.requestsPerCpuSecond)),
      };
    };
    const reef = summary('reef');
    const metrics: Metric[] = [
      { name: 'package size', value: apk.length, unit: 'bytes' },
      { name: 'reef', value: round(reef.rps, 0), unit: 'req/s' },
      { name: 'reef latency p99', value: reef.p99, unit: 'ms' },
      { name: 'reef server CPU', value: round(reef.cpu, 0), unit: '% of a core' },
      { name: 'reef requests per CPU-second', value: round(reef.perCpuSecond, 0), unit: 'req' },
      { name: 'reef GET /healthz (reference)', value: round(healthz.requestsPerSec, 0), unit: 'req/s' },
    ];
    if (nginx) {
      const ng = summary('nginx');
      metrics.push(
        { name: 'nginx', value: round(ng.rps, 0), unit: 'req/s' },
        { name: 'nginx latency p99', value: ng.p99, unit: 'ms' },
        { name: 'nginx server CPU', value: round(ng.cpu, 0), unit: '% of a core' },
        { name: 'nginx requests per CPU-second', value: round(ng.perCpuSecond, 0), unit: 'req' },
        { name: 'ratio reef / nginx (req/s)', value: round(reef.rps / ng.rps, 3), unit: 'x' },
        {
          name: 'ratio reef / nginx (req per CPU-s)',
          value: round(reef.perCpuSecond / ng.perCpuSecond, 3),
          unit: 'x',
        },
      );
      if (ng.cpu < 90) {
        notes.push(
          `nginx used ${ng.cpu.toFixed(0)}% of its core: autocannon was the bottleneck, so nginx req/s is a lower bound`,
        );
      }
    } else {
      metrics.push({ name: 'nginx', value: null, unit: 'req/s' });
    }
    return {
      name: 'download',
      metrics,
      details: {
        autocannon: { connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S, rounds: ROUNDS },
        nginx: nginx ? { version: nginx.version } : undefined,
        runs,
        healthz,
      },
      notes,
    };
  } finally {
    nginx?.stop();
    await app?.close();
    await services.close();
    await temp.cleanup();
  }
}

/** bench-small-1.0.0-r0 (FILE): a few KiB, as small real packages are. */
export function smallPackage(): Promise<Buffer> {
  return buildApk({
    name: 'bench-small',
    version: '1.0.0-r0',
    depends: ['so:libc.so.6'],
    files: [
      { name: 'usr/bin/', type: 'directory' },
      // Incompressible, so the package stays that size.
      { name: 'usr/bin/bench-small', content: randomBytes(6000) },
      { name: 'usr/share/doc/bench-small/README', content: 'a small package\n' },
    ],
  });
}

async function expectSameBytes(url: string, expected: Buffer): Promise<void> {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200 || !body.equals(expected)) {
    throw new Error(`GET ${url} returned ${res.status} with ${body.length} bytes, not the package`);
  }
}

// ---------------------------------------------------------------- autocannon

/** autocannon goes into a temp prefix: the project's package.json stays as it is. */
export async function installAutocannon(): Promise<string> {
  const script = join(AUTOCANNON_DIR, 'node_modules/autocannon/autocannon.js');
  if (!existsSync(script)) {
    log(`download: installing autocannon@${AUTOCANNON_VERSION} into ${AUTOCANNON_DIR}`);
    await mkdir(AUTOCANNON_DIR, { recursive: true });
    checkCommand(
      'npm install autocannon',
      await runCommand('npm', [
        'install',
        '--prefix',
        AUTOCANNON_DIR,
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `autocannon@${AUTOCANNON_VERSION}`,
      ]),
    );
  }
  return script;
}

export async function runCannon(script: string, target: Target, seconds: number): Promise<CannonRun> {
  // autocannon's start-up and shutdown are not load; the difference is a few percent at most.
  const cpuBefore = target.cpuMs();
  const r = checkCommand(
    'autocannon',
    await runCommand(process.execPath, [
      script,
      '-c',
      String(CONNECTIONS),
      '-d',
      String(seconds),
      '-j',
      target.url,
    ]),
  );
  const cpuMs = target.cpuMs() - cpuBefore;
  const out = JSON.parse(r.stdout) as {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    timeouts: number;
  };
  return {
    requestsPerSec: out.requests.average,
    serverCpuPercent: (100 * cpuMs) / (seconds * 1000),
    requestsPerCpuSecond: out.requests.total / (cpuMs / 1000),
    latencyP50: out.latency.p50,
    latencyP99: out.latency.p99,
    total: out.requests.total,
    non2xx: out.non2xx,
    errors: out.errors,
    timeouts: out.timeouts,
  };
}

/** CPU of this process: reef serves from it, autocannon runs in a child of its own. */
function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** utime + stime of another process, from /proc (clock ticks of 10 ms on Linux). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may itself contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

// ---------------------------------------------------------------- nginx

interface Nginx {
  port: number;
  pid: number;
  version: string;
  stop(): void;
}

/** Installs nginx when missing; undefined (with a note) when it cannot be had. */
async function findOrInstallNginx(notes: string[]): Promise<string | undefined> {
  const which = async () => {
    const r = await runCommand('bash', ['-c', 'command -v nginx || ls /usr/sbin/nginx 2>/dev/null']);
    return r.code === 0 ? r.stdout.trim().split('\n')[0] : undefined;
  };
  const found = await which();
  if (found) return found;
  if (!(await commandExists('apt-get'))) {
    notes.push('nginx skipped: not installed and apt-get is not available');
    return undefined;
  }
  log('download: nginx missing, installing it with apt-get (nginx-light, else nginx)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const hadPidFile = existsSync('/run/nginx.pid');
  await runCommand('apt-get', ['update', '-qq'], { env });
  let installed = await runCommand('apt-get', ['install', '-y', '-qq', 'nginx-light'], { env });
  if (installed.code !== 0)
    installed = await runCommand('apt-get', ['install', '-y', '-qq', 'nginx'], { env });
  const path = await which();
  if (!path) {
    notes.push(`nginx skipped: apt-get install failed: ${installed.stderr.trim().slice(-300)}`);
    return undefined;
  }
  // Where the package's own service got started by the install, stop it again: the benchmark runs its own.
  if (!hadPidFile && existsSync('/run/nginx.pid')) await runCommand(path, ['-s', 'quit']);
  return path;
}

async function startNginx(dir: string, wwwDir: string, notes: string[]): Promise<Nginx | undefined> {
  const binary = await findOrInstallNginx(notes);
  if (!binary) return undefined;
  const version = (await runCommand(binary, ['-v'])).stderr.trim();
  const prefix = join(dir, 'nginx');
  await mkdir(prefix, { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  # reef (Node) never closes a keep-alive connection after N requests; neither should nginx here.
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${wwwDir};
  }
}
`,
  );
  const child: ChildProcess = spawn(binary, ['-p', prefix, '-c', conf, '-e', `${prefix}/error.log`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  // Never leave nginx behind, not even when the benchmark throws or is interrupted.
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.once('exit', kill);
  const stop = () => {
    kill();
    process.off('exit', kill);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    const up = await fetch(`http://127.0.0.1:${port}/`).then(
      () => true,
      () => false,
    );
    if (up) return { port, pid: child.pid!, version, stop };
    await sleep(50);
  }
  stop();
  notes.push(`nginx skipped: it did not start: ${stderr.trim().slice(-300)}`);
  return undefined;
}
