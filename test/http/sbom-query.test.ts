import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SbomComponent } from '../../src/sbom/types.ts';
import type { IndexKey } from '../../src/store/package-store.ts';
import { insertNew, newPackage } from '../helpers/new-package.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

/**
 * Paging of the auditor queries (issue 7): a page is filled from the packages
 * the caller may read and that meet the version constraint, however many rows
 * before them do not; `next` walks every match once.
 *
 * `a-private` is private and sorts first by repository name and by package id,
 * so the first rows in any order are ones an anonymous caller may not see.
 */

const PRIVATE = 30;
const PUBLIC = 40;
/** Public packages from this one on carry libshared 2.0.0; those before it 1.0.0. */
const FIRST_V2 = 25;
const LICENSES = ['MIT', 'Apache-2.0', 'GPL-2.0-only', 'LicenseRef-custom', 'Custom, see COPYING'];
const ADMIN = { authorization: `Bearer ${TEST_TOKEN}` };

type Match = {
  package: { repo: string; name: string; version: string };
  component: { name: string; version?: string; purl?: string };
};
type Licensed = { repo: string; name: string; license: string };

function component(name: string, version: string, purl = `pkg:generic/${name}@${version}`): SbomComponent {
  return { name, version, purl, checksums: [] };
}

async function seed(
  server: TestServer,
  repo: string,
  name: string,
  license: string,
  components: SbomComponent[],
) {
  const pkg = await insertNew(server.services.store, {
    ...newPackage(name, '1.0-r0', 'x86_64'),
    repo,
    license,
  });
  await server.services.sboms.save(pkg.id, {
    source: 'uploaded',
    format: 'spdx',
    specVersion: '2.3',
    sha256: '0'.repeat(64),
    size: 1,
    components,
  });
}

async function getJson<T>(server: TestServer, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(server.url + path, { headers });
  return { status: res.status, body: (await res.json()) as T };
}

/** Every page of a query, following `next`; the query string must not end in `&`. */
async function allPages<T>(
  server: TestServer,
  path: string,
  field: 'matches' | 'packages',
  headers: Record<string, string> = {},
): Promise<{ rows: T[]; pages: number }> {
  const rows: T[] = [];
  let pages = 0;
  let cursor: string | null | undefined;
  do {
    const page = await getJson<Record<string, unknown>>(
      server,
      cursor ? `${path}&after=${encodeURIComponent(cursor)}` : path,
      headers,
    );
    assert.equal(page.status, 200, JSON.stringify(page.body));
    rows.push(...(page.body[field] as T[]));
    cursor = page.body.next as string | null | undefined;
    pages++;
  } while (cursor);
  return { rows, pages };
}

