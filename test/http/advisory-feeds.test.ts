import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import { officialOpenVexValidator, officialOsvValidator, schemaErrors } from '../helpers/official-schemas.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';

// biome-ignore lint/suspicious/noExplicitAny: JSON read back from the server, checked field by field
type Json = any;

const admin = { authorization: `Bearer ${TEST_TOKEN}` };

/** Every state an advisory can be in, for the source package openssl. */
const OPENSSL = {
  'schema-version': '2.0.2',
  package: { name: 'openssl' },
  advisories: [
    {
      id: 'CGA-aaaa-2222-0001',
      aliases: ['CVE-2023-0286', 'GHSA-xxxx-yyyy-0001'],
      events: [
        { timestamp: '2023-02-01T00:00:00Z', type: 'detection', data: { type: 'manual' } },
        { timestamp: '2023-02-07T16:49:30Z', type: 'fixed', data: { 'fixed-version': '3.0.8-r0' } },
      ],
    },
    {
      id: 'CGA-aaaa-2222-0002',
      aliases: ['CVE-2023-0466'],
      events: [
        {
          timestamp: '2023-04-08T16:32:54Z',
          type: 'false-positive-determination',
          data: { type: 'vulnerable-code-not-in-execution-path', note: 'only the test suite calls it' },
        },
      ],
    },
    {
      id: 'CGA-aaaa-2222-0003',
      aliases: ['CVE-2024-9999'],
      events: [
        {
          timestamp: '2024-06-01T00:00:00Z',
          type: 'pending-upstream-fix',
          data: { note: 'upstream PR open' },
        },
      ],
    },
    {
      id: 'CGA-aaaa-2222-0004',
      aliases: ['CVE-2025-0001'],
      events: [{ timestamp: '2025-01-01T00:00:00+02:00', type: 'detection', data: { type: 'scan/v1' } }],
    },
    {
      id: 'CGA-aaaa-2222-0005',
      aliases: ['CVE-2020-0001'],
      events: [
        { timestamp: '2020-01-01T00:00:00Z', type: 'fixed', data: { 'fixed-version': '1.0.0-r0' } },
        {
          timestamp: '2020-02-01T00:00:00Z',
          type: 'withdrawn',
          data: { note: 'filed against the wrong package' },
        },
      ],
    },
    {
      id: 'CGA-aaaa-2222-0006',
      aliases: ['CVE-2022-4203'],
      events: [
        {
          timestamp: '2023-01-01T00:00:00Z',
          type: 'false-positive-determination',
          data: { type: 'vulnerability-record-analysis-contested', note: 'documentation, not behaviour' },
        },
      ],
    },
  ],
};

