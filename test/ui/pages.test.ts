import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import { HOSTILE, publishHostile } from '../helpers/hostile-package.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';

describe('web interface pages (HTTP)', () => {
  let server: TestServer;
  const page = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.url}${path}`, { headers, redirect: 'manual' });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  before(async () => {
    server = await startServer();
    await publishHostile(server);
    for (const [name, description] of [
      ['curl', 'URL retrieval utility'],
      ['curl-dev', 'curl headers'],
      ['libcurl', 'the curl library'],
    ] as const) {
      const apk = await buildApk({ name, version: '8.0-r0', depends: [], description });
      assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
    }
    const secret = await buildApk({ name: 'secret-tool', version: '1.0-r0', depends: [] });
    assert.equal((await publish(server, 'hidden', 'musl', secret)).status, 201);
    await makePrivate(server, 'hidden');
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('a browser at / goes to /ui/; a script gets a 404', async () => {
    const browser = await page('/', { accept: 'text/html,application/xhtml+xml' });
    assert.equal(browser.status, 302);
    assert.equal(browser.headers.get('location'), '/ui/');
    assert.equal((await page('/')).status, 404);
  });

  test('every page: a strict CSP, no framing, no script, no resource from elsewhere', async () => {
    for (const path of ['/ui/', '/ui/search?q=curl', '/ui/packages/main/musl/x86_64/curl/8.0-r0']) {
      const res = await page(path);
      assert.equal(res.status, 200, path);
      assert.match(String(res.headers.get('content-security-policy')), /default-src 'none'/);
      assert.match(String(res.headers.get('content-security-policy')), /frame-ancestors 'none'/);
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.doesNotMatch(res.text, /<script/i, path);
      // Links may point anywhere; nothing is loaded from another origin.
      assert.doesNotMatch(
        res.text,
        /\ssrc=|<link[^>]+href="(https?:)?\/\//i,
        `${path}: nothing loads from elsewhere`,
      );
    }
    const css = await page('/ui/static/reef.css');
    assert.equal(css.status, 200);
    assert.match(String(css.headers.get('content-type')), /^text\/css/);
  });

  test('the home page lists what the caller may read, with the lines to use it', async () => {
    const home = await page('/ui/');
    assert.match(home.text, /main \/ musl/);
    assert.ok(home.text.includes(`echo "${server.url}/main/musl" &gt;&gt; /etc/apk/repositories`), home.text);
    assert.doesNotMatch(home.text, /hidden/, 'a private repository is not shown without a token');
    const withToken = await page('/ui/', { authorization: `Bearer ${TEST_TOKEN}` });
    assert.match(withToken.text, /hidden \/ musl/);
  });

  test('search: the exact name first, then names starting with it, then the rest; never a private package', async () => {
    const res = await page('/ui/search?q=curl');
    const names = [...res.text.matchAll(/<td><a href="\/ui\/packages\/[^"]+">([^<]+)<\/a><\/td>/g)].map(
      (m) => m[1],
    );
    assert.deepEqual(names, ['curl', 'curl-dev', 'libcurl']);
    assert.doesNotMatch((await page('/ui/search?q=secret')).text, /secret-tool/);
    assert.match(
      (await page('/ui/search?q=secret', { authorization: `Bearer ${TEST_TOKEN}` })).text,
      /secret-tool/,
    );
    assert.equal((await page('/ui/packages/hidden/musl/x86_64/secret-tool/1.0-r0')).status, 401);
    // A search for a LIKE wildcard is text.
    assert.match((await page('/ui/search?q=%25')).text, /Nothing matches/);
  });

  test('what a publisher wrote is shown as text: escaped, and no javascript: link', async () => {
    const res = await page(`/ui/packages/main/musl/x86_64/${HOSTILE.name}/${HOSTILE.version}`);
    assert.equal(res.status, 200);
    assert.doesNotMatch(res.text, /<script>window/);
    assert.doesNotMatch(res.text, /<img src=x/);
    assert.doesNotMatch(res.text, /<svg/);
    assert.doesNotMatch(res.text, /href="javascript:/i);
    assert.match(res.text, /&lt;script&gt;window.__pwned=1&lt;\/script&gt;/);
    assert.match(res.text, /javascript:window.__pwned=4/, 'the URL is shown, as text');
    const search = await page(`/ui/search?q=${encodeURIComponent('<script>')}`);
    assert.match(search.text, /value="&lt;script&gt;"/);
    assert.match(search.text, /evil-pkg/, 'found by its description');
  });

  test("signing in: only from reef's own pages, never through a link, and the cookie is not a key to the API", async () => {
    const form = (token: string, origin?: string) =>
      fetch(`${server.url}/ui/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(origin ? { origin } : {}) },
        body: new URLSearchParams({ token }).toString(),
      });
    assert.equal((await form(TEST_TOKEN, 'https://evil.example')).status, 403, 'another site');
    assert.equal((await form(TEST_TOKEN)).status, 403, 'no Origin');
    const bad = await form('reef_not-a-token', server.url);
    assert.equal(bad.status, 401);
    assert.match(await bad.text(), /not valid/);
    const ok = await form(TEST_TOKEN, server.url);
    assert.equal(ok.status, 303);
    const cookie = ok.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^reef_ui=/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /Secure/);
    assert.match(cookie, /SameSite=Strict/);
    assert.match(cookie, /Path=\/ui\//);
    const value = cookie.split(';')[0]!;
    // Pages read with it; the API and writes do not.
    assert.match((await page('/ui/', { cookie: value })).text, /hidden \/ musl/);
    assert.equal((await page('/api/v1/repos/hidden/musl/x86_64/packages', { cookie: value })).status, 401);
    const write = await fetch(`${server.url}/api/v1/repos/hidden`, {
      method: 'PUT',
      headers: { cookie: value, 'content-type': 'application/json' },
      body: '{"private":false}',
    });
    assert.equal(write.status, 401);
    // A revoked or unknown token in the cookie signs out rather than locking out.
    const stale = await page('/ui/', { cookie: 'reef_ui=reef_revoked' });
    assert.equal(stale.status, 200);
    assert.match(String(stale.headers.get('set-cookie')), /reef_ui=;/);
  });

  test('the package page shows the vulnerabilities uploaded records find in it', async () => {
    const admin = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };
    const none = await page('/ui/packages/main/musl/x86_64/curl/8.0-r0');
    assert.match(none.text, /No uploaded vulnerability record matches/);
    const res = await fetch(`${server.url}/api/v1/vulnerabilities`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({
        id: 'CGA-curl-0000-0001',
        modified: '2024-01-01T00:00:00Z',
        upstream: ['CVE-2099-0001'],
        affected: [
          {
            package: { ecosystem: 'Wolfi', name: 'curl' },
            ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '8.0-r1' }] }],
          },
        ],
      }),
    });
    assert.equal(res.status, 200);
    await fetch(`${server.url}/api/v1/repos/main`, {
      method: 'PUT',
      headers: admin,
      body: '{"distro":{"id":"wolfi"}}',
    });
    const shown = await page('/ui/packages/main/musl/x86_64/curl/8.0-r0');
    assert.match(
      shown.text,
      /<td>CGA-curl-0000-0001<\/td><td>this package<\/td><td><span class="bad">affected<\/span>/,
    );
  });
});