describe('auditor queries page through every match the caller may see', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
    await server.services.store.saveRepo('a-private', { private: true });
    for (let i = 0; i < PRIVATE; i++) {
      await seed(server, 'a-private', `priv-${String(i).padStart(2, '0')}`, 'MIT', [
        component('libshared', '1.0.0'),
      ]);
    }
    for (let i = 0; i < PUBLIC; i++) {
      const shared = component('libshared', i < FIRST_V2 ? '1.0.0' : '2.0.0');
      const extra = [
        component('libp', `${1 + (i % 3)}.0`),
        { name: 'libp', checksums: [], purl: 'pkg:generic/libp' },
        component('libp-dev', '1.0'),
        component('other', '1.0'),
      ][i % 4]!;
      // pub-07 lists libshared twice: two matches in one package.
      const components = i === 7 ? [shared, { ...shared, supplier: 'twice' }, extra] : [shared, extra];
      await seed(
        server,
        'b-public',
        `pub-${String(i).padStart(2, '0')}`,
        LICENSES[i % LICENSES.length]!,
        components,
      );
    }
    const keys: IndexKey[] = ['a-private', 'b-public'].map((repo) => ({
      repo,
      libc: 'glibc',
      arch: 'x86_64',
    }));
    await server.services.indexer.refresh(keys);
    // Uploaded but not in a live index yet: never a match.
    await seed(server, 'b-public', 'unpublished', 'MIT', [component('libshared', '2.0.0')]);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('a page is filled although the first rows in index order are in a repository the caller cannot read', async () => {
    const anonymous = await getJson<{ matches: Match[]; next: string | null }>(
      server,
      '/api/v1/components?name=libshared&limit=5',
    );
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.body.matches.length, 5);
    assert.ok(anonymous.body.matches.every((m) => m.package.repo === 'b-public'));
    assert.equal(typeof anonymous.body.next, 'string');
    const admin = await getJson<{ matches: Match[] }>(
      server,
      '/api/v1/components?name=libshared&limit=5',
      ADMIN,
    );
    assert.ok(admin.body.matches.every((m) => m.package.repo === 'a-private'));

    const licensed = await getJson<{ packages: Licensed[] }>(
      server,
      `/api/v1/licenses?expression=MIT&limit=3`,
    );
    assert.equal(licensed.body.packages.length, 3);
    assert.ok(licensed.body.packages.every((p) => p.repo === 'b-public'));
  });

  test('a page is filled although the first rows miss the version constraint', async () => {
    const page = await getJson<{ matches: Match[]; next: string | null }>(
      server,
      `/api/v1/components?name=libshared&version=${encodeURIComponent('>=2')}&limit=5`,
    );
    assert.equal(page.status, 200);
    assert.equal(page.body.matches.length, 5);
    assert.ok(page.body.matches.every((m) => m.component.version === '2.0.0'));
    const all = await allPages<Match>(
      server,
      `/api/v1/components?name=libshared&version=${encodeURIComponent('>=2')}&limit=5`,
      'matches',
    );
    assert.equal(all.rows.length, PUBLIC - FIRST_V2);
    assert.ok(all.rows.every((m) => m.component.version === '2.0.0'));
  });

  test('components: the pages hold every match once, in the order of one big page', async () => {
    const cases: Array<{ query: string; headers?: Record<string, string>; expected: number }> = [
      { query: 'name=libshared', expected: PUBLIC + 1 },
      { query: 'name=libshared', headers: ADMIN, expected: PRIVATE + PUBLIC + 1 },
      // libp@1.0, @2.0, @3.0 and the versionless purl; never libp-dev.
      { query: `purl=${encodeURIComponent('pkg:generic/libp')}`, expected: PUBLIC / 2 },
      { query: `purl=${encodeURIComponent('pkg:generic/libp@2.0')}`, expected: 3 },
    ];
    for (const c of cases) {
      const whole = await getJson<{ matches: Match[]; next: string | null }>(
        server,
        `/api/v1/components?${c.query}&limit=10000`,
        c.headers,
      );
      assert.equal(whole.body.next, null);
      assert.equal(whole.body.matches.length, c.expected, c.query);
      for (const limit of [1, 7]) {
        const paged = await allPages<Match>(
          server,
          `/api/v1/components?${c.query}&limit=${limit}`,
          'matches',
          c.headers,
        );
        assert.deepEqual(paged.rows, whole.body.matches, `${c.query}, pages of ${limit}`);
        assert.equal(paged.pages, Math.ceil(c.expected / limit), `${c.query}, pages of ${limit}`);
      }
    }
    const libp = await getJson<{ matches: Match[] }>(
      server,
      `/api/v1/components?purl=${encodeURIComponent('pkg:generic/libp')}&limit=10000`,
    );
    const purls = libp.body.matches.map((m) => m.component.purl!);
    assert.ok(purls.every((p) => p === 'pkg:generic/libp' || p.startsWith('pkg:generic/libp@')));
    assert.deepEqual(purls, [...purls].sort(), 'ordered by purl: the versionless one first');
    const twice = await getJson<{ matches: Match[] }>(
      server,
      '/api/v1/components?name=libshared&limit=10000',
    );
    assert.equal(twice.body.matches.filter((m) => m.package.name === 'pub-07').length, 2);
  });

  test('licences: the pages hold every package once, in the order of one big page', async () => {
    const spdx = encodeURIComponent('MIT OR Apache-2.0');
    const cases: Array<{ query: string; headers?: Record<string, string>; expected: number }> = [
      { query: `expression=${spdx}`, expected: (PUBLIC * 2) / 5 },
      { query: `expression=${spdx}`, headers: ADMIN, expected: PRIVATE + (PUBLIC * 2) / 5 },
      // GPL, a LicenseRef and a licence that is no SPDX expression at all.
      { query: `expression=${spdx}&mode=conflicts`, expected: (PUBLIC * 3) / 5 },
    ];
    for (const c of cases) {
      const whole = await getJson<{ packages: Licensed[]; next: string | null }>(
        server,
        `/api/v1/licenses?${c.query}&limit=100000`,
        c.headers,
      );
      assert.equal(whole.body.next, null);
      assert.equal(whole.body.packages.length, c.expected, c.query);
      assert.equal(new Set(whole.body.packages.map((p) => `${p.repo}/${p.name}`)).size, c.expected);
      for (const limit of [1, 3]) {
        const paged = await allPages<Licensed>(
          server,
          `/api/v1/licenses?${c.query}&limit=${limit}`,
          'packages',
          c.headers,
        );
        assert.deepEqual(paged.rows, whole.body.packages, `${c.query}, pages of ${limit}`);
        assert.equal(paged.pages, Math.ceil(c.expected / limit), `${c.query}, pages of ${limit}`);
      }
    }
    const conflicts = await getJson<{ packages: Licensed[] }>(
      server,
      `/api/v1/licenses?expression=${spdx}&mode=conflicts&limit=100000`,
    );
    assert.deepEqual(new Set(conflicts.body.packages.map((p) => p.license)), new Set(LICENSES.slice(2)));
  });

  test('a cursor that is not one, or is from another query, is refused', async () => {
    const first = await getJson<{ next: string }>(server, '/api/v1/components?name=libshared&limit=1');
    for (const path of [
      '/api/v1/components?name=libshared&after=not-a-cursor',
      `/api/v1/components?name=other&after=${first.body.next}`,
      `/api/v1/licenses?expression=MIT&after=${first.body.next}`,
    ]) {
      const res = await getJson<{ code: string }>(server, path);
      assert.equal(res.status, 400, path);
      assert.equal(res.body.code, 'BAD_REQUEST', path);
    }
  });
});
