import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { hashToken } from '../../src/repo/tokens.ts';
import { type BuildApkOptions, buildApk } from '../helpers/apk-builder.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import {
  opensslVerifyIndex,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { signWithKey, slsaStatement } from '../helpers/sigstore-ca.ts';

/** The packages the CLI sends: files made here, named as apk names them. */
const PACKAGES = mkdtempSync(join(tmpdir(), 'reef-cli-apks-'));
after(() => removeDir(PACKAGES));
async function packageFile(options: BuildApkOptions & { name: string; version: string }): Promise<string> {
  const path = join(PACKAGES, `${options.name}-${options.version}.apk`);
  writeFileSync(path, await buildApk({ depends: [], ...options }));
  return path;
}
const GITEA_TEST = await packageFile({ name: 'gitea-test', version: '1.4.1-r3' });
const GITEA_NOARCH = await packageFile({ name: 'gitea-noarch', version: '1.4-r0', arch: 'noarch' });
const HELLO = await packageFile({ name: 'hello', version: '0.1.0-r0' });
/** 20 KB that gzip cannot shrink, and a datahash that does not match its data member: the server must refuse it. */
const NEON = await packageFile({
  name: 'neon',
  version: '4604-r0',
  files: [{ name: 'usr/lib/libneon.so', content: createHash('shake256', { outputLength: 20_000 }).digest() }],
  datahash: '0'.repeat(64),
});

async function withServer(fn: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await startServer();
  try {
    await fn(server);
  } finally {
    await server.close();
    removeDir(server.dataDir);
  }
}

/** GET with an optional bearer token; the status. */
async function status(url: string, token?: string): Promise<number> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  await res.arrayBuffer();
  return res.status;
}

async function listed(server: TestServer, repo: string, libc: string, arch: string): Promise<string[]> {
  const res = await fetch(`${server.url}/api/v1/repos/${repo}/${libc}/${arch}/packages?limit=1000`, {
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
  });
  const body = (await res.json()) as { packages: Array<{ filename: string }> };
  return body.packages.map((p) => p.filename).sort();
}

