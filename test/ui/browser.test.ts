import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { buildApk } from '../helpers/apk-builder.ts';
import { HOSTILE, publishHostile } from '../helpers/hostile-package.ts';
import { publish, removeDir, startServer, type TestServer } from '../helpers/server.ts';

/**
 * The interface in a real browser: Debian's Chromium driven by
 * playwright-core (../shared/docs/browser-tests.md). `.ci/run` installs
 * Chromium; elsewhere the test skips when it is missing. Screenshots of each
 * page are kept in a temp folder the test names.
 */
const CHROMIUM = '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
if (missing && process.env.CI === 'true')
  throw new Error(`CI: ${CHROMIUM} is missing (.ci/run installs chromium)`);

describe('web interface in Chromium', {
  skip: missing && `needs ${CHROMIUM} (apt-get install chromium)`,
}, () => {
  let server: TestServer;
  let browser: Browser;
  const shots = mkdtempSync(join(tmpdir(), 'reef-ui-shots-'));

  before(async () => {
    server = await startServer();
    await publishHostile(server);
    const lib = await buildApk({
      name: 'libfoo',
      version: '2.1-r0',
      depends: [],
      provides: ['so:libfoo.so.2=2.1'],
    });
    assert.equal((await publish(server, 'main', 'musl', lib)).status, 201);
    const app = await buildApk({
      name: 'foo-cli',
      version: '2.1-r0',
      depends: ['so:libfoo.so.2'],
      description: 'the foo tool',
    });
    assert.equal((await publish(server, 'main', 'musl', app)).status, 201);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await server.close();
    removeDir(server.dataDir);
  });

  test('search, open a package, follow a dependency, open its SBOM', async (t) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${server.url}/`);
      assert.equal(new URL(page.url()).pathname, '/ui/');
      await page.screenshot({ path: join(shots, 'home.png'), fullPage: true });
      await page.fill('input[name=q]', 'foo');
      await page.click('button[type=submit]');
      await page.screenshot({ path: join(shots, 'search.png'), fullPage: true });
      await page.click('a:text-is("foo-cli")');
      assert.equal(await page.textContent('h1'), 'foo-cli 2.1-r0');
      await page.screenshot({ path: join(shots, 'package.png'), fullPage: true });
      // The dependency leads to the package that provides it.
      await page.click('a:has-text("so:libfoo.so.2")');
      await page.click('a:text-is("libfoo")');
      assert.equal(await page.textContent('h1'), 'libfoo 2.1-r0');
      const sbom = await page.getAttribute('a:text-is("SPDX 2.3")', 'href');
      const res = await page.request.get(sbom!);
      assert.equal(res.status(), 200);
      assert.equal(((await res.json()) as { spdxVersion: string }).spdxVersion, 'SPDX-2.3');
      t.diagnostic(`screenshots in ${shots}`);
    } finally {
      await context.close();
    }
  });

  test("a hostile package's fields run nothing in the browser", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      for (const path of [
        `/ui/packages/main/musl/x86_64/${HOSTILE.name}/${HOSTILE.version}`,
        `/ui/search?q=${encodeURIComponent('<script>')}`,
        '/ui/search?q=evil',
      ]) {
        await page.goto(`${server.url}${path}`);
        assert.equal(
          await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned),
          undefined,
          path,
        );
        assert.equal(await page.locator('script, svg, img, iframe').count(), 0, path);
        assert.equal(await page.locator('a[href^="javascript:" i]').count(), 0, path);
      }
      // The description is there, as text.
      await page.goto(`${server.url}/ui/packages/main/musl/x86_64/${HOSTILE.name}/${HOSTILE.version}`);
      assert.ok((await page.textContent('main'))!.includes('<script>window.__pwned=1</script>'));
      await page.screenshot({ path: join(shots, 'hostile.png'), fullPage: true });
      assert.deepEqual(dialogs, []);
    } finally {
      await context.close();
    }
  });
});
