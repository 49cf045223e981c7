import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SUPPORTED_NODE, unsupportedNode } from '../src/runtime.ts';
import { ROOT } from './helpers/reef-cli.ts';
import { removeDir } from './helpers/server.ts';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
const major = (version: string): number => Number(/^v?(\d+)\./.exec(version)?.[1]);

test("the runtime check and package.json's engines name the same versions", () => {
  assert.equal(SUPPORTED_NODE, pkg.engines.node);
});

test('Node 20 and early 22 are refused; 22.22.2+, 24 LTS and 26 run', () => {
  for (const v of ['v20.20.2', 'v22.12.0', 'v22.22.1', 'v23.11.0', 'v24.14.0']) {
    assert.match(unsupportedNode(v) ?? '', /reef needs Node\.js .* this is v/, v);
  }
  for (const v of ['v22.22.2', 'v24.15.0', 'v24.22.3', 'v26.0.0'])
    assert.equal(unsupportedNode(v), undefined, v);
});

test('the Node the lockfile installs for npm scripts and the container image share a major', () => {
  const majors = new Set<number>();
  for (const name of Object.keys(pkg.optionalDependencies)) {
    const locked = lock.packages[`node_modules/${name}`];
    assert.ok(locked, `${name} is in package-lock.json`);
    assert.equal(locked.optional, true, `${name} is optional: other platforms use their own Node`);
    majors.add(major(locked.version));
  }
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const froms = [...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
  assert.ok(froms.length >= 1, 'the Dockerfile builds FROM node:<major>-…');
  for (const from of froms) majors.add(from);
  assert.equal(majors.size, 1, `one Node major everywhere, found ${[...majors].join(', ')}`);
});

test('the CI runs the suite on the Node it asks for', (t) => {
  // .ci/run sets REEF_REQUIRE_NODE; a developer's run on another supported Node is fine.
  const required = process.env.REEF_REQUIRE_NODE;
  if (!required) {
    t.skip('REEF_REQUIRE_NODE is not set (.ci/run sets it)');
    return;
  }
  assert.equal(major(process.version), Number(required), `the tests run on ${process.version}`);
});

test('on an older Node the CLI stops before opening anything, exit 2', async () => {
  const data = mkdtempSync(join(tmpdir(), 'reef-runtime-'));
  try {
    // process.version as Node 20 reports it; the rest of this Node is real.
    const script =
      "Object.defineProperty(process, 'version', { value: 'v20.20.2' }); await import('./bin/reef.js');";
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--input-type=module', '-e', script, 'serve', '--data', join(data, 'd'), '--port', '0'],
        { cwd: ROOT, timeout: 30_000 },
        (err, _stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, stderr }),
      );
    });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /reef needs Node\.js \^22\.22\.2 .* this is v20\.20\.2/);
    assert.equal(existsSync(join(data, 'd')), false, 'no data folder was created');
  } finally {
    removeDir(data);
  }
});
