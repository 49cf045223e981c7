import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import {
  Authenticator,
  allow,
  assertCallerMayRead,
  callerToken,
  enforceAccess,
  FailedAuthLimiter,
} from '../../src/http/auth.ts';
import { errorHandler } from '../../src/http/errors.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const basic = (token: string, user = 'apk') => ({
  authorization: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`,
});

describe('access control', () => {
  let server: TestServer;
  const tokens: Record<string, string> = {};

  async function createToken(name: string, scopes: string[], expiresIn?: number): Promise<Response> {
    return fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { ...bearer(TEST_TOKEN), 'content-type': 'application/json' },
      body: JSON.stringify({ name, scopes, expiresIn }),
    });
  }

  before(async () => {
    server = await startServer();
    for (const [name, scopes] of Object.entries({
      reader: ['priv:read'],
      publisher: ['pub:publish', 'priv:publish'],
      deleter: ['pub:delete'],
      repoAdmin: ['pub:admin'],
      otherRepo: ['elsewhere:admin'],
    })) {
      const res = await createToken(name, scopes);
      assert.equal(res.status, 201);
      const body = (await res.json()) as { token: string; scopes: string[] };
      assert.deepEqual(body.scopes, scopes);
      tokens[name] = body.token;
    }
    assert.equal((await publish(server, 'pub', 'musl', await buildApk({ name: 'base' }))).status, 201);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('publish: no token 401, wrong scope 403, publish or admin scope 201', async () => {
    const apk = await buildApk({ name: 'scoped' });
    const noToken = await fetch(`${server.url}/api/v1/repos/pub/musl/packages`, {
      method: 'POST',
      body: new Uint8Array(apk),
    });
    assert.equal(noToken.status, 401);
    assert.equal(noToken.headers.get('www-authenticate'), 'Basic realm="reef"');
    for (const name of ['reader', 'deleter', 'otherRepo']) {
      const r = await publish(server, 'pub', 'musl', apk, tokens[name]);
      assert.equal(r.status, 403, name);
      assert.equal(r.json.code, 'AUTH_FORBIDDEN');
    }
    assert.equal((await publish(server, 'pub', 'musl', apk, tokens.publisher)).status, 201);
    assert.equal(
      (await publish(server, 'pub', 'musl', await buildApk({ name: 'byadmin' }), tokens.repoAdmin)).status,
      201,
    );
  });

  test('delete: publish scope 403, delete scope 204', async () => {
    const url = `${server.url}/api/v1/repos/pub/musl/x86_64/base/1.0.0-r0`;
    assert.equal((await fetch(url, { method: 'DELETE' })).status, 401);
    assert.equal((await fetch(url, { method: 'DELETE', headers: bearer(tokens.publisher!) })).status, 403);
    assert.equal((await fetch(url, { method: 'DELETE', headers: bearer(tokens.deleter!) })).status, 204);
  });

  test('admin routes need *:admin; a repo admin may change only its repo', async () => {
    for (const name of ['publisher', 'repoAdmin']) {
      assert.equal(
        (await fetch(`${server.url}/api/v1/tokens`, { headers: bearer(tokens[name]!) })).status,
        403,
      );
      assert.equal(
        (await fetch(`${server.url}/api/v1/audit`, { headers: bearer(tokens[name]!) })).status,
        403,
      );
    }
    assert.equal((await fetch(`${server.url}/api/v1/tokens`)).status, 401);
    const put = (repo: string, token: string) =>
      fetch(`${server.url}/api/v1/repos/${repo}`, {
        method: 'PUT',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: JSON.stringify({ maxUploadBytes: 4096 }),
      });
    assert.equal((await put('pub', tokens.repoAdmin!)).status, 200);
    assert.equal((await put('priv', tokens.repoAdmin!)).status, 403);
    const list = (await (
      await fetch(`${server.url}/api/v1/tokens`, { headers: bearer(TEST_TOKEN) })
    ).json()) as {
      tokens: Array<Record<string, unknown>>;
    };
    assert.ok(list.tokens.length >= 5);
    for (const t of list.tokens) {
      assert.equal(t.token, undefined, 'tokens are never listed');
      assert.equal(t.hash, undefined);
    }
  });

  test('a per-repo upload limit answers 413', async () => {
    const big = await buildApk({
      name: 'big',
      files: [{ name: 'usr/share/big', content: Buffer.from(crypto.getRandomValues(new Uint8Array(8192))) }],
    });
    const r = await publish(server, 'pub', 'musl', big, tokens.publisher);
    assert.equal(r.status, 413);
    assert.equal(r.json.code, 'PUBLISH_TOO_LARGE');
  });

  test('a private repo answers 401 to anonymous reads, 403 without read scope, 200 with Basic credentials', async () => {
    await makePrivate(server, 'priv');
    assert.equal(
      (await publish(server, 'priv', 'musl', await buildApk({ name: 'secret' }), tokens.publisher)).status,
      201,
    );
    const paths = [
      '/priv/musl/x86_64/APKINDEX.tar.gz',
      '/priv/musl/x86_64/secret-1.0.0-r0.apk',
      '/priv/musl/x86_64/missing-1.0-r0.apk',
      '/api/v1/repos/priv/musl/x86_64/packages',
      '/api/v1/packages/priv/musl/x86_64/secret/1.0.0-r0',
    ];
    for (const path of paths) {
      const anon = await fetch(server.url + path);
      assert.equal(anon.status, 401, `${path} anonymous`);
      assert.equal(anon.headers.get('www-authenticate'), 'Basic realm="reef"');
      assert.equal((await fetch(server.url + path, { headers: basic(tokens.otherRepo!) })).status, 403, path);
      assert.equal((await fetch(server.url + path, { headers: basic('not-a-token') })).status, 401, path);
    }
    for (const path of paths.filter((p) => !p.includes('missing'))) {
      const ok = await fetch(server.url + path, { headers: basic(tokens.reader!) });
      assert.equal(ok.status, 200, path);
      if (path.endsWith('.apk') || path.endsWith('.tar.gz')) {
        assert.match(ok.headers.get('cache-control') ?? '', /^private/);
      }
    }
    // A token alone in the user part of the URL (http://TOKEN@host/...) works too.
    assert.equal(
      (
        await fetch(`${server.url}/priv/musl/x86_64/APKINDEX.tar.gz`, {
          headers: { authorization: `Basic ${Buffer.from(`${tokens.reader}:`).toString('base64')}` },
        })
      ).status,
      200,
    );
    const anonList = (await (await fetch(`${server.url}/api/v1/repos`)).json()) as {
      repos: Array<{ name: string }>;
    };
    assert.ok(
      !anonList.repos.some((r) => r.name === 'priv'),
      'private repos are not listed to anonymous callers',
    );
    const readerList = (await (
      await fetch(`${server.url}/api/v1/repos`, { headers: bearer(tokens.reader!) })
    ).json()) as {
      repos: Array<{ name: string }>;
    };
    assert.ok(readerList.repos.some((r) => r.name === 'priv'));
  });

  test('a repository that does not exist answers as a private one does, until a token may read it', async () => {
    // priv is private and holds secret-1.0.0-r0 (the test before); nosuch does not exist.
    const paths = (repo: string) => [
      `/${repo}/musl/x86_64/APKINDEX.tar.gz`,
      `/${repo}/musl/x86_64/secret-1.0.0-r0.apk`,
      `/${repo}/musl/x86_64/secret-1.0.0-r0.apk.spdx.json`,
      `/api/v1/repos/${repo}/musl/x86_64/packages`,
      `/api/v1/packages/${repo}/musl/x86_64/secret/1.0.0-r0`,
      `/api/v1/packages/${repo}/musl/x86_64/secret/1.0.0-r0/sbom`,
      `/api/v1/sbom/export?repo=${repo}`,
    ];
    const answer = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(server.url + path, { headers });
      return {
        status: res.status,
        challenge: res.headers.get('www-authenticate'),
        body: (await res.json()) as { code: string; message: string },
      };
    };
    const unknown = paths('nosuch');
    for (const [i, path] of paths('priv').entries()) {
      const anonymous = await answer(unknown[i]!);
      assert.deepEqual(anonymous, await answer(path), `${unknown[i]} anonymous`);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.challenge, 'Basic realm="reef"');
      // A token without read on the name: 403 for both.
      const forbidden = await answer(unknown[i]!, basic(tokens.otherRepo!));
      assert.equal(forbidden.status, 403, unknown[i]);
      assert.equal(forbidden.body.code, (await answer(path, basic(tokens.otherRepo!))).body.code);
      // A token that may read every repository learns that this one is not there (its listing is empty).
      const found = await answer(unknown[i]!, bearer(TEST_TOKEN));
      if (unknown[i]!.endsWith('/packages')) assert.deepEqual(found.body, { packages: [], next: null });
      else assert.equal(found.status, 404, unknown[i]);
    }
    const wrong = await answer(unknown[0]!, basic('not-a-token'));
    assert.deepEqual(wrong, await answer(paths('priv')[0]!, basic('not-a-token')));
    assert.equal(wrong.body.code, 'AUTH_INVALID');
  });

  test('revoked and expired tokens are refused', async () => {
    const created = (await (await createToken('short', ['pub:publish'])).json()) as {
      id: number;
      token: string;
    };
    assert.equal(
      (await publish(server, 'pub', 'musl', await buildApk({ name: 'before-revoke' }), created.token)).status,
      201,
    );
    const revoke = await fetch(`${server.url}/api/v1/tokens/${created.id}`, {
      method: 'DELETE',
      headers: bearer(TEST_TOKEN),
    });
    assert.equal(revoke.status, 204);
    const after = await publish(
      server,
      'pub',
      'musl',
      await buildApk({ name: 'after-revoke' }),
      created.token,
    );
    assert.equal(after.status, 401);
    assert.equal(after.json.code, 'AUTH_INVALID');
    // Expired: created through the service with an expiry in the past.
    const expired = await server.services.tokens.create('expired', ['pub:publish'], Date.now() - 1000);
    const r = await publish(server, 'pub', 'musl', await buildApk({ name: 'expired' }), expired.token);
    assert.equal(r.status, 401);
    const bad = await createToken('bad', ['pub:everything']);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'TOKEN_INVALID_SCOPE');
  });

  test('every write is in the audit log, and no token reaches the logs', async () => {
    const audit = (await (
      await fetch(`${server.url}/api/v1/audit?limit=1000`, { headers: bearer(TEST_TOKEN) })
    ).json()) as {
      entries: Array<{
        action: string;
        result: string;
        code?: string;
        tokenName?: string;
        remoteAddr?: string;
        target: string;
      }>;
    };
    const actions = new Set(audit.entries.map((e) => `${e.action}:${e.result}`));
    for (const a of [
      'token.create:ok',
      'package.publish:ok',
      'package.delete:ok',
      'repo.update:ok',
      'token.revoke:ok',
      'package.publish:rejected',
    ]) {
      assert.ok(actions.has(a), `audit has ${a}`);
    }
    const rejected = audit.entries.find((e) => e.action === 'package.publish' && e.result === 'rejected')!;
    assert.equal(rejected.code, 'PUBLISH_TOO_LARGE');
    const published = audit.entries.find((e) => e.action === 'package.publish' && e.result === 'ok')!;
    assert.equal(published.remoteAddr, '127.0.0.1');
    assert.ok(published.tokenName);
    for (const token of [TEST_TOKEN, ...Object.values(tokens)]) {
      assert.ok(!server.logs.some((l) => l.includes(token)), 'a token appeared in the logs');
    }
  });

  test('credentials in an absolute request target reach neither the logs nor the answer', async () => {
    const secret = 'reef_in-the-url-0123456789';
    const port = Number(new URL(server.url).port);
    /** A raw request: fetch cannot send `GET http://user:TOKEN@host/… HTTP/1.1`. */
    const raw = (target: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(`GET ${target} HTTP/1.1\r\nHost: reef\r\nConnection: close\r\n\r\n`),
        );
        let answer = '';
        socket.on('data', (b: Buffer) => {
          answer += b;
        });
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
      });
    const served = await raw(`http://apk:${secret}@reef/pub/musl/x86_64/APKINDEX.tar.gz`);
    assert.match(served, /^HTTP\/1\.1 200 /);
    const unmatched = await raw(`http://${secret}@reef/no/such/route/here/at/all`);
    assert.match(unmatched, /^HTTP\/1\.1 404 /);
    assert.ok(!unmatched.includes(secret), unmatched);
    assert.ok(!server.logs.some((l) => l.includes(secret)), 'a URL credential appeared in the logs');
    assert.ok(server.logs.some((l) => l.includes('http://***@reef/pub/musl/x86_64/APKINDEX.tar.gz')));
  });

  test('every route declares its access rule; one without is refused, and HEAD is checked as GET', async () => {
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    enforceAccess(app, new Authenticator(server.services, new FailedAuthLimiter()));
    assert.throws(() => app.get('/unruled', async () => 'open'), /declares no access rule/);
    app.get('/admin-only', { config: { access: allow.scope('admin', '*') } }, async (request) => ({
      name: callerToken(request).name,
    }));
    // A handler that reads a repository its route's rule did not check fails closed; a scope is no read.
    for (const [path, rule] of [
      ['/leaky/:repo', allow.public],
      ['/scoped/:repo', allow.scope('admin', '*')],
    ] as const) {
      app.get<{ Params: { repo: string } }>(path, { config: { access: rule } }, async (request) => {
        assertCallerMayRead(request, request.params.repo);
        return 'leaked';
      });
    }
    try {
      await app.ready();
      const anonymous = await app.inject('/admin-only');
      assert.equal(anonymous.statusCode, 401);
      assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="reef"');
      assert.equal((await app.inject({ method: 'HEAD', url: '/admin-only' })).statusCode, 401);
      assert.equal(
        (await app.inject({ url: '/admin-only', headers: bearer(tokens.repoAdmin!) })).statusCode,
        403,
      );
      const admin = await app.inject({ url: '/admin-only', headers: bearer(TEST_TOKEN) });
      assert.equal(admin.statusCode, 200);
      assert.deepEqual(admin.json(), { name: 'REEF_ADMIN_TOKEN' });
      for (const url of ['/leaky/priv', '/scoped/priv']) {
        assert.equal((await app.inject({ url, headers: bearer(TEST_TOKEN) })).statusCode, 500, url);
      }
    } finally {
      await app.close();
    }
    // The server's own generated HEAD routes are checked too.
    const head = await fetch(`${server.url}/api/v1/repos/priv/musl/x86_64/packages`, { method: 'HEAD' });
    assert.equal(head.status, 401);
  });

  test('a flood of failed authentications is rate-limited, and valid tokens still get in', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) {
      statuses.push((await fetch(`${server.url}/api/v1/tokens`, { headers: bearer(`wrong-${i}`) })).status);
    }
    assert.ok(statuses.slice(0, 5).every((s) => s === 401));
    assert.equal(statuses.at(-1), 429);
    // A valid token from that very address is never refused: admin, a scoped reader, as Bearer or as apk's Basic.
    assert.equal((await fetch(`${server.url}/api/v1/tokens`, { headers: bearer(TEST_TOKEN) })).status, 200);
    const priv = `${server.url}/priv/musl/x86_64/APKINDEX.tar.gz`;
    assert.equal((await fetch(priv, { headers: basic(tokens.reader!) })).status, 200);
    assert.equal((await fetch(priv, { headers: bearer(tokens.reader!) })).status, 200);
    // Failures still are.
    const refused = await fetch(priv, { headers: basic('wrong-again') });
    assert.equal(refused.status, 429);
    assert.equal(((await refused.json()) as { code: string }).code, 'AUTH_RATE_LIMITED');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    // Without credentials it is the usual 401 challenge: nothing was guessed.
    assert.equal((await fetch(priv)).status, 401);
  });
});
