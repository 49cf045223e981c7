import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/log.ts';
import { createServices, type Services } from '../../src/repo/services.ts';
import { freshDatabase, needsPg } from './pg-engine.ts';
import { s3Engine, s3ServerEnv } from './s3-engine.ts';

export const TEST_TOKEN = 'reef-test-admin-token-0123456789';

export interface TestServer {
  url: string;
  dataDir: string;
  services: Services;
  app: FastifyInstance;
  /** Everything the server logged, one JSON line each. */
  logs: string[];
  close(): Promise<void>;
}

/**
 * A real reef on 127.0.0.1:0 with its own temp data folder. In the second
 * pass of `npm test` (test/run-scale-out-suites.ts) it runs on the test engines
 * instead (backendEnv).
 */
export async function startServer(
  env: Record<string, string> = {},
  dataDir = mkdtempSync(join(tmpdir(), 'reef-test-')),
): Promise<TestServer> {
  const config = loadConfig({
    REEF_DATA_DIR: dataDir,
    REEF_PORT: '0',
    REEF_KEY_BITS: '2048',
    REEF_ADMIN_TOKEN: TEST_TOKEN,
    REEF_LOG_LEVEL: 'info',
    ...(await backendEnv(dataDir, env)),
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const services = await createServices(config, log);
  const app = await buildApp(services, log);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url,
    dataDir,
    services,
    app,
    logs,
    async close() {
      await app.close();
      await services.close();
    },
  };
}

/** Makes `repo` private through the API, as its admin would. */
export async function makePrivate(server: { url: string }, repo: string): Promise<void> {
  const res = await fetch(`${server.url}/api/v1/repos/${repo}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ private: true }),
  });
  const body = await res.text();
  assert.equal(res.status, 200, body);
}

/** A new token with `scopes`, created through the API: its secret. */
export async function createToken(server: { url: string }, name: string, scopes: string[]): Promise<string> {
  const res = await fetch(`${server.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, scopes }),
  });
  const body = await res.text();
  assert.equal(res.status, 201, body);
  return (JSON.parse(body) as { token: string }).token;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function publish(
  server: { url: string },
  repo: string,
  libc: string,
  body: Buffer,
  token = TEST_TOKEN,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}/api/v1/repos/${repo}/${libc}/packages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: new Uint8Array(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** Publishes a multipart form: field `package`, and optionally `sbom` and `provenance`. */
export async function publishForm(
  server: { url: string },
  repo: string,
  libc: string,
  parts: Record<string, Buffer>,
  token = TEST_TOKEN,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const form = new FormData();
  for (const [name, bytes] of Object.entries(parts)) form.set(name, new Blob([new Uint8Array(bytes)]), name);
  const res = await fetch(`${server.url}/api/v1/repos/${repo}/${libc}/packages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** Every file under the data folder with its size and hash, plus the package rows: what "unchanged" means. */
export async function snapshotData(server: TestServer): Promise<string> {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (!name.startsWith('reef.db')) {
        files.push(
          `${path.slice(server.dataDir.length)} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`,
        );
      }
    }
  };
  walk(server.dataDir);
  const rows = await server.services.database.all('SELECT * FROM packages ORDER BY id');
  const indexes = await server.services.database.all('SELECT * FROM indexes ORDER BY repo, libc, arch');
  return JSON.stringify({ files, rows, indexes });
}

/**
 * The bytes an index signature covers, split off by Python's zlib (an
 * implementation independent of reef's): everything after the first gzip member.
 */
export function signedPartOf(indexFile: string): Buffer {
  return execFileSync('python3', [
    '-c',
    'import sys,zlib\nb=open(sys.argv[1],"rb").read()\nd=zlib.decompressobj(31)\nd.decompress(b)\nsys.stdout.buffer.write(d.unused_data)',
    indexFile,
  ]);
}

/**
 * Verifies each `.SIGN.*` entry of an index file with the openssl CLI, using
 * the key its name points at; returns the entries that verified.
 */
export function opensslVerifyIndex(
  indexFile: string,
  pems: Record<string, string>,
  workDir: string,
): string[] {
  const names = execFileSync('tar', ['-tzf', indexFile], { encoding: 'utf8' })
    .split('\n')
    .filter((n) => n.startsWith('.SIGN.'));
  const signed = join(workDir, 'signed.bin');
  writeFileSync(signed, signedPartOf(indexFile));
  const verified: string[] = [];
  for (const name of names) {
    const [, , alg, ...rest] = name.split('.');
    const pem = pems[rest.join('.')];
    if (!pem) continue;
    const pemFile = join(workDir, 'key.pem');
    writeFileSync(pemFile, pem);
    const digest = alg === 'RSA256' ? '-sha256' : alg === 'RSA512' ? '-sha512' : '-sha1';
    const sig = join(workDir, 'sig.bin');
    writeFileSync(sig, execFileSync('tar', ['-xzOf', indexFile, name]));
    const out = execFileSync('openssl', [
      'dgst',
      digest,
      '-verify',
      pemFile,
      '-signature',
      sig,
      signed,
    ]).toString();
    if (out.includes('Verified OK')) verified.push(name);
  }
  return verified;
}

/** What each data folder was given, so a restart on the same folder finds its database and bucket again. */
const backends = new Map<string, Record<string, string>>();

/**
 * The settings that put a server on the engines the test run asks for:
 * REEF_TEST_BLOB=s3, a bucket of its own on the test S3 server;
 * REEF_TEST_DATABASE=postgres, a database of its own on the test PostgreSQL
 * server, with a key encryption key. Both are kept per data folder (a
 * restart on it gets them again); settings a test gives itself win.
 */
export async function backendEnv(
  dataDir: string,
  given: Record<string, string | undefined> = {},
): Promise<Record<string, string>> {
  const known = backends.get(dataDir);
  if (known) return known;
  const env: Record<string, string> = {};
  if (process.env.REEF_TEST_BLOB === 's3' && given.REEF_BLOB_URL === undefined) {
    if (!s3Engine)
      throw new Error('REEF_TEST_BLOB=s3 needs the test S3 server (see test/helpers/s3-engine.ts)');
    Object.assign(env, s3ServerEnv(s3Engine));
  }
  if (process.env.REEF_TEST_DATABASE === 'postgres' && given.REEF_DATABASE_URL === undefined) {
    if (needsPg.skip) throw new Error(`REEF_TEST_DATABASE=postgres: ${needsPg.skip}`);
    env.REEF_DATABASE_URL = await freshDatabase('reef-server');
    env.REEF_KEY_ENCRYPTION_KEY = randomBytes(32).toString('hex');
  }
  backends.set(dataDir, env);
  return env;
}