describe('OSV and OpenVEX from advisories', () => {
  let server: TestServer;
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, { headers: { ...admin, ...headers } });
  const putAdvisories = (repo: string, doc: unknown) =>
    fetch(`${server.url}/api/v1/repos/${repo}/advisories/${(doc as Json).package.name}`, {
      method: 'PUT',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify(doc),
    });
  const setDistro = (repo: string, distro: unknown) =>
    fetch(`${server.url}/api/v1/repos/${repo}`, {
      method: 'PUT',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ distro }),
    });

  before(async () => {
    server = await startServer();
    for (const [name, version, origin] of [
      ['openssl', '3.0.7-r0', 'openssl'],
      ['openssl', '3.0.8-r0', 'openssl'],
      ['libcrypto3', '3.0.7-r0', 'openssl'],
      ['curl', '8.0.1-r0', 'curl'],
    ] as const) {
      const apk = await buildApk({ name, version, origin, depends: [] });
      assert.equal((await publish(server, 'feeds', 'glibc', apk)).status, 201);
    }
    assert.equal((await setDistro('feeds', { id: 'wolfi' })).status, 200);
    assert.equal((await putAdvisories('feeds', OPENSSL)).status, 200);
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('each advisory state maps onto its OSV record', async () => {
    const res = await get('/api/v1/repos/feeds/osv.json');
    assert.equal(res.status, 200);
    const records = (await res.json()) as Json[];
    const byId = Object.fromEntries(records.map((r) => [r.id, r]));
    const range = (id: string) => byId[id].affected?.[0]?.ranges?.[0];
    assert.deepEqual(range('CGA-aaaa-2222-0001'), {
      type: 'ECOSYSTEM',
      events: [{ introduced: '0' }, { fixed: '3.0.8-r0' }],
    });
    assert.deepEqual(byId['CGA-aaaa-2222-0001'].affected[0].package, {
      ecosystem: 'Wolfi',
      name: 'openssl',
      purl: 'pkg:apk/wolfi/openssl',
    });
    assert.deepEqual(byId['CGA-aaaa-2222-0001'].upstream, ['CVE-2023-0286', 'GHSA-xxxx-yyyy-0001']);
    assert.equal(byId['CGA-aaaa-2222-0001'].published, '2023-02-01T00:00:00Z');
    assert.equal(byId['CGA-aaaa-2222-0001'].modified, '2023-02-07T16:49:30Z');
    assert.deepEqual(range('CGA-aaaa-2222-0002'), {
      type: 'ECOSYSTEM',
      events: [{ introduced: '0' }, { fixed: '0' }],
      database_specific: { false_positive: true },
    });
    assert.deepEqual(range('CGA-aaaa-2222-0003').events, [{ introduced: '0' }], 'affected, no fix yet');
    assert.equal(byId['CGA-aaaa-2222-0004'].affected, undefined, 'under investigation: no claim');
    assert.equal(byId['CGA-aaaa-2222-0004'].modified, '2024-12-31T22:00:00Z', 'in UTC');
    assert.equal(byId['CGA-aaaa-2222-0005'].withdrawn, '2020-02-01T00:00:00Z');
    assert.equal(byId['CGA-aaaa-2222-0005'].affected, undefined);

    const one = await get('/api/v1/repos/feeds/osv/CGA-aaaa-2222-0002.json');
    assert.deepEqual(await one.json(), byId['CGA-aaaa-2222-0002']);
    const index = (await (await get('/api/v1/repos/feeds/osv/all.json')).json()) as Json[];
    assert.deepEqual(
      index,
      records.map((r) => ({ id: r.id, modified: r.modified })),
    );
    assert.equal((await get('/api/v1/repos/feeds/osv/CGA-none.json')).status, 404);
  });

  test('every OSV record reef serves validates against the OSV schema', needsSharedFixtures, async () => {
    const validate = officialOsvValidator();
    const records = (await (await get('/api/v1/repos/feeds/osv.json')).json()) as Json[];
    assert.equal(records.length, OPENSSL.advisories.length);
    for (const record of records) assert.ok(validate(record), `${record.id}: ${schemaErrors(validate)}`);
  });

  test('a repository whose distro OSV does not know gets a 422 saying what to set', async () => {
    const apk = await buildApk({ name: 'zlib', version: '1.3-r0', depends: [] });
    assert.equal((await publish(server, 'nodistro', 'glibc', apk)).status, 201);
    const res = await get('/api/v1/repos/nodistro/osv.json');
    assert.equal(res.status, 422);
    const body = (await res.json()) as Json;
    assert.equal(body.code, 'ADVISORY_NO_ECOSYSTEM');
    assert.match(body.message, /"distro": \{"id": "wolfi"\}/);
    assert.equal((await setDistro('nodistro', { id: 'alpine', version: '3.20.3' })).status, 200);
    const alpine = (await (await get('/api/v1/repos/nodistro/osv.json')).json()) as Json[];
    assert.deepEqual(alpine, [], 'no advisories yet, and a valid ecosystem');
  });

  const vex = async (file: string) => {
    const res = await get(`/feeds/glibc/x86_64/${file}`);
    return { status: res.status, etag: res.headers.get('etag'), json: (await res.json()) as Json };
  };
  const statuses = (doc: Json) =>
    Object.fromEntries(doc.statements.map((s: Json) => [s.vulnerability.name, s]));

  test("a package's OpenVEX says what each advisory of its source package means for its version", async () => {
    const old = await vex('openssl-3.0.7-r0.apk.openvex.json');
    assert.equal(old.status, 200);
    assert.equal(old.json['@id'], `${server.url}/feeds/glibc/x86_64/openssl-3.0.7-r0.apk.openvex.json`);
    const s = statuses(old.json);
    assert.deepEqual(Object.keys(s).sort(), [
      'CVE-2022-4203',
      'CVE-2023-0286',
      'CVE-2023-0466',
      'CVE-2024-9999',
      'CVE-2025-0001',
    ]);
    assert.equal(s['CVE-2023-0286'].status, 'affected', '3.0.7-r0 is below the fix');
    assert.match(s['CVE-2023-0286'].action_statement, /3\.0\.8-r0/);
    assert.deepEqual(s['CVE-2023-0286'].vulnerability.aliases, ['GHSA-xxxx-yyyy-0001', 'CGA-aaaa-2222-0001']);
    assert.deepEqual(s['CVE-2023-0286'].products, [{ '@id': 'pkg:apk/wolfi/openssl@3.0.7-r0?arch=x86_64' }]);
    assert.equal(s['CVE-2023-0466'].status, 'not_affected');
    assert.equal(s['CVE-2023-0466'].justification, 'vulnerable_code_not_in_execute_path');
    assert.equal(s['CVE-2022-4203'].status, 'not_affected');
    assert.equal(s['CVE-2022-4203'].justification, undefined);
    assert.equal(s['CVE-2022-4203'].impact_statement, 'documentation, not behaviour');
    assert.equal(s['CVE-2024-9999'].status, 'affected');
    assert.equal(s['CVE-2025-0001'].status, 'under_investigation');

    const fixed = statuses((await vex('openssl-3.0.8-r0.apk.openvex.json')).json);
    assert.equal(fixed['CVE-2023-0286'].status, 'fixed', '3.0.8-r0 carries the fix');
    const sub = (await vex('libcrypto3-3.0.7-r0.apk.openvex.json')).json;
    assert.deepEqual(statuses(sub)['CVE-2023-0286'].products, [
      { '@id': 'pkg:apk/wolfi/libcrypto3@3.0.7-r0?arch=x86_64' },
    ]);
    const none = await vex('curl-8.0.1-r0.apk.openvex.json');
    assert.equal(none.status, 404);
    assert.equal(none.json.code, 'ADVISORY_NOT_FOUND');
    assert.equal((await vex('nothere-1.0-r0.apk.openvex.json')).status, 404);
  });

  test('OpenVEX documents validate against the OpenVEX schema', needsSharedFixtures, async () => {
    const validate = officialOpenVexValidator();
    for (const file of ['openssl-3.0.7-r0', 'openssl-3.0.8-r0', 'libcrypto3-3.0.7-r0']) {
      const { json } = await vex(`${file}.apk.openvex.json`);
      assert.ok(validate(json), `${file}: ${schemaErrors(validate)}`);
    }
  });

  test('an advisory change gives the OpenVEX document a new version and ETag', async () => {
    const before = await vex('openssl-3.0.7-r0.apk.openvex.json');
    assert.equal(
      (await get('/feeds/glibc/x86_64/openssl-3.0.7-r0.apk.openvex.json', { 'if-none-match': before.etag! }))
        .status,
      304,
    );
    const changed = structuredClone(OPENSSL);
    changed.advisories[2]!.events.push({
      timestamp: '2024-07-01T00:00:00Z',
      type: 'fixed',
      data: { 'fixed-version': '3.0.7-r0' } as Json,
    });
    assert.equal((await putAdvisories('feeds', changed)).status, 200);
    const after = await vex('openssl-3.0.7-r0.apk.openvex.json');
    assert.notEqual(after.etag, before.etag);
    assert.ok(after.json.version > before.json.version);
    assert.equal(statuses(after.json)['CVE-2024-9999'].status, 'fixed');
  });

  test("wolfictl's OSV expectations: the same ids, times and Wolfi ranges", needsSharedFixtures, async () => {
    const dir = sharedFixture('advisories', 'wolfictl-golden');
    const files = readdirSync(dir)
      .filter((f) => f.startsWith('osv-input-'))
      .map((f) => ({ file: f.replace('osv-input-', ''), content: readFileSync(`${dir}/${f}`, 'utf8') }));
    const imported = await fetch(`${server.url}/api/v1/repos/wolfi-osv/advisories/import`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ files }),
    });
    assert.equal(imported.status, 200, await imported.clone().text());
    assert.equal((await setDistro('wolfi-osv', { id: 'wolfi' })).status, 200);
    const osvDir = sharedFixture('advisories', 'osv');
    const expectedIndex = JSON.parse(readFileSync(`${osvDir}/all.wolfictl-expected.json`, 'utf8')) as Json[];
    const index = (await (await get('/api/v1/repos/wolfi-osv/osv/all.json')).json()) as Json[];
    const served = new Map(index.map((e) => [e.id, e.modified]));
    const inputs = files.map((f) => f.content).join('\n');
    for (const e of expectedIndex) {
      // wolfictl's input held one more package than the fixture's two files.
      if (!inputs.includes(e.id)) continue;
      assert.equal(served.get(e.id), e.modified, e.id);
    }
    // wolfictl exports only fixed and false-positive advisories; reef also the open ones
    // (pending upstream fix: affected, no fix; detection: no claim yet).
    const extra = index.filter((e) => !expectedIndex.some((x) => x.id === e.id)).map((e) => e.id);
    assert.deepEqual(extra.sort(), ['CGA-v3wf-pwmr-vcw5', 'CGA-wjrr-fwwv-jg6h']);
    const pending = (await (await get('/api/v1/repos/wolfi-osv/osv/CGA-v3wf-pwmr-vcw5.json')).json()) as Json;
    assert.deepEqual(pending.affected[0].ranges[0].events, [{ introduced: '0' }]);
    for (const name of readdirSync(osvDir).filter((f) => /^CGA-.*\.wolfictl-expected\.json$/.test(f))) {
      const expected = JSON.parse(readFileSync(`${osvDir}/${name}`, 'utf8'));
      const served = (await (await get(`/api/v1/repos/wolfi-osv/osv/${expected.id}.json`)).json()) as Json;
      assert.equal(served.modified, expected.modified, name);
      const wolfi = expected.affected.find((a: Json) => a.package.ecosystem === 'Wolfi');
      assert.deepEqual(served.affected, [wolfi], name);
      // wolfictl listed the id and its aliases as related; reef names the aliases upstream (OSV 1.7).
      assert.deepEqual(
        served.upstream,
        expected.related.filter((id: string) => id !== expected.id),
        name,
      );
    }
  });

  test("a private repository's feeds need a read token", async () => {
    await makePrivate(server, 'feeds');
    for (const path of [
      '/api/v1/repos/feeds/osv.json',
      '/api/v1/repos/feeds/osv/all.json',
      '/feeds/glibc/x86_64/openssl-3.0.7-r0.apk.openvex.json',
      '/feeds/glibc/security.json',
    ]) {
      assert.equal((await fetch(`${server.url}${path}`)).status, 401, path);
    }
  });
});
