import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { backendEnv, TEST_TOKEN } from './server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ChildServer {
  child: ChildProcess;
  url: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves once the process is gone, with its exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Runs the server under a shell wrapper, e.g. `ulimit -f 64; exec "$@"`. */
  shellPrefix?: string;
  /**
   * Run the same sources bundled into one file (esbuild, dependencies left
   * external) instead of through tsx: starts in about half the time, which
   * matters to tests that restart the server many times.
   */
  bundled?: boolean;
}

let bundle: Promise<string> | undefined;

/**
 * src/cli/main.ts bundled once per test process into a temp folder laid out
 * like the project (x/y/main.mjs, with migrations/, package.json and
 * node_modules linked beside), so `../../migrations/` still resolves.
 */
export function bundledMain(): Promise<string> {
  bundle ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reef-bundle-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    for (const name of ['migrations', 'package.json', 'node_modules'])
      symlinkSync(join(ROOT, name), join(dir, name));
    mkdirSync(join(dir, 'x', 'y'), { recursive: true });
    const outfile = join(dir, 'x', 'y', 'main.mjs');
    // buildSync: no esbuild service process left to keep the test runner waiting.
    buildSync({
      entryPoints: [join(ROOT, 'src/cli/main.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      outfile,
      logLevel: 'warning',
    });
    return outfile;
  })();
  return bundle;
}

/** reef as a child process, as an operator runs it; resolves with its URL once it listens. */
export async function spawnServer(dataDir: string, options: SpawnOptions = {}): Promise<ChildServer> {
  const argv = options.bundled
    ? [process.execPath, await bundledMain(), 'serve']
    : [process.execPath, '--import', 'tsx', 'src/cli/main.ts', 'serve'];
  const env = {
    ...process.env,
    REEF_DATA_DIR: dataDir,
    REEF_PORT: '0',
    REEF_KEY_BITS: '2048',
    REEF_ADMIN_TOKEN: TEST_TOKEN,
    REEF_LOG_LEVEL: 'info',
    ...(await backendEnv(dataDir, options.env)),
    ...options.env,
  };
  const child = options.shellPrefix
    ? spawn('sh', ['-c', `${options.shellPrefix}; exec "$@"`, 'sh', ...argv], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1]!,
          output: () => out,
          exited,
          stop(signal = 'SIGTERM') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code ?? signal}: ${out}`));
    });
  });
}
