import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readIndex } from '../../src/apk/index-reader.ts';
import { loadPublicKey } from '../../src/apk/signature.ts';
import { loadConfig } from '../../src/config.ts';
import { fsck } from '../../src/repo/fsck.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { type ChildServer, spawnServer } from '../helpers/child-server.ts';
import { indexSizesWithTar } from '../helpers/index-text.ts';
import { prng } from '../helpers/prng.ts';
import { backendEnv, opensslVerifyIndex, publish, removeDir } from '../helpers/server.ts';

/**
 * Design invariant 7, twenty times over: a burst of publishes, the server
 * SIGKILLed at a random moment, a restart, and then every acknowledged
 * package is listed and downloadable byte for byte, every index verifies
 * with openssl and lists exactly what the database holds, no temp file is
 * left. The seed is printed; CRASH_SEED=<n> replays a run.
 */

/** CRASH_ROUNDS=<n> runs fewer (the scale-out pass, where each restart costs more). */
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 20);
const PER_ROUND = 6;
const ARCHES = ['x86_64', 'aarch64'];

function countBy(codes: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of codes) counts[c] = (counts[c] ?? 0) + 1;
  return counts;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Pkg {
  file: string;
  arch: string;
  bytes: Buffer;
}

/** Files that are temp files by name, anywhere in the data folder, and everything under tmp/. */
function tempFiles(dataDir: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dataDir, { recursive: true, withFileTypes: true })) {
    const path = join(e.parentPath, e.name);
    if (!e.isFile()) continue;
    if (path.startsWith(join(dataDir, 'tmp')) || e.name.endsWith('.tmp')) found.push(path);
  }
  return found;
}

async function checkServer(
  server: ChildServer,
  dataDir: string,
  work: string,
  acked: Map<string, Pkg>,
  download: Iterable<Pkg>,
  context: string,
  /** openssl and tar as the oracles (slower); otherwise reef's own index reader verifies. */
  independent: boolean,
): Promise<void> {
  // Indexes are blobs, written through the upload spool that every start empties: no temp file at all.
  assert.deepEqual(tempFiles(dataDir), [], `${context}: no temp file survives a restart`);
  const keys = (await (await fetch(`${server.url}/keys`)).json()) as { keys: string[] };
  const pems: Record<string, string> = {};
  for (const k of keys.keys) pems[k] = await (await fetch(`${server.url}/keys/${k}`)).text();
  for (const arch of ARCHES) {
    const res = await fetch(`${server.url}/crash/musl/${arch}/APKINDEX.tar.gz`);
    // Nothing acknowledged: no index (404), or not even the repository (401, as a private one answers).
    if (acked.size === 0 && (res.status === 404 || res.status === 401)) continue;
    assert.equal(res.status, 200, `${context}: ${arch} index`);
    const bytes = Buffer.from(await res.arrayBuffer());
    let records: Map<string, number>;
    if (independent) {
      const file = join(work, `APKINDEX-${arch}.tar.gz`);
      writeFileSync(file, bytes);
      assert.ok(
        opensslVerifyIndex(file, pems, work).length > 0,
        `${context}: ${arch} index verifies with openssl`,
      );
      records = indexSizesWithTar(file);
    } else {
      const index = await readIndex(chunked(bytes), {
        keys: Object.entries(pems).map(([name, pem]) => loadPublicKey(name, pem)),
        requireValidSignature: true,
      });
      records = new Map(index.records.map((r) => [`${r.name}-${r.version}.apk`, r.size]));
    }
    for (const [name, pkg] of acked) {
      if (pkg.arch !== arch && pkg.arch !== 'noarch') continue;
      assert.equal(
        records.get(name),
        pkg.bytes.length,
        `${context}: ${name} acknowledged, listed with its size`,
      );
    }
    // The index lists exactly the database's published packages.
    const api = (await (
      await fetch(`${server.url}/api/v1/repos/crash/musl/${arch}/packages?limit=1000`)
    ).json()) as { packages: Array<{ filename: string }> };
    assert.deepEqual([...records.keys()].sort(), api.packages.map((p) => p.filename).sort(), context);
  }
  for (const pkg of download) {
    const arch = pkg.arch === 'noarch' ? 'x86_64' : pkg.arch;
    const res = await fetch(`${server.url}/crash/musl/${arch}/${pkg.file}`);
    assert.equal(res.status, 200, `${context}: ${pkg.file}`);
    assert.equal(
      sha256(Buffer.from(await res.arrayBuffer())),
      sha256(pkg.bytes),
      `${context}: ${pkg.file} bytes`,
    );
  }
}

