import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { buildApk } from '../helpers/apk-builder.ts';
import { type ChildServer, spawnServer } from '../helpers/child-server.ts';
import { dropDatabase, freshDatabase, needsPg, pgEngine } from '../helpers/pg-engine.ts';
import { publish, removeDir } from '../helpers/server.ts';

/**
 * A reef process whose PostgreSQL database stops taking its connections
 * (the database is closed to connections and its sessions are ended, as an
 * administrator or a failover does): publishes answer 503
 * STORAGE_UNAVAILABLE without leaking the database URL's password,
 * /readyz says not ready, the process stays up, and once the database takes
 * connections again it serves and publishes without a restart.
 */

/** Runs `sql` as the test server's administrator. */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgEngine!, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function readyz(server: ChildServer): Promise<number> {
  const res = await fetch(`${server.url}/readyz`);
  await res.body?.cancel();
  return res.status;
}

/** Polls until `check` holds or `ms` pass; the last value. */
async function until<T>(check: () => Promise<T>, holds: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let value = await check();
  while (!holds(value) && Date.now() < deadline) {
    await sleep(200);
    value = await check();
  }
  return value;
}

const pkg = (name: string) =>
  buildApk({ name, files: [{ name: `usr/share/${name}`, content: `${name}\n` }] });

test('the database going away: 503 STORAGE_UNAVAILABLE, not ready, back without a restart', {
  skip: needsPg.skip,
  timeout: 120_000,
}, async () => {
  const url = await freshDatabase('reef-down');
  const name = new URL(url).pathname.slice(1);
  // A password the server must never show (the test server trusts every login, so it is ignored there).
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const withPassword = new URL(url);
  withPassword.password = password;
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-db-down-'));
  let server: ChildServer | undefined;
  try {
    const live = await spawnServer(dataDir, {
      bundled: true,
      env: {
        REEF_DATABASE_URL: withPassword.href,
        REEF_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      },
    });
    server = live;
    const before = await publish(live, 'main', 'musl', await pkg('before'));
    assert.equal(before.status, 201, JSON.stringify(before.json));
    assert.equal(await readyz(live), 200);

    await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`);

    const during = await publish(live, 'main', 'musl', await pkg('during'));
    assert.equal(during.status, 503, JSON.stringify(during.json));
    assert.equal(during.json.code, 'STORAGE_UNAVAILABLE');
    assert.ok(!JSON.stringify(during.json).includes(password), 'the answer shows no password');
    assert.equal(await readyz(live), 503);
    // Idle pooled connections were ended under the process: it must still be running.
    await sleep(500);
    assert.equal(live.child.exitCode, null, live.output());
    assert.equal(live.child.signalCode, null);

    await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
    assert.equal(
      await until(
        () => readyz(live),
        (s) => s === 200,
        30_000,
      ),
      200,
    );
    const after = await publish(live, 'main', 'musl', await pkg('after'));
    assert.equal(after.status, 201, JSON.stringify(after.json));
    for (const file of ['before-1.0.0-r0.apk', 'after-1.0.0-r0.apk']) {
      const res = await fetch(`${live.url}/main/musl/x86_64/${file}`);
      await res.body?.cancel();
      assert.equal(res.status, 200, file);
    }
    const failed = await fetch(`${live.url}/main/musl/x86_64/during-1.0.0-r0.apk`);
    await failed.body?.cancel();
    assert.equal(failed.status, 404, 'the refused publish left nothing served');
    assert.ok(!live.output().includes(password), 'the logs show no password');
  } finally {
    await server?.stop('SIGKILL');
    await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await dropDatabase(url);
    removeDir(dataDir);
  }
});