async function cliAudit(
  server: TestServer,
): Promise<Array<{ action: string; target: string; result: string }>> {
  return (await server.services.audit.list(1000))
    .filter((e) => e.remoteAddr === 'cli')
    .map(({ action, target, result }) => ({ action, target, result }));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

test('help, unknown commands and bad configuration exit with the documented codes', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-cli-'));
  try {
    const helps = await Promise.all(
      [[], ['serve'], ['migrate'], ['token'], ['token', 'create'], ['repo'], ['reindex'], ['publish']].map(
        (cmd) => reef([...cmd, '--help']),
      ),
    );
    for (const run of helps) {
      assertExit(run, 0);
      assert.match(run.stdout, /^usage: reef/);
      assert.match(run.stdout, /exit codes: 0 ok, 1 .*, 2 bad usage or configuration/);
    }
    const [none, unknown, badOption, noSub, badPort] = await Promise.all([
      reef([]),
      reef(['frobnicate']),
      reef(['token', 'list', '--bogus', '--data', dataDir]),
      reef(['repo', '--data', dataDir]),
      reef(['serve'], { REEF_PORT: '99999', REEF_DATA_DIR: dataDir }),
    ]);
    assertExit(none, 2);
    assertExit(unknown, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    assertExit(badOption, 2);
    assertExit(noSub, 2);
    assertExit(badPort, 2);
    assert.match(badPort.stderr, /REEF_PORT/);
  } finally {
    removeDir(dataDir);
  }
});

test('token create prints the token once; it publishes, is listed without its text, and stops on revoke', async () => {
  await withServer(async (server) => {
    const data = ['--data', server.dataDir];
    const created = await reef(['token', 'create', '--name', 'ci', '--scope', 'r:publish', ...data]);
    assertExit(created, 0);
    assert.match(created.stdout, /^reef_[A-Za-z0-9_-]{20,}\n$/, 'only the token on stdout');
    const token = created.stdout.trim();
    assert.ok(!created.stderr.includes(token));

    const published = await reef(['publish', '--repo', 'r', '--libc', 'glibc', GITEA_TEST], {
      REEF_URL: server.url,
      REEF_TOKEN: token,
    });
    assertExit(published, 0);
    assert.equal(published.stdout, '201 created r/glibc/x86_64/gitea-test-1.4.1-r3.apk\n');

    const text = await reef(['token', 'list', ...data]);
    assertExit(text, 0);
    assert.match(text.stdout, /\bci\b.*r:publish.*active/);
    const json = await reef(['token', 'list', '--json', ...data]);
    assertExit(json, 0);
    for (const out of [text.stdout, json.stdout]) {
      assert.ok(!out.includes(token), 'the token text is never listed');
      assert.ok(!out.includes(hashToken(token).toString('hex')), 'nor its hash');
    }
    const tokens = (JSON.parse(json.stdout) as { tokens: Array<Record<string, unknown>> }).tokens;
    assert.equal(tokens.length, 1);
    const [entry] = tokens;
    assert.deepEqual(Object.keys(entry!).sort(), [
      'createdAt',
      'expiresAt',
      'id',
      'lastUsedAt',
      'name',
      'revokedAt',
      'scopes',
      'state',
    ]);
    assert.equal(entry!.name, 'ci');
    assert.equal(entry!.state, 'active');
    assert.equal(entry!.expiresAt, null);
    assert.notEqual(entry!.lastUsedAt, null, 'the publish used it');

    assert.equal(await status(`${server.url}/api/v1/repos`, token), 200);
    const revoked = await reef(['token', 'revoke', String(entry!.id), ...data]);
    assertExit(revoked, 0);
    assert.equal(await status(`${server.url}/api/v1/repos`, token), 401);
    const refused = await reef(['publish', '--repo', 'r', '--libc', 'glibc', GITEA_NOARCH], {
      REEF_URL: server.url,
      REEF_TOKEN: token,
    });
    assertExit(refused, 1);
    assert.match(refused.stderr, /401 AUTH_INVALID: /);
    assert.ok(!refused.stderr.includes('retrying'), 'a 4xx is never retried');
    assert.match((await reef(['token', 'list', ...data])).stdout, /\bci\b.*revoked/);

    const missing = await reef(['token', 'revoke', '999', ...data]);
    assertExit(missing, 1);
    assert.match(missing.stderr, /TOKEN_NOT_FOUND/);
    const badScope = await reef(['token', 'create', '--name', 'x', '--scope', 'r:write', ...data]);
    assertExit(badScope, 2);
    assert.match(badScope.stderr, /TOKEN_INVALID_SCOPE/);

    assert.deepEqual((await cliAudit(server)).reverse(), [
      { action: 'token.create', target: `token/${entry!.id}`, result: 'ok' },
      { action: 'token.revoke', target: `token/${entry!.id}`, result: 'ok' },
      { action: 'token.revoke', target: 'token/999', result: 'rejected' },
      { action: 'token.create', target: 'x', result: 'rejected' },
    ]);
  });
});

test('token create --expires sets the lifetime, and the server refuses the token once it has passed', async () => {
  await withServer(async (server) => {
    const data = ['--data', server.dataDir];
    const before = Date.now();
    assertExit(
      await reef(['token', 'create', '--name', 'day', '--scope', '*:read', '--expires', '12h', ...data]),
      0,
    );
    const short = await reef([
      'token',
      'create',
      '--name',
      'short',
      '--scope',
      '*:read',
      '--expires',
      '3s',
      ...data,
    ]);
    assertExit(short, 0);
    const after = Date.now();
    const [day, brief] = await server.services.tokens.list();
    assert.ok(day!.expiresAt! >= before + 12 * 3600_000 && day!.expiresAt! <= after + 12 * 3600_000);
    assert.ok(brief!.expiresAt! >= before + 3000 && brief!.expiresAt! <= after + 3000);

    const token = short.stdout.trim();
    assert.equal(await status(`${server.url}/api/v1/repos`, token), 200);
    // Run while the short token ages.
    const badLifetimes = Promise.all(
      ['3w', '0s', '12', '-1h', '99999d'].map((bad) =>
        reef(['token', 'create', '--name', 'x', '--scope', '*:read', `--expires=${bad}`, ...data]),
      ),
    );
    await new Promise((r) => setTimeout(r, brief!.expiresAt! - Date.now() + 50));
    assert.equal(await status(`${server.url}/api/v1/repos`, token), 401);
    assert.match((await reef(['token', 'list', ...data])).stdout, /\bshort\b.*expired/);

    for (const run of await badLifetimes) assertExit(run, 2);
  });
});

test('repo create --private: the server asks for credentials; set-visibility opens it again', async () => {
  await withServer(async (server) => {
    const data = ['--data', server.dataDir];
    const index = `${server.url}/priv/glibc/x86_64/APKINDEX.tar.gz`;
    assertExit(await reef(['repo', 'create', 'priv', '--private', ...data]), 0);
    const res = await fetch(index);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic/);

    assertExit(await reef(['repo', 'create', 'small', '--max-upload-bytes', '2048', ...data]), 0);
    const list = await reef(['repo', 'list', '--json', ...data]);
    assertExit(list, 0);
    const repos = (JSON.parse(list.stdout) as { repos: Array<Record<string, unknown>> }).repos;
    assert.deepEqual(
      repos.map((r) => [r.name, r.private, r.maxUploadBytes]),
      [
        ['priv', true, null],
        ['small', false, 2048],
      ],
    );
    assert.match((await reef(['repo', 'list', ...data])).stdout, /priv\s+private/);

    // The per-repo limit holds for uploads from the CLI: neon is 20 KB.
    const tooBig = await reef(['publish', '--repo', 'small', '--libc', 'glibc', NEON], {
      REEF_URL: server.url,
      REEF_TOKEN: TEST_TOKEN,
    });
    assertExit(tooBig, 1);
    assert.match(tooBig.stderr, /413 PUBLISH_TOO_LARGE: /);

    const again = await reef(['repo', 'create', 'priv', ...data]);
    assertExit(again, 1);
    assert.match(again.stderr, /REPO_EXISTS/);
    const badName = await reef(['repo', 'create', 'Bad Name', ...data]);
    assertExit(badName, 2);
    assert.match(badName.stderr, /PUBLISH_BAD_REPO/);
    assertExit(await reef(['repo', 'create', 'tiny', '--max-upload-bytes', '10', ...data]), 2);

    assertExit(await reef(['repo', 'set-visibility', 'priv', 'public', ...data]), 0);
    assert.equal(await status(index), 404, 'public now, and without an index yet');
    const ghost = await reef(['repo', 'set-visibility', 'ghost', 'private', ...data]);
    assertExit(ghost, 1);
    assert.match(ghost.stderr, /REPO_NOT_FOUND/);
    assertExit(await reef(['repo', 'set-visibility', 'priv', 'secret', ...data]), 2);

    assert.deepEqual((await cliAudit(server)).reverse(), [
      { action: 'repo.create', target: 'priv', result: 'ok' },
      { action: 'repo.create', target: 'small', result: 'ok' },
      { action: 'repo.create', target: 'priv', result: 'rejected' },
      { action: 'repo.update', target: 'priv', result: 'ok' },
      { action: 'repo.update', target: 'ghost', result: 'rejected' },
    ]);
  });
});

