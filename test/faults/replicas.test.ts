import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { buildApk } from '../helpers/apk-builder.ts';
import { type ChildServer, spawnServer } from '../helpers/child-server.ts';
import { indexSizesWithTar } from '../helpers/index-text.ts';
import { dropDatabase, freshDatabase, needsPg } from '../helpers/pg-engine.ts';
import { needsS3, s3Engine, s3ServerEnv } from '../helpers/s3-engine.ts';
import { opensslVerifyIndex, publish, removeDir, TEST_TOKEN } from '../helpers/server.ts';

/**
 * Three reef replicas on one PostgreSQL database and one bucket, as behind a
 * load balancer: publishes to all three at once into the same index, the
 * same name and version raced on two of them, deletes, and one replica
 * SIGKILLed in the middle of a burst. After every acknowledgement every
 * replica serves an index listing the package; at the end every index
 * verifies with openssl and lists exactly what was acknowledged and not
 * deleted, on each surviving replica.
 */

const ARCHES = ['x86_64', 'aarch64'];
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Pkg {
  name: string;
  file: string;
  arch: string;
  bytes: Buffer;
}

async function makePackage(name: string, arch: string, salt = ''): Promise<Pkg> {
  const bytes = await buildApk({
    name,
    arch,
    files: [{ name: `usr/share/${name}`, content: `${name} ${salt}`.repeat(200) }],
  });
  return { name, file: `${name}-1.0.0-r0.apk`, arch, bytes };
}

