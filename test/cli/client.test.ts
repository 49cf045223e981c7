import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { readIndex } from '../../src/apk/index-reader.ts';
import { buildApk, chunked } from '../helpers/apk-builder.ts';
import { ROOT } from '../helpers/reef-cli.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

/**
 * A publisher's CI without a checkout of reef: it fetches the client from
 * the server and runs it with plain node, in a folder with no node_modules.
 */
const run = promisify(execFile);
let server: TestServer;
const ci = mkdtempSync(join(tmpdir(), 'reef-ci-'));

before(async () => {
  // What `npm run build` (and so `npm start`) does for the client.
  await run('npm', ['run', 'build:client'], { cwd: ROOT });
  server = await startServer();
});
after(async () => {
  await server.close();
  removeDir(server.dataDir);
  removeDir(ci);
});

test('the client served at /client/reef.mjs publishes from a bare folder', async () => {
  const res = await fetch(`${server.url}/client/reef.mjs`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers.get('content-type')), /^text\/javascript/);
  assert.ok(res.headers.get('etag'));
  writeFileSync(join(ci, 'reef.mjs'), Buffer.from(await res.arrayBuffer()));
  writeFileSync(join(ci, 'hello-1.0-r0.apk'), await buildApk({ name: 'hello', version: '1.0-r0' }));

  const env = { PATH: process.env.PATH ?? '', REEF_URL: server.url, REEF_TOKEN: TEST_TOKEN };
  const published = await run(
    process.execPath,
    ['reef.mjs', 'publish', '--repo', 'ci', '--libc', 'musl', 'hello-1.0-r0.apk'],
    { cwd: ci, env },
  );
  assert.match(published.stdout, /^201 created ci\/musl\/x86_64\/hello-1\.0-r0\.apk/m);
  const index = await readIndex(
    chunked(Buffer.from(await (await fetch(`${server.url}/ci/musl/x86_64/APKINDEX.tar.gz`)).arrayBuffer())),
  );
  assert.deepEqual(
    index.records.map((r) => r.name),
    ['hello'],
  );
  // Only the publisher's commands: nothing of the server is in the file.
  const help = await run(process.execPath, ['reef.mjs', '--help'], { cwd: ci, env });
  assert.match(help.stdout, /publish/);
  assert.doesNotMatch(help.stdout, /\bserve\b/);
});