test('publish uploads several real packages, reports a rejected one and goes on', async () => {
  await withServer(async (server) => {
    const env = { REEF_URL: 'http://127.0.0.1:9/unused', REEF_TOKEN: TEST_TOKEN };
    const args = ['publish', '--url', server.url, '--repo', 'r', '--libc', 'glibc'];
    const mixed = await reef([...args, GITEA_TEST, NEON, GITEA_NOARCH, HELLO], env);
    assertExit(mixed, 1);
    assert.equal(
      mixed.stdout,
      [
        '201 created r/glibc/x86_64/gitea-test-1.4.1-r3.apk',
        '201 created r/glibc/noarch/gitea-noarch-1.4-r0.apk',
        '201 created r/glibc/x86_64/hello-0.1.0-r0.apk',
        '',
      ].join('\n'),
    );
    assert.match(mixed.stderr, /neon-4604-r0\.apk: 422 APK_DATAHASH_MISMATCH: /);
    assert.deepEqual(await listed(server, 'r', 'glibc', 'x86_64'), [
      'gitea-noarch-1.4-r0.apk',
      'gitea-test-1.4.1-r3.apk',
      'hello-0.1.0-r0.apk',
    ]);

    const again = await reef([...args, GITEA_TEST, GITEA_NOARCH, HELLO], env);
    assertExit(again, 0);
    assert.match(again.stdout, /^200 exists r\/glibc\/x86_64\/gitea-test-1\.4\.1-r3\.apk$/m);
    assert.equal(again.stdout.split('\n').filter(Boolean).length, 3);

    const onlyBad = await reef([...args, NEON], env);
    assertExit(onlyBad, 1);
    assert.match(onlyBad.stderr, /APK_DATAHASH_MISMATCH/);

    // Bad usage publishes nothing.
    const typo = await reef([...args, HELLO, join(PACKAGES, 'no-such.apk')], env);
    assertExit(typo, 2);
    assert.equal(typo.stdout, '');
    assertExit(await reef(['publish', '--url', server.url, '--libc', 'glibc', HELLO], env), 2);
    assertExit(await reef([...args, HELLO], { REEF_URL: server.url }), 2);
    assertExit(
      await reef(['publish', '--url', server.url, '--repo', 'r', '--libc', 'uclibc', HELLO], env),
      2,
    );
  });
});