/** The package files `server`'s index of `arch` lists, after checking its signature with openssl. */
async function listed(server: ChildServer, arch: string, work: string): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/rep/musl/${arch}/APKINDEX.tar.gz`);
  if (res.status === 404) return new Map();
  assert.equal(res.status, 200, `${server.url} ${arch} index`);
  const file = join(work, `APKINDEX-${arch}-${randomBytes(4).toString('hex')}.tar.gz`);
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  const keys = (await (await fetch(`${server.url}/keys`)).json()) as { keys: string[] };
  const pems: Record<string, string> = {};
  for (const k of keys.keys) pems[k] = await (await fetch(`${server.url}/keys/${k}`)).text();
  assert.ok(opensslVerifyIndex(file, pems, work).length > 0, `${server.url} ${arch} index verifies`);
  return indexSizesWithTar(file);
}

/**
 * Waits until no index of the database is stale (changed since its last
 * build), reading the database itself; fails after `limitMs` naming them.
 */
async function untilNoStaleIndex(url: string, limitMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + limitMs;
    for (;;) {
      const { rows } = await client.query(
        'SELECT repo, libc, arch, generation, built_generation FROM indexes WHERE generation > built_generation',
      );
      if (rows.length === 0) return;
      if (Date.now() > deadline) assert.fail(`indexes still stale: ${JSON.stringify(rows)}`);
      await sleep(1000);
    }
  } finally {
    await client.end();
  }
}

async function remove(server: ChildServer, pkg: Pkg): Promise<number> {
  const res = await fetch(`${server.url}/api/v1/repos/rep/musl/${pkg.arch}/${pkg.name}/1.0.0-r0`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
  });
  await res.body?.cancel();
  return res.status;
}

test('three replicas on one database and bucket: every acknowledgement is served by all', {
  skip: needsPg.skip || needsS3.skip,
  timeout: 240_000,
}, async (t) => {
  const shared = {
    ...s3ServerEnv(s3Engine!),
    REEF_DATABASE_URL: await freshDatabase('reef-replicas'),
    REEF_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  };
  const work = mkdtempSync(join(tmpdir(), 'reef-replicas-work-'));
  const dirs = [0, 1, 2].map((i) => mkdtempSync(join(tmpdir(), `reef-replica${i}-`)));
  const replicas: ChildServer[] = [];
  try {
    // Started together: they agree on one signing key and apply the migrations once.
    replicas.push(
      ...(await Promise.all(dirs.map((dir) => spawnServer(dir, { bundled: true, env: shared })))),
    );
    const keySets = await Promise.all(
      replicas.map(async (r) => JSON.stringify(await (await fetch(`${r.url}/keys`)).json())),
    );
    assert.equal(new Set(keySets).size, 1, `one set of keys: ${keySets.join(' ')}`);

    // Concurrent publishes to all three, into the same indexes (noarch ones into both).
    const packages = await Promise.all(
      Array.from({ length: 24 }, (_, i) => makePackage(`rp${i}`, ['x86_64', 'aarch64', 'noarch'][i % 3]!)),
    );
    const acked = new Map<string, Pkg>();
    await Promise.all(
      packages.map(async (pkg, i) => {
        const res = await publish(replicas[i % 3]!, 'rep', 'musl', pkg.bytes);
        assert.equal(res.status, 201, `${pkg.file}: ${JSON.stringify(res.json)}`);
        acked.set(pkg.file, pkg);
        // Acknowledged by one: listed by every replica, now.
        for (const replica of replicas) {
          for (const arch of pkg.arch === 'noarch' ? ARCHES : [pkg.arch]) {
            const res = await fetch(`${replica.url}/rep/musl/${arch}/${pkg.file}`, { method: 'HEAD' });
            assert.equal(res.status, 200, `${pkg.file} on ${replica.url} right after its 201`);
          }
        }
      }),
    );
    for (const replica of replicas) {
      for (const arch of ARCHES) {
        const index = await listed(replica, arch, work);
        for (const pkg of acked.values()) {
          if (pkg.arch === arch || pkg.arch === 'noarch') assert.equal(index.get(pkg.file), pkg.bytes.length);
        }
      }
    }

    // One name and version on two replicas at the same moment: different bytes, decided once.
    const [left, right] = await Promise.all([
      makePackage('race', 'x86_64', 'a'),
      makePackage('race', 'x86_64', 'b'),
    ]);
    const raced = await Promise.all([
      publish(replicas[0]!, 'rep', 'musl', left.bytes),
      publish(replicas[1]!, 'rep', 'musl', right.bytes),
    ]);
    assert.deepEqual(raced.map((r) => r.status).sort(), [201, 409], JSON.stringify(raced.map((r) => r.json)));
    const winner = raced[0]!.status === 201 ? left : right;
    acked.set(winner.file, winner);
    // Identical bytes on two at once: one 201, one 200.
    const same = await makePackage('same', 'aarch64');
    const twice = await Promise.all([
      publish(replicas[1]!, 'rep', 'musl', same.bytes),
      publish(replicas[2]!, 'rep', 'musl', same.bytes),
    ]);
    assert.deepEqual(twice.map((r) => r.status).sort(), [200, 201]);
    acked.set(same.file, same);
    const served = await fetch(`${replicas[2]!.url}/rep/musl/x86_64/${winner.file}`);
    assert.equal(sha256(Buffer.from(await served.arrayBuffer())), sha256(winner.bytes));

    // Deletes through one replica; the others stop listing them.
    const deleted = [packages[0]!, packages[4]!, packages[8]!];
    for (const pkg of deleted) {
      assert.equal(await remove(replicas[1]!, pkg), 204, pkg.file);
      acked.delete(pkg.file);
    }

    // A burst through the third replica, SIGKILLed in the middle of it.
    const burst = await Promise.all(
      Array.from({ length: 12 }, (_, i) => makePackage(`kill${i}`, ['x86_64', 'noarch'][i % 2]!)),
    );
    let count = 0;
    const victim = replicas[2]!;
    await Promise.all(
      burst.map(async (pkg) => {
        try {
          const res = await publish(victim, 'rep', 'musl', pkg.bytes);
          if (res.status === 201) {
            acked.set(pkg.file, pkg);
            if (++count === 4) victim.child.kill('SIGKILL');
          }
        } catch {
          // The connection died with the replica: not acknowledged.
        }
      }),
    );
    await victim.exited;
    replicas.pop();
    assert.ok(count >= 4, `${count} acknowledged before the kill`);
    // The replica may have died with indexes changed and not built, nobody waiting for them: the
    // others build them unasked (each looks every 30-40 s for indexes stale for 10 s), no publish needed.
    await untilNoStaleIndex(shared.REEF_DATABASE_URL, 120_000);
    const unasked = replicas.filter((r) => r.output().includes('built indexes left stale')).length;
    t.diagnostic(`replicas that built an index left stale by the kill: ${unasked}`);

    // The others carry on: a publish on each, then every index is whole on both.
    for (const [i, replica] of replicas.entries()) {
      const pkg = await makePackage(`after${i}`, 'noarch');
      assert.equal((await publish(replica, 'rep', 'musl', pkg.bytes)).status, 201);
      acked.set(pkg.file, pkg);
    }
    for (const replica of replicas) {
      for (const arch of ARCHES) {
        const index = await listed(replica, arch, work);
        const expected = new Map(
          [...acked.values()]
            .filter((p) => p.arch === arch || p.arch === 'noarch')
            .map((p) => [p.file, p.bytes.length]),
        );
        // Listed: every acknowledged package, none deleted; packages of the burst that were
        // committed but not acknowledged when the replica died may be listed too.
        for (const [file, size] of expected)
          assert.equal(index.get(file), size, `${replica.url} ${arch} ${file}`);
        for (const file of index.keys()) {
          assert.ok(
            expected.has(file) || burst.some((p) => p.file === file),
            `${replica.url} ${arch} lists ${file}, never acknowledged`,
          );
          assert.ok(!deleted.some((p) => p.file === file), `${file} was deleted`);
        }
      }
    }
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    for (const dir of [...dirs, work]) removeDir(dir);
    await dropDatabase(shared.REEF_DATABASE_URL);
  }
});
