import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { spdxWithOpenssl } from '../sbom/sbom-fixtures.ts';

/**
 * The package page's dependency links and the auditor's pages (components,
 * licences, the diff of two versions), over HTTP against packages published
 * for real: each page must agree with the JSON API it sits on and show only
 * what the caller may read.
 */

/** The package links of one section of a page: from its heading to the next h2. */
function linksIn(text: string, heading: string): string[] {
  const start = Math.max(text.indexOf(`<h1>${heading}`), text.indexOf(`<h2>${heading}`));
  assert.ok(start >= 0, `section ${heading}`);
  const end = text.indexOf('<h2>', start + 4);
  const section = text.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/<a href="(\/ui\/packages\/[^"]+)">/g)].map((m) => m[1]!);
}

describe('dependency links and auditor pages (HTTP)', () => {
  let server: TestServer;
  const page = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.url}${path}`, { headers, redirect: 'manual' });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  const admin = { authorization: `Bearer ${TEST_TOKEN}` };

  before(async () => {
    server = await startServer();
    const packages = [
      // libfoo 2.0 and 2.1 both provide so:libfoo.so.2: the newer one is the link.
      { name: 'libfoo', version: '2.0-r0', provides: ['so:libfoo.so.2=2.0'] },
      { name: 'libfoo', version: '2.1-r0', provides: ['so:libfoo.so.2=2.1', 'cmd:foo-config=2.1'] },
      { name: 'libfoo-compat', version: '1.0-r0', provides: ['so:libfoo.so.2=1.0'] },
      {
        name: 'foo-cli',
        version: '2.1-r0',
        depends: ['so:libfoo.so.2', 'busybox>=1.36', '!foo-legacy', 'not-here'],
        sbom: spdxWithOpenssl('foo-cli', '2.1-r0', '3.0.7-r0'),
      },
      {
        name: 'foo-cli',
        version: '2.2-r0',
        depends: ['so:libfoo.so.2'],
        sbom: spdxWithOpenssl('foo-cli', '2.2-r0', '3.0.8-r0', 'Apache-2.0 OR MIT'),
      },
      { name: 'busybox', version: '1.36.1-r0', license: 'GPL-2.0-only' },
      { name: 'foo-tools', version: '1.0-r0', depends: ['cmd:foo-config'] },
    ];
    for (const p of packages) {
      const apk = await buildApk({ depends: [], ...p });
      assert.equal((await publish(server, 'main', 'musl', apk)).status, 201, `${p.name}-${p.version}`);
    }
    // A private repository whose package also contains openssl and depends on libfoo's name.
    const secret = await buildApk({
      name: 'secret-tool',
      version: '1.0-r0',
      depends: ['libfoo'],
      license: 'LicenseRef-secret',
      sbom: spdxWithOpenssl('secret-tool', '1.0-r0', '3.0.1-r0'),
    });
    assert.equal((await publish(server, 'hidden', 'musl', secret)).status, 201);
    await makePrivate(server, 'hidden');
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('a dependency links to what satisfies it, by name or through provides; reverse dependencies too', async () => {
    const cli = await page('/ui/packages/main/musl/x86_64/foo-cli/2.1-r0');
    assert.equal(cli.status, 200);
    const depends = linksIn(cli.text, 'Depends on');
    assert.deepEqual(depends, [
      '/ui/packages/main/musl/x86_64/libfoo/2.1-r0',
      '/ui/packages/main/musl/x86_64/libfoo-compat/1.0-r0',
      '/ui/packages/main/musl/x86_64/busybox/1.36.1-r0',
    ]);
    assert.match(cli.text, /<code>!foo-legacy<\/code>: conflicts/);
    assert.match(cli.text, /<code>not-here<\/code> <span class="muted">\(not in this repository\)/);

    const lib = await page('/ui/packages/main/musl/x86_64/libfoo/2.1-r0');
    // Through its so: (foo-cli, both versions: the newest shown) and its cmd: (foo-tools);
    // never secret-tool, which depends on it by name from a private repository.
    assert.deepEqual(linksIn(lib.text, 'Required by'), [
      '/ui/packages/main/musl/x86_64/foo-cli/2.2-r0',
      '/ui/packages/main/musl/x86_64/foo-tools/1.0-r0',
    ]);
    const busybox = await page('/ui/packages/main/musl/x86_64/busybox/1.36.1-r0');
    assert.deepEqual(linksIn(busybox.text, 'Required by'), ['/ui/packages/main/musl/x86_64/foo-cli/2.1-r0']);
  });

  test('a deleted package leaves the dependency lists', async () => {
    const gone = await buildApk({ name: 'gone', version: '1.0-r0', depends: ['busybox'] });
    assert.equal((await publish(server, 'main', 'musl', gone)).status, 201);
    const before = await page('/ui/packages/main/musl/x86_64/busybox/1.36.1-r0');
    assert.ok(linksIn(before.text, 'Required by').includes('/ui/packages/main/musl/x86_64/gone/1.0-r0'));
    const del = await fetch(`${server.url}/api/v1/repos/main/musl/x86_64/gone/1.0-r0`, {
      method: 'DELETE',
      headers: admin,
    });
    assert.equal(del.status, 204, await del.text());
    const after = await page('/ui/packages/main/musl/x86_64/busybox/1.36.1-r0');
    assert.ok(!linksIn(after.text, 'Required by').includes('/ui/packages/main/musl/x86_64/gone/1.0-r0'));
  });

  test('components: the same packages as the API, in the versions asked, private ones only with a token', async () => {
    const query = 'name=openssl&version=%3C3.0.8';
    const api = (await (await fetch(`${server.url}/api/v1/components?${query}`)).json()) as {
      matches: Array<{ package: { name: string; version: string } }>;
    };
    assert.deepEqual(
      api.matches.map((m) => `${m.package.name}-${m.package.version}`),
      ['foo-cli-2.1-r0'],
    );
    const shown = await page(`/ui/components?${query}`);
    assert.equal(shown.status, 200);
    assert.deepEqual(linksIn(shown.text, 'Components'), ['/ui/packages/main/musl/x86_64/foo-cli/2.1-r0']);
    assert.match(shown.text, /value="&lt;3.0.8"/, 'the form keeps the query');
    const signedIn = await page(`/ui/components?${query}`, admin);
    assert.deepEqual(linksIn(signedIn.text, 'Components'), [
      '/ui/packages/main/musl/x86_64/foo-cli/2.1-r0',
      '/ui/packages/hidden/musl/x86_64/secret-tool/1.0-r0',
    ]);
    // A malformed range or cursor is the user's to fix: the form again, with a 400 and the reason.
    const bad = await page('/ui/components?name=openssl&version=%3C%3C%3E');
    assert.equal(bad.status, 400);
    assert.match(bad.text, /class="bad">&#39;&lt;&lt;&gt;&#39; is not a version constraint/);
    assert.match(String(bad.headers.get('content-type')), /^text\/html/);
    assert.equal((await fetch(`${server.url}/api/v1/components?name=openssl&version=%3C%3C%3E`)).status, 400);
    assert.equal((await page('/ui/components?name=openssl&after=not-a-cursor')).status, 400);
    assert.equal((await page('/ui/components?name=a&purl=pkg:apk/a')).status, 400);
    // Empty fields are no query: the form alone.
    const empty = await page('/ui/components?name=&purl=&version=');
    assert.equal(empty.status, 200);
    assert.doesNotMatch(empty.text, /<table/);
  });

  test('licences: packages outside the approved list, never a private one without a token', async () => {
    const shown = await page('/ui/licenses?expression=MIT&mode=conflicts');
    assert.equal(shown.status, 200);
    const names = linksIn(shown.text, 'Licences').map((l) => l.split('/').slice(-2).join('-'));
    // buildApk declares MIT unless told otherwise; busybox is GPL.
    assert.deepEqual(names, ['busybox-1.36.1-r0']);
    assert.doesNotMatch(shown.text, /secret-tool|LicenseRef-secret/);
    const signedIn = await page('/ui/licenses?expression=MIT&mode=conflicts', admin);
    assert.match(signedIn.text, /secret-tool/);
    const bad = await page('/ui/licenses?expression=MIT+AND+(');
    assert.equal(bad.status, 400);
    assert.match(bad.text, /not an SPDX licence expression/);
  });

  test('the diff of two versions: what the API says, with the versions to pick from', async () => {
    const base = '/ui/packages/main/musl/x86_64/foo-cli/2.2-r0';
    const cli = await page(base);
    assert.match(cli.text, new RegExp(`href="${base}/diff\\?against=2\\.1-r0">compare<`));
    const diff = await page(`${base}/diff?against=2.1-r0`);
    assert.equal(diff.status, 200);
    const api = (await (
      await fetch(`${server.url}/api/v1/packages/main/musl/x86_64/foo-cli/2.2-r0/sbom/diff?against=2.1-r0`)
    ).json()) as {
      changed: Array<{ before: { version: string }; after: { name: string; version: string } }>;
    };
    assert.ok(api.changed.some((c) => c.after.name === 'openssl'));
    for (const c of api.changed) {
      assert.ok(
        diff.text.includes(`<td>${c.after.name}</td><td>${c.before.version}</td><td>${c.after.version}</td>`),
        `${c.after.name} in the page`,
      );
    }
    assert.match(diff.text, /Apache-2.0 → Apache-2.0 OR MIT/);
    assert.equal((await page(`${base}/diff?against=9.9-r0`)).status, 404);
    assert.equal((await page('/ui/packages/hidden/musl/x86_64/secret-tool/1.0-r0/diff')).status, 401);
  });

  test('an SBOM component name cannot pass for another: controls and bidi overrides are shown as escapes', async () => {
    const doc = JSON.parse(spdxWithOpenssl('tricky', '1.0-r0', '3.0.8-r0')) as {
      packages: Array<Record<string, unknown>>;
    };
    doc.packages.push({
      SPDXID: 'SPDXRef-Package-tricky-part',
      name: 'libevil\u202Etxt.so\nopenssl',
      versionInfo: '1.0',
      downloadLocation: 'NOASSERTION',
    });
    const apk = await buildApk({ name: 'tricky', version: '1.0-r0', depends: [], sbom: JSON.stringify(doc) });
    assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
    const shown = await page('/ui/packages/main/musl/x86_64/tricky/1.0-r0');
    assert.ok(
      shown.text.includes('<td>libevil\\u{202e}txt.so\\x0aopenssl</td>'),
      'escaped in the SBOM table',
    );
    assert.ok(!shown.text.includes('\u202E'), 'no override character reaches the page');
  });

  test('every .PKGINFO line is on the page, those reef has no field for too', async () => {
    const apk = await buildApk({
      name: 'odd',
      version: '1.0-r0',
      depends: [],
      extraPkginfo: [
        'replaces = busybox',
        'replaces_priority = 10',
        'triggers = /usr/share/odd/*',
        'x-custom = <b>kept</b>',
      ],
    });
    assert.equal((await publish(server, 'main', 'musl', apk)).status, 201);
    const shown = await page('/ui/packages/main/musl/x86_64/odd/1.0-r0');
    for (const [k, v] of [
      ['pkgname', 'odd'],
      ['replaces', 'busybox'],
      ['replaces_priority', '10'],
      ['triggers', '/usr/share/odd/*'],
      ['x-custom', '&lt;b&gt;kept&lt;/b&gt;'],
    ]) {
      assert.ok(shown.text.includes(`<tr><td><code>${k}</code></td><td>${v}</td></tr>`), `${k} = ${v}`);
    }
  });

  test('errors are pages: the status and code of the API, no Basic-auth dialog', async () => {
    const missing = await page('/ui/packages/main/musl/x86_64/nope/1.0-r0');
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers.get('content-type')), /^text\/html/);
    assert.match(missing.text, /PACKAGE_NOT_FOUND/);
    assert.match(String(missing.headers.get('content-security-policy')), /default-src 'none'/);
    const privatePage = await page('/ui/packages/hidden/musl/x86_64/secret-tool/1.0-r0');
    assert.equal(privatePage.status, 401);
    assert.equal(privatePage.headers.get('www-authenticate'), null);
    // The API keeps its JSON errors and its challenge.
    const api = await fetch(`${server.url}/api/v1/repos/hidden/musl/x86_64/packages`);
    assert.equal(api.status, 401);
    assert.ok(api.headers.get('www-authenticate'));
  });
});