test('publish retries a refused connection three times, then fails', async () => {
  const port = await closedPort();
  const run = await reef(
    ['publish', '--url', `http://127.0.0.1:${port}`, '--repo', 'r', '--libc', 'glibc', HELLO],
    { REEF_TOKEN: TEST_TOKEN },
  );
  assertExit(run, 1);
  assert.equal(run.stderr.match(/ECONNREFUSED.*retrying in/g)?.length, 3);
  assert.match(run.stderr, /CONNECTION_FAILED: /);
});

test('reindex rebuilds every index of one repository, or of all', async () => {
  await withServer(async (server) => {
    const { store, blobs } = server.services;
    assert.equal((await publish(server, 'r', 'glibc', readFileSync(GITEA_TEST))).status, 201);
    assert.equal((await publish(server, 'r', 'glibc', readFileSync(GITEA_NOARCH))).status, 201);
    assert.equal((await publish(server, 'other', 'musl', readFileSync(HELLO))).status, 201);
    const before = new Map((await store.listIndexes()).map((i) => [`${i.repo}/${i.libc}/${i.arch}`, i]));
    assert.deepEqual([...before.keys()], ['other/musl/x86_64', 'r/glibc/aarch64', 'r/glibc/x86_64']);
    // A lost index blob: reindex puts it back.
    const damaged = before.get('r/glibc/x86_64')!;
    await blobs.delete(damaged.sha256!);
    await new Promise((r) => setTimeout(r, 5));

    const run = await reef(['reindex', 'r', '--data', server.dataDir]);
    assertExit(run, 0);
    const keys = server.services.signingKeys.map((k) => k.keyName).join(',');
    assert.equal(
      run.stdout,
      `rebuilt r/glibc/aarch64: 1 package, signed by ${keys}\nrebuilt r/glibc/x86_64: 2 packages, signed by ${keys}\n`,
    );
    for (const index of await store.listIndexes()) {
      const old = before.get(`${index.repo}/${index.libc}/${index.arch}`)!;
      assert.equal(index.sha256, old.sha256, 'same database state, same bytes');
      if (index.repo === 'r') assert.ok(index.builtAt! > old.builtAt!, `${index.arch} was rebuilt`);
      else assert.equal(index.builtAt, old.builtAt, 'other repositories are left alone');
    }
    assert.ok(await blobs.has(damaged.sha256!));
    assert.equal(await status(`${server.url}/r/glibc/x86_64/APKINDEX.tar.gz`), 200);

    const all = await reef(['reindex', '--data', server.dataDir]);
    assertExit(all, 0);
    assert.deepEqual(
      all.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(':')[0]),
      ['rebuilt other/musl/x86_64', 'rebuilt r/glibc/aarch64', 'rebuilt r/glibc/x86_64'],
    );
    const ghost = await reef(['reindex', 'ghost', '--data', server.dataDir]);
    assertExit(ghost, 1);
    assert.match(ghost.stderr, /REPO_NOT_FOUND/);
    assert.equal((await server.services.tokens.list()).length, 0, 'reindex minted no admin token');
    assert.deepEqual(
      (await cliAudit(server)).reverse().map((e) => [e.action, e.target, e.result]),
      [
        ['index.rebuild', 'r', 'ok'],
        ['index.rebuild', '*', 'ok'],
        ['index.rebuild', 'ghost', 'rejected'],
      ],
    );
  });
});

