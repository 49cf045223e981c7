import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { createServices, type Services } from '../src/repo/services.ts';

/**
 * What every benchmark shares: result shapes, statistics, temp dirs and
 * child processes. Benchmarks return numbers; run.ts prints and stores them.
 */

export interface Metric {
  name: string;
  value: number | null;
  unit: string;
  /** Human-readable target, e.g. ">= 0.8". */
  goal?: string;
  /** Whether the goal is met; undefined when the metric has no goal. */
  ok?: boolean;
}

export interface BenchResult {
  name: string;
  metrics: Metric[];
  /** Raw samples and settings, kept in the JSON only. */
  details: Record<string, unknown>;
  /** Why part of the benchmark did not run (e.g. nginx could not be installed). */
  notes: string[];
}

export const MiB = 2 ** 20;

/** The repository this benchmark runs from. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The tree of a commit exported to `dir` (git archive), sharing this
 * checkout's node_modules, and built: a baseline to run beside the current
 * code in the same benchmark run.
 */
export async function exportCheckout(ref: string, dir: string): Promise<{ root: string; commit: string }> {
  const commit = checkCommand(
    'git rev-parse',
    await runCommand('git', ['rev-parse', ref], { cwd: ROOT }),
  ).stdout.trim();
  await mkdir(dir, { recursive: true });
  checkCommand(
    'git archive',
    await runCommand('bash', ['-c', `git archive ${commit} | tar -x -C "${dir}"`], { cwd: ROOT }),
  );
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  checkCommand('npm run build', await runCommand('npm', ['run', 'build'], { cwd: dir }));
  return { root: dir, commit };
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile: with 20 samples, p99 is the slowest one. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A fresh directory under os.tmpdir(); `cleanup` removes it and everything in it. */
export async function makeTempDir(label: string): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `reef-bench-${label}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export function runCommand(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: performance.now() - started,
      });
    });
  });
}

/** Throws with the command's stderr when it did not exit 0. */
export function checkCommand(what: string, r: CommandResult): CommandResult {
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().slice(-2000)}`);
  }
  return r;
}

export async function commandExists(name: string): Promise<boolean> {
  const r = await runCommand('bash', ['-c', `command -v ${name}`]);
  return r.code === 0;
}

/** A TCP port that was free a moment ago (the usual small race is acceptable for a benchmark). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export const BENCH_TOKEN = 'bench-token-0123456789';

/**
 * reef's services on a data folder, configured as `npm start` would be
 * (default 4096-bit signing key), quiet and with a known admin token;
 * `env` adds settings (another database or blob store).
 */
export async function startBenchServices(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<{ services: Services; logger: Logger }> {
  const config = loadConfig({
    REEF_DATA_DIR: dataDir,
    REEF_ADMIN_TOKEN: BENCH_TOKEN,
    REEF_LOG_LEVEL: 'warn',
    ...env,
  });
  const logger = createLogger(config.logLevel);
  return { services: await createServices(config, logger), logger };
}

/** The node flags `npm start` passes (`node <flags> dist/cli/main.mjs serve`), so the server runs as it does. */
export function startNodeFlags(root = ROOT): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const match = /\bnode((?:\s+--\S+)*)\s+dist\/cli\/main\.mjs\b/.exec(String(pkg.scripts?.start ?? ''));
  if (!match) throw new Error("package.json's start script no longer runs node dist/cli/main.mjs");
  return match[1]!.split(/\s+/).filter(Boolean);
}

/**
 * reef as `npm start` runs it: the bundle built now, on plain node with the
 * start script's flags, on a free port, with `env` over the benchmark's own
 * settings. Resolves once /readyz answers (a start may build indexes first).
 * `root` runs another checkout (a baseline exported by exportCheckout), and
 * `build: false` reuses the bundle it has.
 */
export async function startBundledServer(
  env: Record<string, string>,
  readyTimeoutMs: number,
  options: { root?: string; build?: boolean } = {},
): Promise<{ child: ChildProcess; base: string; nodeFlags: string[] }> {
  const root = options.root ?? ROOT;
  if (options.build !== false) {
    checkCommand('npm run build', await runCommand('npm', ['run', 'build'], { cwd: root }));
  }
  const port = await freePort();
  const nodeFlags = startNodeFlags(root);
  const child = spawn(process.execPath, [...nodeFlags, join(root, 'dist', 'cli', 'main.mjs'), 'serve'], {
    env: {
      ...process.env,
      REEF_PORT: String(port),
      REEF_ADMIN_TOKEN: BENCH_TOKEN,
      REEF_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + readyTimeoutMs;
  for (;;) {
    if ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok) break;
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`${base}/readyz not ready after ${readyTimeoutMs} ms`);
    }
    await sleep(200);
  }
  return { child, base, nodeFlags };
}

/** VmRSS and VmHWM (peak) of a process, MiB, from /proc. */
export function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}
