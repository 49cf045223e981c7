import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN } from '../helpers/server.ts';

/**
 * Prometheus' own linter is the oracle for the exposition reef serves:
 * names, suffixes, HELP and TYPE lines. `.ci/run` installs it (Debian's
 * prometheus package); a bare checkout without it skips, saying so.
 */
const promtool = spawnSync('promtool', ['--version']).status === 0;
const skip =
  !promtool && !process.env.CI ? 'needs promtool (Debian package prometheus), which .ci/run installs' : false;

test('promtool check metrics passes on a real scrape', { skip }, async () => {
  assert.ok(promtool, 'promtool is on PATH (CI installs it)');
  const server = await startServer();
  try {
    // Per-repository series exist once something is published and indexed.
    assert.equal((await publish(server, 'main', 'musl', await buildApk())).status, 201);
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /reef_index_packages\{/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  } finally {
    await server.close();
    removeDir(server.dataDir);
  }
});
