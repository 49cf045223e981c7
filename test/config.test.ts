import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../src/config.ts';
import { isAppError } from '../src/errors.ts';

test('defaults are the embedded setup of the design', () => {
  const c = loadConfig({});
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.dataDir, join(process.cwd(), 'data'));
  assert.equal(c.logLevel, 'info');
  assert.equal(c.adminToken, undefined);
  assert.equal(c.keyBits, 4096);
  assert.equal(c.indexSha1, true);
  assert.deepEqual(c.defaultArches, ['x86_64', 'aarch64']);
  assert.equal(c.trustProxy, false);
  assert.equal(loadConfig({ REEF_TRUST_PROXY: '1' }).trustProxy, 1);
  assert.deepEqual(loadConfig({ REEF_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy, [
    '10.0.0.0/8',
    '127.0.0.1',
  ]);
  assert.equal(loadConfig({ REEF_TRUST_PROXY: 'true' }).trustProxy, true);
});

test('file < environment < flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reef-config-'));
  try {
    const file = join(dir, 'reef.json');
    writeFileSync(file, JSON.stringify({ port: 1111, host: '0.0.0.0', logLevel: 'debug' }));
    const c = loadConfig(
      { REEF_CONFIG: file, REEF_PORT: '2222', REEF_INDEX_SHA1: 'false' },
      { port: '3333' },
    );
    assert.equal(c.port, 3333);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.indexSha1, false);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a bad value is refused with the variable named', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ REEF_PORT: '70000' }, /REEF_PORT/],
    [{ REEF_PORT: 'http' }, /REEF_PORT/],
    [{ REEF_LOG_LEVEL: 'loud' }, /REEF_LOG_LEVEL/],
    [{ REEF_ADMIN_TOKEN: 'short' }, /REEF_ADMIN_TOKEN/],
    [{ REEF_PUBLIC_URL: 'not a url' }, /REEF_PUBLIC_URL/],
    [{ REEF_KEY_BITS: '1024' }, /REEF_KEY_BITS/],
    [{ REEF_CONFIG: '/nonexistent/reef.json' }, /config file/],
  ];
  for (const [env, re] of cases) {
    assert.throws(
      () => loadConfig(env),
      (err) => isAppError(err, 'CONFIG_INVALID') && re.test(err.message),
      JSON.stringify(env),
    );
  }
});
