import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  createToken,
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';

type Found = { repo: string; libc: string; arch: string; name: string; version: string };

/** Text that is FTS5 query syntax, or breaks a naive quoting of it; each must be searched as text. */
const HOSTILE_QUERIES = [
  '"',
  '""',
  '"curl',
  'curl"',
  'a"b"c',
  '*',
  'cur*',
  'curl*',
  '^curl',
  'curl OR libcurl',
  'OR',
  'AND',
  'NOT',
  'NEAR',
  'NEAR(curl libcurl)',
  'NEAR(curl libcurl, 2)',
  'curl NOT dev',
  '-curl',
  '- curl',
  'name:curl',
  'so:',
  ':',
  '{name description}: curl',
  '(curl)',
  ')',
  '(',
  'cu rl',
  '+curl',
  "'",
  "'; DROP TABLE packages; --",
  '\\',
  '%',
  '_',
  '%_%',
  '\u0000',
  'cur\u0000l',
  '\u0000\u0000\u0000',
  'ü',
  'ｃｕｒｌ',
  '😀😀😀',
  ' \t\n',
  'a'.repeat(200),
];

describe('package search (HTTP: /api/v1/search and /ui/search)', () => {
  let server: TestServer;
  let reader: string;
  const get = async (path: string, token?: string) => {
    const res = await fetch(`${server.url}${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const text = await res.text();
    return {
      status: res.status,
      text,
      json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined,
    };
  };
  const search = async (query: Record<string, string>, token?: string) => {
    const res = await get(`/api/v1/search?${new URLSearchParams(query)}`, token);
    assert.equal(res.status, 200, res.text);
    return res.json as { packages: Found[]; next: string | null };
  };
  const names = async (query: Record<string, string>, token?: string) =>
    (await search(query, token)).packages.map((p) => p.name);
  const uiNames = async (q: string, token?: string) => {
    const res = await get(`/ui/search?q=${encodeURIComponent(q)}`, token);
    assert.equal(res.status, 200);
    return [...res.text.matchAll(/<td><a href="\/ui\/packages\/[^"]+">([^<]+)<\/a><\/td>/g)].map((m) => m[1]);
  };
  const publishNew = async (repo: string, libc: string, options: Parameters<typeof buildApk>[0]) => {
    const res = await publish(server, repo, libc, await buildApk({ depends: [], ...options }));
    assert.equal(res.status, 201, JSON.stringify(res.json));
  };

  before(async () => {
    server = await startServer();
    // Names chosen so each ranking tier has members, and some match only by description or provides.
    for (const [name, description, provides] of [
      ['curl', 'URL retrieval utility', ['cmd:curl=8.0-r0']],
      ['curl-dev', 'headers for development', ['pc:libcurl=8.0']],
      ['curlie', 'a frontend to it', []],
      ['libcurl', 'the library', ['so:libcurl.so.4=4.8.0']],
      ['wget', 'retrieves files, unlike curl it has no library', []],
      ['busybox', 'tiny versions of common utilities', ['cmd:wget=1.36', 'cmd:ls=1.36']],
      ['openssl', 'toolkit for TLS', ['so:libssl.so.3=3.0', 'so:libcrypto.so.3=3.0']],
      ['jq', 'command-line JSON processor', ['cmd:jq=1.7']],
      ['jql', 'a JSON query language', []],
      ['ajq', 'not a jq', []],
    ] as const) {
      await publishNew('main', 'musl', { name, version: '8.0-r0', description, provides: [...provides] });
    }
    await publishNew('main', 'glibc', {
      name: 'curl',
      version: '8.1-r0',
      description: 'URL retrieval utility',
    });
    await publishNew('main', 'musl', {
      name: 'curl',
      version: '8.0-r0',
      arch: 'aarch64',
      description: 'URL retrieval utility',
    });
    await publishNew('other', 'musl', { name: 'curl-extra', version: '1.0-r0', description: 'more' });
    await publishNew('hidden', 'musl', {
      name: 'secret-curl',
      version: '1.0-r0',
      description: 'internal curl build',
      provides: ['cmd:secret-curl=1.0'],
    });
    await makePrivate(server, 'hidden');
    reader = await createToken(server, 'reads-main', ['main:read', 'other:publish']);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('ranking: exact name, then names starting with it, other names, then description or provides', async () => {
    const found = await names({ q: 'curl', repo: 'main', libc: 'musl', arch: 'x86_64' });
    assert.deepEqual(found, ['curl', 'curl-dev', 'curlie', 'libcurl', 'wget']);
    // Everything readable: the same tiers, several versions and arches of one name together.
    const all = (await search({ q: 'curl' })).packages;
    assert.deepEqual(
      all.map((p) => `${p.repo}/${p.libc}/${p.arch}/${p.name}`),
      [
        'main/musl/aarch64/curl',
        'main/glibc/x86_64/curl',
        'main/musl/x86_64/curl',
        'main/musl/x86_64/curl-dev',
        'other/musl/x86_64/curl-extra',
        'main/musl/x86_64/curlie',
        'main/musl/x86_64/libcurl',
        'main/musl/x86_64/wget',
      ],
    );
    // Case does not matter, as with LIKE before.
    assert.deepEqual(await names({ q: 'CURL', repo: 'main', libc: 'musl', arch: 'x86_64' }), found);
    // The page shows the same order.
    assert.deepEqual(
      await uiNames('curl'),
      all.map((p) => p.name),
    );
  });

  test('text only in descriptions or provides (tier 3): after the names, newest first', async () => {
    // libcurl by name; then openssl (so:libssl), wget ("library"), curl-dev (pc:libcurl), newest upload first.
    assert.deepEqual(await names({ q: 'lib' }), ['libcurl', 'openssl', 'wget', 'curl-dev']);
    assert.deepEqual(await uiNames('lib'), ['libcurl', 'openssl', 'wget', 'curl-dev']);
  });

  test('what a package provides is searched: so:, cmd:, pc:', async () => {
    assert.deepEqual(await names({ q: 'so:libcurl.so.4' }), ['libcurl']);
    assert.deepEqual(await names({ q: 'libcrypto' }), ['openssl']);
    assert.deepEqual(await names({ q: 'cmd:wget' }), ['busybox']);
    assert.deepEqual(await names({ q: 'pc:libcurl' }), ['curl-dev']);
    assert.deepEqual(await names({ q: 'cmd:jq' }), ['jq']);
    assert.deepEqual(await uiNames('so:libssl'), ['openssl']);
  });

  test('filters: repository, libc, architecture', async () => {
    const keys = async (query: Record<string, string>) =>
      (await search({ q: 'curl', ...query })).packages
        .filter((p) => p.name === 'curl')
        .map((p) => `${p.repo}/${p.libc}/${p.arch}/${p.version}`);
    assert.deepEqual(await keys({ libc: 'glibc' }), ['main/glibc/x86_64/8.1-r0']);
    assert.deepEqual(await keys({ arch: 'aarch64' }), ['main/musl/aarch64/8.0-r0']);
    assert.deepEqual(await keys({ libc: 'musl', arch: 'x86_64' }), ['main/musl/x86_64/8.0-r0']);
    assert.deepEqual(await names({ q: 'curl', repo: 'other' }), ['curl-extra']);
    assert.deepEqual(await names({ q: 'curl', repo: 'nope' }), []);
    assert.equal((await get('/api/v1/search?q=curl&libc=uclibc')).status, 400);
  });

  test('a private repository: never to an anonymous caller or a token without read on it', async () => {
    for (const q of ['secret', 'curl', 'cmd:secret', 'se', '']) {
      const anonymous = (await search({ q })).packages.map((p) => p.repo);
      assert.ok(!anonymous.includes('hidden'), `anonymous, q=${q}`);
      const withoutRead = (await search({ q }, reader)).packages.map((p) => p.repo);
      assert.ok(!withoutRead.includes('hidden'), `main:read token, q=${q}`);
      assert.ok(!(await search({ q, repo: 'hidden' }, reader)).packages.length);
      assert.ok(!(await uiNames(q, reader)).includes('secret-curl'));
    }
    assert.deepEqual(await names({ q: 'secret' }, TEST_TOKEN), ['secret-curl']);
    assert.deepEqual(await uiNames('secret', TEST_TOKEN), ['secret-curl']);
    // A bad token is refused, not treated as anonymous.
    assert.equal((await get('/api/v1/search?q=curl', 'reef_not-a-token')).status, 401);
  });

  test('FTS5 syntax and other hostile text is searched literally: 200, never an SQLite error', async () => {
    for (const q of HOSTILE_QUERIES) {
      for (const path of ['/api/v1/search', '/ui/search']) {
        const res = await get(`${path}?q=${encodeURIComponent(q)}`);
        assert.equal(res.status, 200, `${path} q=${JSON.stringify(q)}: ${res.text.slice(0, 200)}`);
      }
    }
    // Bytes that are not UTF-8 (a lone surrogate, an overlong NUL, a stray byte), as a client may send them.
    for (const raw of ['%ED%A0%80', '%C0%80', '%FF', '%FF%FE%FD']) {
      for (const path of ['/api/v1/search', '/ui/search']) {
        const res = await get(`${path}?q=${raw}`);
        assert.equal(res.status, 200, `${path} q=${raw}: ${res.text.slice(0, 200)}`);
      }
    }
    // Literal: an operator is text, quotes are characters, a star is not a prefix query.
    assert.deepEqual(await names({ q: 'curl OR libcurl' }), []);
    assert.deepEqual(await names({ q: 'cur*' }), []);
    assert.deepEqual(await names({ q: '"curl"' }), []);
    assert.deepEqual(await names({ q: 'cmd:curl' }), ['curl']);
    assert.deepEqual(await names({ q: '%' }), []);
    assert.deepEqual(await names({ q: 'json quer' }), ['jql'], 'a space is a character too');
    assert.ok(!server.logs.some((l) => /SQLITE|fts5/i.test(l)), 'nothing reached SQLite as syntax');
  });

  test('1 or 2 characters match names by their start, exact name first', async () => {
    assert.deepEqual(await names({ q: 'jq' }), ['jq', 'jql']);
    assert.deepEqual(await names({ q: 'J' }), ['jq', 'jql']);
    assert.deepEqual(await names({ q: 'cu', repo: 'main', libc: 'musl', arch: 'x86_64' }), [
      'curl',
      'curl-dev',
      'curlie',
    ]);
    assert.deepEqual(await uiNames('jq'), ['jq', 'jql']);
    // Three characters and more: any substring.
    assert.deepEqual(await names({ q: 'jql' }), ['jql']);
    assert.deepEqual(await names({ q: ' jq' }), ['jq', 'jql'], 'the text is trimmed');
  });

  test('pages: the cursor walks the whole ranked list once', async () => {
    const whole = (await search({ q: 'curl', limit: '100' })).packages;
    assert.equal((await search({ q: 'curl', limit: '100' })).next, null);
    // `lib` and `curl` cross from names (tiers 0 to 2) to descriptions and provides (tier 3).
    for (const q of ['curl', 'lib', '', 'c']) {
      const expected = (await search({ q, limit: '100' })).packages;
      for (const limit of ['1', '3']) {
        const seen: Found[] = [];
        let after: string | null = null;
        do {
          const page: { packages: Found[]; next: string | null } = await search({
            q,
            limit,
            ...(after ? { after } : {}),
          });
          assert.ok(page.packages.length <= Number(limit));
          seen.push(...page.packages);
          after = page.next;
        } while (after);
        assert.deepEqual(seen, expected, `q=${q}, pages of ${limit}`);
      }
    }
    assert.ok(whole.length > 3);
    assert.equal((await get('/api/v1/search?q=curl&after=bm90LWEtY3Vyc29y')).status, 400);
    // A tier-3 cursor holds an id only; [tier, name, id] is for names.
    const cursor = (key: unknown) => Buffer.from(JSON.stringify(key)).toString('base64url');
    assert.equal((await get(`/api/v1/search?q=curl&after=${cursor([3, 'wget', 5])}`)).status, 400);
    assert.equal((await get(`/api/v1/search?q=curl&after=${cursor([2, 5])}`)).status, 400);
    assert.equal((await get(`/api/v1/search?q=curl&after=${cursor([3, 1_000_000])}`)).status, 200);
    assert.equal((await get('/api/v1/search?q=curl&limit=101')).status, 400);
    assert.equal((await get('/api/v1/search?q=curl&limit=0')).status, 400);
  });

  test('packages are found once published and no longer once deleted', async () => {
    assert.deepEqual(await names({ q: 'zstd' }), []);
    await publishNew('main', 'musl', {
      name: 'zstd',
      version: '1.5-r0',
      description: 'fast compression',
      provides: ['cmd:zstdcat=1.5'],
    });
    assert.deepEqual(await names({ q: 'zstdcat' }), ['zstd']);
    assert.deepEqual(await names({ q: 'zs' }), ['zstd']);
    const del = await fetch(`${server.url}/api/v1/repos/main/musl/x86_64/zstd/1.5-r0`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    assert.equal(del.status, 204);
    for (const q of ['zstd', 'zstdcat', 'compression', 'zs']) assert.deepEqual(await names({ q }), [], q);
    assert.deepEqual(await uiNames('zstd'), []);
  });
});