test(`crash loop: ${ROUNDS} SIGKILLs during publish bursts lose nothing acknowledged`, {
  timeout: 150_000,
}, async () => {
  const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = prng(seed);
  const context = (round: number) => `seed ${seed}, round ${round}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-crashloop-'));
  const work = mkdtempSync(join(tmpdir(), 'reef-crashloop-work-'));
  const servers: ChildServer[] = [];
  try {
    const rounds: Pkg[][] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const round: Pkg[] = [];
      for (let i = 0; i < PER_ROUND; i++) {
        const arch = ['x86_64', 'aarch64', 'noarch'][i % 3]!;
        const name = `cl${r}p${i}`;
        // Now and then a package over the 1 MiB the server caches, streamed from disk.
        const content = i === 0 && r % 5 === 0 ? randomBytes(1_200_000) : `${name} `.repeat(2000 + i);
        const bytes = await buildApk({ name, arch, files: [{ name: `usr/share/${name}`, content }] });
        round.push({ file: `${name}-1.0.0-r0.apk`, arch, bytes });
      }
      rounds.push(round);
    }
    const acked = new Map<string, Pkg>();
    let midBurst = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      const server = await spawnServer(dataDir, { bundled: true });
      servers.push(server);
      const t1 = performance.now();
      const fresh = [...acked.values()].filter((p) => rounds[r - 1]?.includes(p));
      await checkServer(server, dataDir, work, acked, fresh, context(r), false);
      const t2 = performance.now();
      // The burst: this round's packages and one already acknowledged (idempotent), on 3 connections.
      const queue = [...rounds[r]!];
      const again = [...acked.values()][Math.floor(random() * acked.size)];
      if (again) queue.splice(Math.floor(random() * queue.length), 0, again);
      // A random moment: after a random number of this round's acknowledgements, plus a random few ms.
      const killAfter = Math.floor(random() * queue.length);
      const jitter = random() * 60;
      let killed = false;
      let ackedInRound = 0;
      let inFlight = 0;
      const kill = () => {
        if (killed) return;
        killed = true;
        setTimeout(() => {
          if (queue.length > 0 || inFlight > 0) midBurst++;
          server.child.kill('SIGKILL');
        }, jitter);
      };
      if (killAfter === 0) kill();
      const worker = async () => {
        for (let pkg = queue.shift(); pkg; pkg = queue.shift()) {
          inFlight++;
          try {
            const res = await publish(server, 'crash', 'musl', pkg.bytes);
            if (res.status === 201 || res.status === 200) {
              acked.set(pkg.file, pkg);
              if (++ackedInRound >= killAfter) kill();
            } else
              assert.fail(`${context(r)}: ${pkg.file} answered ${res.status} ${JSON.stringify(res.json)}`);
          } catch (err) {
            if ((err as Error).name === 'AssertionError') throw err;
            // The connection died with the server: not acknowledged.
          } finally {
            inFlight--;
          }
        }
      };
      await Promise.all([worker(), worker(), worker()]);
      // A burst that finished before the kill still ends in one.
      if (!killed) server.child.kill('SIGKILL');
      const { signal } = await server.exited;
      assert.equal(signal, 'SIGKILL', context(r));
      if (process.env.CRASH_TIMES)
        console.log(
          'round',
          r,
          'spawn',
          Math.round(t1 - t0),
          'check',
          Math.round(t2 - t1),
          'burst',
          Math.round(performance.now() - t2),
          'killAfter',
          killAfter,
          'acked',
          ackedInRound,
        );
    }
    assert.ok(midBurst >= ROUNDS / 2, `seed ${seed}: only ${midBurst} kills landed mid-burst`);
    assert.ok(acked.size > ROUNDS, `seed ${seed}: only ${acked.size} publishes were acknowledged`);

    const last = await spawnServer(dataDir, { bundled: true });
    servers.push(last);
    try {
      await checkServer(
        last,
        dataDir,
        work,
        acked,
        acked.values(),
        `seed ${seed}, after the last restart`,
        true,
      );
    } finally {
      await last.stop();
    }
    // Every blob hashes to its address, every index matches the database (C: and S: included).
    // On the engines the servers ran on (the object store's blobs in the second pass). fsck reads
    // SQLite only so far: on PostgreSQL the servers' own checks above are the oracle.
    const { s3, databaseUrl } = loadConfig({ REEF_DATA_DIR: dataDir, ...(await backendEnv(dataDir)) });
    if (databaseUrl !== undefined) {
      process.stdout.write(
        `# crash loop seed ${seed}: ${acked.size} acknowledged in ${ROUNDS} rounds, ${midBurst} killed mid-burst; fsck skipped (PostgreSQL)\n`,
      );
      return;
    }
    const report = await fsck(dataDir, { s3 });
    assert.deepEqual(report.problems, [], `seed ${seed}`);
    assert.deepEqual(
      report.garbage.filter((g) => g.code === 'TEMP_FILE'),
      [],
      `seed ${seed}`,
    );
    process.stdout.write(
      `# crash loop seed ${seed}: ${acked.size} acknowledged in ${ROUNDS} rounds, ${midBurst} killed mid-burst; garbage left by the kills: ${JSON.stringify(countBy(report.garbage.map((g) => g.code)))}\n`,
    );
  } finally {
    // A failed assertion must not leave a server behind (the runner would wait for it).
    for (const s of servers) await s.stop('SIGKILL');
    removeDir(dataDir);
    removeDir(work);
  }
});
