import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { buildApk } from '../helpers/apk-builder.ts';
import { HOSTILE, publishHostile } from '../helpers/hostile-package.ts';
import { ROOT } from '../helpers/reef-cli.ts';
import {
  createToken,
  makePrivate,
  publish,
  removeDir,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { sharedFixture, sharedFixturesPresent } from '../helpers/shared-fixtures.ts';
import { spdxWithOpenssl } from '../sbom/sbom-fixtures.ts';

/**
 * The interface in a real browser: Debian's Chromium driven by
 * playwright-core (Playwright's own browser download needs the network).
 * `.ci/run` installs Chromium; elsewhere the test skips when it is missing. A
 * screenshot of each page is kept in $REEF_TEST_ARTIFACTS/ui-screenshots
 * (`.ci/run` sets it and lists them), or else in a temp folder the test names.
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
  const shots = process.env.REEF_TEST_ARTIFACTS
    ? join(process.env.REEF_TEST_ARTIFACTS, 'ui-screenshots')
    : mkdtempSync(join(tmpdir(), 'reef-ui-shots-'));
  mkdirSync(shots, { recursive: true });
  /** Pages of real melange-built packages (from the shared corpus, when present). */
  const realPages: string[] = [];

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
    for (const [version, openssl] of [
      ['2.1-r0', '3.0.7-r0'],
      ['2.2-r0', '3.0.8-r0'],
    ] as const) {
      const app = await buildApk({
        name: 'foo-cli',
        version,
        depends: ['so:libfoo.so.2'],
        description: 'the foo tool',
        sbom: spdxWithOpenssl('foo-cli', version, openssl),
      });
      assert.equal((await publish(server, 'main', 'musl', app)).status, 201);
    }
    if (sharedFixturesPresent) {
      // Real packages built by melange, with their embedded SBOMs, as Wolfi publishes them.
      const dir = sharedFixture('real', 'melange');
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.apk'))) {
        const res = await publish(server, 'wolfi', 'glibc', readFileSync(join(dir, file)));
        if (res.status !== 201) continue; // a fixture reef refuses on purpose (e.g. an unsigned test file)
        const pkg = res.json as { arch: string; name: string; version: string };
        realPages.push(`/ui/packages/wolfi/glibc/${pkg.arch}/${pkg.name}/${pkg.version}`);
      }
      assert.ok(realPages.length >= 3, `real melange packages published: ${realPages.join(' ')}`);
    }
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
      await page.click('main a[href$="/foo-cli/2.2-r0"]');
      assert.equal(await page.textContent('h1'), 'foo-cli 2.2-r0');
      await page.screenshot({ path: join(shots, 'package.png'), fullPage: true });
      // The dependency leads to the package that provides it, which lists foo-cli as needing it.
      assert.match((await page.textContent('main li:has(a:text-is("libfoo"))'))!, /so:libfoo\.so\.2/);
      await page.click('main li a:text-is("libfoo")');
      assert.equal(await page.textContent('h1'), 'libfoo 2.1-r0');
      await page.screenshot({ path: join(shots, 'dependency.png'), fullPage: true });
      await page.click('main ul.columns a:text-is("foo-cli")');
      assert.equal(await page.textContent('h1'), 'foo-cli 2.2-r0', 'required by: the newest foo-cli');
      // Its SBOM: the components on the page, and the SPDX document behind the link.
      assert.equal(await page.locator('main td:text-is("openssl")').count(), 1);
      const sbom = await page.getAttribute('a:text-is("SPDX 2.3")', 'href');
      const res = await page.request.get(sbom!);
      assert.equal(res.status(), 200);
      const doc = (await res.json()) as { spdxVersion: string; packages: Array<{ name: string }> };
      assert.equal(doc.spdxVersion, 'SPDX-2.3');
      assert.ok(doc.packages.some((p) => p.name === 'openssl'));
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

  test('sign in with a token to see a private repository; the token stays out of scripts and pages', async () => {
    const secret = await buildApk({ name: 'secret-tool', version: '1.0-r0', depends: [] });
    assert.equal((await publish(server, 'hidden', 'musl', secret)).status, 201);
    await makePrivate(server, 'hidden');
    const token = await createToken(server, 'auditor-ui', ['hidden:read']);

    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${server.url}/ui/`);
      assert.equal(await page.locator('text=hidden / musl').count(), 0, 'not before signing in');
      await page.click('a:text-is("Sign in")');
      await page.fill('input[name=token]', 'reef_not-a-token');
      await page.click('main button[type=submit]');
      assert.match((await page.textContent('main'))!, /not valid/);
      await page.fill('input[name=token]', token);
      await page.click('main button[type=submit]');
      assert.equal(new URL(page.url()).pathname, '/ui/');
      assert.equal(
        await page.locator('text=hidden / musl').count(),
        1,
        'the private repository, once signed in',
      );
      assert.match((await page.textContent('header'))!, /auditor-ui/);
      await page.screenshot({ path: join(shots, 'signed-in.png'), fullPage: true });
      // Scripts cannot read the cookie, and the token is on no page.
      assert.equal(await page.evaluate(() => document.cookie), '');
      const cookie = (await context.cookies()).find((c) => c.name === 'reef_ui');
      assert.ok(cookie?.httpOnly && cookie.secure && cookie.sameSite === 'Strict' && cookie.path === '/ui/');
      await page.goto(`${server.url}/ui/packages/hidden/musl/x86_64/secret-tool/1.0-r0`);
      assert.equal(await page.textContent('h1'), 'secret-tool 1.0-r0');
      assert.ok(!(await page.content()).includes(token), 'the token is not in the page');
      // The cookie is for pages only: the API does not take it.
      const api = await page.request.get(`${server.url}/api/v1/repos/hidden/musl/x86_64/packages`);
      assert.equal(api.status(), 401);
      await page.goto(`${server.url}/ui/`);
      await page.click('header button:text-is("Sign out")');
      assert.equal(await page.locator('text=hidden / musl').count(), 0, 'signed out');
    } finally {
      await context.close();
    }
  });

  test('an auditor finds a component in a version range, checks licences and compares two versions', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${server.url}/ui/`);
      await page.click('header a:text-is("Components")');
      await page.fill('input[name=name]', 'openssl');
      await page.fill('input[name=version]', '<3.0.8');
      await page.click('main button[type=submit]');
      const found = await page.locator('main tbody tr').allTextContents();
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0]!, /foo-cli.*2\.1-r0.*openssl.*3\.0\.7-r0/s);
      await page.screenshot({ path: join(shots, 'components.png'), fullPage: true });

      await page.click('header a:text-is("Licences")');
      await page.fill('input[name=expression]', 'Apache-2.0');
      await page.selectOption('select[name=mode]', 'conflicts');
      await page.click('main button[type=submit]');
      // buildApk declares MIT: every package here is outside an Apache-only list.
      assert.ok((await page.locator('main tbody tr').count()) >= 3);
      await page.screenshot({ path: join(shots, 'licences.png'), fullPage: true });

      await page.goto(`${server.url}/ui/packages/main/musl/x86_64/foo-cli/2.2-r0`);
      await page.click('main a:text-is("compare")');
      const changed = await page.locator('main tr:has(td:text-is("openssl"))').textContent();
      assert.match(changed!, /3\.0\.7-r0.*3\.0\.8-r0/s);
      await page.screenshot({ path: join(shots, 'diff.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  test('real melange-built packages: every page renders its fields and SBOM', {
    skip: !sharedFixturesPresent && 'needs the shared fixture corpus',
  }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      for (const path of realPages) {
        const res = await page.goto(`${server.url}${path}`);
        assert.equal(res?.status(), 200, path);
        const [name, version] = path.split('/').slice(-2);
        assert.equal(await page.textContent('h1'), `${name} ${version}`);
        assert.ok(
          (await page.locator('main h2:has-text("SBOM") .muted').textContent())!.match(/^\d+ components$/),
        );
        await page.screenshot({ path: join(shots, `real-${name}.png`), fullPage: true });
      }
    } finally {
      await context.close();
    }
  });

  test('readable on a phone: no page is wider than the screen (wide tables scroll on their own)', async () => {
    const context = await browser.newContext({
      viewport: { width: 360, height: 780 },
      isMobile: true,
      hasTouch: true,
    });
    const page = await context.newPage();
    const tooWide: string[] = [];
    try {
      for (const path of [
        '/ui/',
        '/ui/search?q=foo',
        '/ui/packages/main/musl/x86_64/foo-cli/2.2-r0',
        '/ui/packages/main/musl/x86_64/foo-cli/2.2-r0/diff?against=2.1-r0',
        '/ui/components?name=openssl',
        '/ui/licenses?expression=Apache-2.0',
        '/ui/sign-in',
        `/ui/packages/main/musl/x86_64/${HOSTILE.name}/${HOSTILE.version}`,
        ...realPages,
      ]) {
        await page.goto(`${server.url}${path}`);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        if (width > 360) tooWide.push(`${path}: ${width}px`);
      }
      await page.goto(`${server.url}/ui/packages/main/musl/x86_64/foo-cli/2.2-r0`);
      await page.screenshot({ path: join(shots, 'phone-package.png'), fullPage: true });
    } finally {
      await context.close();
    }
    assert.deepEqual(tooWide, []);
  });

  test('every page is accessible: axe-core finds no serious or critical violation, in light and dark', async () => {
    const axe = readFileSync(join(ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');
    const failures: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      const context = await browser.newContext({ colorScheme, bypassCSP: true });
      const page = await context.newPage();
      try {
        for (const path of [
          '/ui/',
          '/ui/search?q=foo',
          '/ui/packages/main/musl/x86_64/foo-cli/2.2-r0',
          '/ui/sign-in',
          `/ui/packages/main/musl/x86_64/${HOSTILE.name}/${HOSTILE.version}`,
          '/ui/components?name=openssl&version=%3C3.0.8',
          '/ui/licenses?expression=Apache-2.0',
          '/ui/packages/main/musl/x86_64/foo-cli/2.2-r0/diff?against=2.1-r0',
          '/ui/packages/main/musl/x86_64/nope/1.0-r0',
          ...realPages.slice(0, 2),
        ]) {
          await page.goto(`${server.url}${path}`);
          // The page's CSP forbids scripts; axe is injected with it bypassed, in this test's context only.
          await page.addScriptTag({ content: axe });
          const violations = (await page.evaluate(async () => {
            const result = await (
              window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }
            ).axe.run();
            return result.violations;
          })) as Array<{ id: string; impact: string; nodes: unknown[] }>;
          for (const v of violations) {
            if (v.impact === 'serious' || v.impact === 'critical')
              failures.push(`${colorScheme} ${path}: ${v.id} (${v.impact}, ${v.nodes.length} nodes)`);
          }
        }
      } finally {
        await context.close();
      }
    }
    assert.deepEqual(failures, []);
  });
});
