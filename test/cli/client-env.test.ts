import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import { assertExit, type Run, reef } from '../helpers/reef-cli.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

/**
 * The server URL of the CLI commands that talk to a server (publish, key;
 * verify has its own tests) in apk's form, `http://user:TOKEN@host`: the
 * credentials go as HTTP Basic, and no message ever shows them.
 */
describe('server URLs with credentials', () => {
  let server: TestServer;
  let work: string;
  let apk: string;
  let host: string;
  /** A port nothing listens on. */
  let closed: string;
  const hidden = (run: Run, token: string) =>
    assert.ok(!`${run.stdout}${run.stderr}`.includes(token), `the token was printed:\n${run.stderr}`);

  before(async () => {
    server = await startServer();
    host = new URL(server.url).host;
    const probe = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => probe.once('listening', resolve));
    closed = `127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((resolve) => probe.close(resolve));
    work = mkdtempSync(join(tmpdir(), 'reef-client-env-'));
    apk = join(work, 'basic-1.0-r0.apk');
    writeFileSync(apk, await buildApk({ name: 'basic', version: '1.0-r0', depends: [] }));
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  test('reef publish takes the token from --url, and never prints it', async () => {
    const { token } = await server.services.tokens.create('ci', ['main:publish']);
    const args = ['publish', '--repo', 'main', '--libc', 'musl', apk];
    const published = await reef([...args, '--url', `http://ci:${token}@${host}`]);
    assertExit(published, 0);
    assert.match(published.stdout, /^201 created main\/musl\/x86_64\/basic-1\.0-r0\.apk$/m);
    hidden(published, token);
    // The URL's credentials win over REEF_TOKEN.
    const again = await reef([...args, '--url', `http://${token}@${host}`], { REEF_TOKEN: 'reef_wrong' });
    assertExit(again, 0);
    assert.match(again.stdout, /^200 exists /m);
    // A server that is not there, and a URL that is not one: the messages show no credentials.
    const refused = await reef([...args, '--url', `http://ci:${token}@${closed}`]);
    assertExit(refused, 1);
    assert.match(refused.stderr, /CONNECTION_FAILED/);
    hidden(refused, token);
    const malformed = await reef([...args, '--url', `http://ci:${token}@[::1`]);
    assertExit(malformed, 2);
    assert.match(malformed.stderr, /'http:\/\/\*\*\*@\[::1' is not a URL/);
    hidden(malformed, token);
  });

  test('reef key takes the admin token from --url, and never prints it', async () => {
    const listed = await reef(['key', 'list', '--url', `http://admin:${TEST_TOKEN}@${host}/`]);
    assertExit(listed, 0);
    assert.match(listed.stdout, /\.rsa\.pub$/m);
    hidden(listed, TEST_TOKEN);
    const refused = await reef(['key', 'list', '--url', `http://admin:${TEST_TOKEN}@${closed}`]);
    assertExit(refused, 1);
    hidden(refused, TEST_TOKEN);
  });
});