test('key rotate and retire re-sign the indexes; openssl verifies two signatures, then one', async () => {
  await withServer(async (server) => {
    assert.equal((await publish(server, 'r', 'glibc', readFileSync(GITEA_TEST))).status, 201);
    const env = { REEF_URL: server.url, REEF_TOKEN: TEST_TOKEN };
    const oldName = server.services.signingKeys[0]!.keyName;
    const work = mkdtempSync(join(tmpdir(), 'reef-cli-keys-'));
    try {
      const rotated = await reef(['key', 'rotate'], env);
      assertExit(rotated, 0);
      const newName = rotated.stdout.trim();
      assert.match(newName, /^reef-[0-9a-f]{8}\.rsa\.pub$/);
      const list = await reef(['key', 'list'], env);
      assertExit(list, 0);
      assert.deepEqual(list.stdout.trim().split('\n').sort(), [newName, oldName].sort());
      const pems: Record<string, string> = {};
      for (const name of [oldName, newName])
        pems[name] = await (await fetch(`${server.url}/keys/${name}`)).text();
      const indexFile = join(work, 'APKINDEX.tar.gz');
      const download = async () => {
        const res = await fetch(`${server.url}/r/glibc/x86_64/APKINDEX.tar.gz`);
        writeFileSync(indexFile, Buffer.from(await res.arrayBuffer()));
      };
      await download();
      const both = opensslVerifyIndex(indexFile, pems, work);
      for (const name of [oldName, newName])
        assert.ok(both.includes(`.SIGN.RSA256.${name}`), `${name} signs`);

      assertExit(await reef(['key', 'retire', oldName], env), 0);
      await download();
      const after = opensslVerifyIndex(indexFile, pems, work);
      assert.ok(after.every((n) => n.endsWith(newName)) && after.length > 0, after.join(' '));
      const last = await reef(['key', 'retire', newName], env);
      assertExit(last, 1);
      assert.match(last.stderr, /KEY_INVALID/);
      assertExit(await reef(['key', 'rotate'], { REEF_URL: server.url }), 2);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

test('key restore and key init bring back a data folder whose keys were all retired', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'reef-cli-nokey-'));
  try {
    let server = await startServer({}, dataDir);
    assert.equal((await publish(server, 'r', 'glibc', readFileSync(GITEA_TEST))).status, 201);
    const name = server.services.signingKeys[0]!.keyName;
    await server.close();
    const keys = join(dataDir, 'keys');
    mkdirSync(join(keys, 'retired'));
    for (const f of [name.replace(/\.pub$/, ''), name]) renameSync(join(keys, f), join(keys, 'retired', f));

    const refused = await reef(['reindex', '--data', dataDir]);
    assertExit(refused, 1);
    assert.match(refused.stderr, /KEY_NONE_ACTIVE/);
    assert.ok(refused.stderr.includes(`reef key restore ${name} --data ${dataDir}`), refused.stderr);
    assertExit(await reef(['key', 'restore', 'nope.rsa.pub', '--data', dataDir]), 1);
    assertExit(await reef(['key', 'restore', '../x.rsa.pub', '--data', dataDir]), 2);
    assertExit(await reef(['key', 'restore', name, '--data', dataDir, '--url', 'http://x']), 2);
    assertExit(await reef(['key', 'restore', name, '--data', dataDir]), 0);
    assertExit(await reef(['reindex', '--data', dataDir]), 0);

    // init only where no key is active: beside a key, a new one is a rotation through the server.
    const beside = await reef(['key', 'init', '--data', dataDir]);
    assertExit(beside, 1);
    assert.match(beside.stderr, /KEY_INVALID/);
    for (const f of [name.replace(/\.pub$/, ''), name]) rmSync(join(keys, f));
    const init = await reef(['key', 'init', '--data', dataDir], { REEF_KEY_BITS: '2048' });
    assertExit(init, 0);
    const chosen = init.stdout.trim();
    assert.match(chosen, /^reef-[0-9a-f]{8}\.rsa\.pub$/);
    server = await startServer({}, dataDir);
    try {
      assert.deepEqual(
        server.services.signingKeys.map((k) => k.keyName),
        [chosen],
      );
      assert.equal(
        (await server.services.store.getIndex({ repo: 'r', libc: 'glibc', arch: 'x86_64' }))?.signedBy,
        chosen,
      );
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('backup copies a live data folder that serve can start from', async () => {
  await withServer(async (server) => {
    assert.equal((await publish(server, 'r', 'glibc', readFileSync(GITEA_TEST))).status, 201);
    const dest = join(mkdtempSync(join(tmpdir(), 'reef-cli-backup-')), 'copy');
    try {
      const run = await reef(['backup', dest, '--data', server.dataDir]);
      assertExit(run, 0);
      assert.match(run.stdout, /1 packages/);
      assertExit(await reef(['backup', dest, '--data', server.dataDir]), 1);
      const restored = await startServer({}, dest);
      try {
        assert.deepEqual(await listed(restored, 'r', 'glibc', 'x86_64'), ['gitea-test-1.4.1-r3.apk']);
      } finally {
        await restored.close();
      }
    } finally {
      rmSync(join(dest, '..'), { recursive: true, force: true });
    }
  });
});

test('publish sends the provenance and SBOM found beside each package; a require policy refuses one without', async () => {
  const work = mkdtempSync(join(tmpdir(), 'reef-cli-prov-'));
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(join(work, 'publisher.pem'), pem);
  writeFileSync(
    join(work, 'reef.json'),
    JSON.stringify({ provenance: { strict: { mode: 'require', keys: ['publisher.pem'] } } }),
  );
  const server = await startServer({ REEF_CONFIG: join(work, 'reef.json') });
  try {
    const apk = await buildApk({ name: 'withprov', version: '1.0-r0', depends: [] });
    const file = join(work, 'withprov-1.0-r0.apk');
    writeFileSync(file, apk);
    const digest = createHash('sha256').update(apk).digest('hex');
    const statement = Buffer.from(
      JSON.stringify(slsaStatement({ name: 'withprov-1.0-r0.apk', sha256: digest })),
    );
    writeFileSync(`${file}.sigstore.json`, JSON.stringify(await signWithKey(statement, key.privateKey, pem)));
    const bare = join(work, 'bare-1.0-r0.apk');
    writeFileSync(bare, await buildApk({ name: 'bare', version: '1.0-r0', depends: [] }));

    const run = await reef(
      ['publish', '--url', server.url, '--repo', 'strict', '--libc', 'musl', file, bare],
      {
        REEF_TOKEN: TEST_TOKEN,
      },
    );
    assertExit(run, 1);
    assert.equal(run.stdout, '201 created strict/musl/x86_64/withprov-1.0-r0.apk\n');
    assert.match(
      run.stderr,
      /withprov-1\.0-r0\.apk: with provenance .*withprov-1\.0-r0\.apk\.sigstore\.json/,
    );
    assert.match(run.stderr, /bare-1\.0-r0\.apk: 422 PROVENANCE_REQUIRED: /);
    const meta = (await (
      await fetch(`${server.url}/api/v1/packages/strict/musl/x86_64/withprov/1.0-r0`)
    ).json()) as {
      provenance: { publisher: { verified: boolean; signer: unknown } };
    };
    assert.equal(meta.provenance.publisher.verified, true);
    assert.deepEqual(meta.provenance.publisher.signer, { kind: 'key', key: 'publisher.pem' });
  } finally {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  }
});
