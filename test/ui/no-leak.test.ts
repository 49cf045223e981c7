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
import { spdxWithOpenssl } from '../sbom/sbom-fixtures.ts';

/**
 * No page of the interface shows anything of a private repository to a
 * caller who may not read it. A crawler follows every link under /ui/ from
 * the home page and from queries that would find the private package (its
 * name, what it provides, its SBOM components, its licence), and looks for
 * a marker that every field of the private package carries. The same crawl
 * with a token that may read it must find the marker, so the test can fail.
 */

const MARK = 'zzleakmark';
const admin = { authorization: `Bearer ${TEST_TOKEN}` };

describe('no page leaks a private repository', () => {
  let server: TestServer;
  let otherReader: string;

  before(async () => {
    server = await startServer();
    const publicPackages = [
      { name: 'busybox', version: '1.36.1-r0', provides: ['cmd:sh=1.36.1-r0'] },
      {
        name: 'curl',
        version: '8.0-r0',
        depends: ['busybox'],
        sbom: spdxWithOpenssl('curl', '8.0-r0', '3.0.7-r0'),
      },
      {
        name: 'curl',
        version: '8.1-r0',
        depends: ['busybox'],
        sbom: spdxWithOpenssl('curl', '8.1-r0', '3.0.8-r0'),
      },
    ];
    for (const p of publicPackages) {
      assert.equal(
        (await publish(server, 'main', 'musl', await buildApk({ depends: [], ...p }))).status,
        201,
      );
    }
    // The private package names the public ones (it depends on them, shares their components)
    // so that every page about them has a reason to mention it.
    for (const version of ['1.0-r0', '1.1-r0']) {
      const secret = await buildApk({
        name: `${MARK}-tool`,
        version,
        description: `${MARK} description`,
        url: `https://${MARK}.example/`,
        license: `LicenseRef-${MARK}`,
        depends: ['busybox', 'cmd:sh', 'curl'],
        provides: [`so:lib${MARK}.so.1=1`, 'cmd:curl-helper=1'],
        sbom: spdxWithOpenssl(`${MARK}-tool`, version, '3.0.1-r0'),
      });
      assert.equal((await publish(server, 'hidden', 'musl', secret)).status, 201);
    }
    assert.equal(
      (await publish(server, 'other', 'musl', await buildApk({ name: 'other-tool', depends: [] }))).status,
      201,
    );
    for (const repo of ['hidden', 'other']) {
      await makePrivate(server, repo);
    }
    otherReader = await createToken(server, 'other-reader', ['other:read']);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  /** Every page under /ui/ reachable from the seeds, with its text. */
  async function crawl(headers: Record<string, string>): Promise<Map<string, string>> {
    const seeds = [
      '/ui/',
      `/ui/search?q=${MARK}`,
      '/ui/search?q=curl',
      '/ui/search?q=so:lib',
      '/ui/search?q=cmd:',
      '/ui/search?q=tool',
      '/ui/search?repo=hidden',
      '/ui/search?repo=main',
      '/ui/components?name=openssl',
      `/ui/components?name=${MARK}-tool`,
      `/ui/components?purl=${encodeURIComponent('pkg:apk/wolfi/openssl')}`,
      '/ui/licenses?expression=MIT&mode=conflicts',
      `/ui/licenses?expression=LicenseRef-${MARK}&mode=satisfies`,
      '/ui/packages/main/musl/x86_64/busybox/1.36.1-r0',
      '/ui/packages/main/musl/x86_64/curl/8.1-r0/diff?against=8.0-r0',
    ];
    const seen = new Map<string, string>();
    const queue = [...seeds];
    while (queue.length > 0 && seen.size < 500) {
      const path = queue.shift()!;
      if (seen.has(path)) continue;
      const res = await fetch(`${server.url}${path}`, { headers, redirect: 'manual' });
      const text = await res.text();
      seen.set(path, `${res.status} ${text}`);
      for (const m of text.matchAll(/href="(\/ui\/[^"]*)"/g)) {
        const link = m[1]!.replaceAll('&amp;', '&');
        if (!link.startsWith('/ui/static/') && !seen.has(link)) queue.push(link);
      }
    }
    return seen;
  }

  /**
   * Pages showing the marker, beyond the echo of the caller's own query (the
   * search box, a form field, the title and heading that repeat it).
   */
  const leaks = (pages: Map<string, string>) =>
    [...pages]
      .filter(([, text]) =>
        text
          .replace(/value="[^"]*"/g, '')
          .replace(/<title>.*?<\/title>|<h1>.*?<\/h1>/gs, '')
          .toLowerCase()
          .includes(MARK),
      )
      .map(([path]) => path);

  test('anonymous: no page shows the private package, wherever the crawl goes', async () => {
    const pages = await crawl({});
    assert.ok(pages.size >= 15, `crawled ${pages.size} pages`);
    assert.deepEqual(leaks(pages), []);
    // Nor the other private repository's name.
    assert.deepEqual(
      [...pages].filter(([, text]) => text.includes('other-tool')).map(([path]) => path),
      [],
    );
  });

  test('a token that reads another private repository sees that one, never this one', async () => {
    const pages = await crawl({ authorization: `Bearer ${otherReader}` });
    assert.deepEqual(leaks(pages), []);
    assert.ok(
      [...pages.values()].some((text) => text.includes('other-tool')),
      'its own repository is shown',
    );
  });

  test('the crawl finds the marker where it may: with a token that reads the repository', async () => {
    const pages = await crawl(admin);
    const found = leaks(pages);
    // Every way in: search (by name and by what it provides), components, licences, its own pages.
    // (Reverse dependencies stay within one index: main's busybox never lists it.)
    for (const expected of [
      `/ui/search?q=${MARK}`,
      '/ui/search?q=cmd:',
      '/ui/components?name=openssl',
      `/ui/licenses?expression=LicenseRef-${MARK}&mode=satisfies`,
      '/ui/search?repo=hidden',
      `/ui/packages/hidden/musl/x86_64/${MARK}-tool/1.1-r0`,
    ]) {
      assert.ok(found.includes(expected), `${expected} shows it to a reader (found on ${found.join(', ')})`);
    }
  });
});
