import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/reef-cli.ts';
import { removeDir, startServer } from '../helpers/server.ts';

/**
 * No Docker engine runs here, so the image's own commands are run as the
 * container would: the HEALTHCHECK script against a real server.
 */
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

function healthcheckScript(): string {
  const m = /HEALTHCHECK[^\n]*\\\n\s*CMD node -e "(.*)"\s*$/m.exec(dockerfile);
  assert.ok(m, 'the Dockerfile has a HEALTHCHECK that runs node -e');
  return m[1]!;
}

test('the health check asks the port REEF_PORT names, and fails when nothing answers', async () => {
  const server = await startServer();
  try {
    const port = new URL(server.url).port;
    // Asynchronously: the server answering it runs in this process.
    const run = async (env: Record<string, string>) => {
      const child = spawn(process.execPath, ['-e', healthcheckScript()], {
        env: { ...process.env, ...env },
        timeout: 10_000,
      });
      const [code] = await once(child, 'exit');
      return code as number | null;
    };
    assert.equal(await run({ REEF_PORT: port }), 0, 'healthy on the configured port');
    await server.close();
    assert.equal(await run({ REEF_PORT: port }), 1, 'unhealthy once the server is gone');
  } finally {
    removeDir(server.dataDir);
  }
});

test('the build context leaves out data folders (private keys) and local state', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const entry of ['data/', '.git/', 'node_modules/']) assert.ok(ignored.includes(entry), entry);
});
