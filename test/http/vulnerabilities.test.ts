import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  makePrivate,
  publish,
  publishForm,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { needsSharedFixtures, realFixturesDir } from '../helpers/shared-fixtures.ts';

// biome-ignore lint/suspicious/noExplicitAny: JSON read back from the server, checked field by field
type Json = any;

const admin = { authorization: `Bearer ${TEST_TOKEN}` };
const MODIFIED = '2024-06-01T00:00:00Z';

const osv = (id: string, affected: object[], extra: object = {}) => ({
  id,
  modified: MODIFIED,
  affected,
  ...extra,
});
const range = (type: string, fixed: string) => [{ type, events: [{ introduced: '0' }, { fixed }] }];

/** A package whose SBOM (sent, CycloneDX) lists components of four ecosystems. */
function webappSbom(version: string) {
  const component = (purl: string, name: string, v: string) => ({ type: 'library', name, version: v, purl });
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: { component: { type: 'application', name: 'webapp', version } },
    components: [
      component('pkg:npm/lodash@4.17.20', 'lodash', '4.17.20'),
      component('pkg:golang/github.com/gin-gonic/gin@v1.9.0', 'github.com/gin-gonic/gin', 'v1.9.0'),
      component('pkg:pypi/requests@2.30.0', 'requests', '2.30.0'),
      component('pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1', 'log4j-core', '2.14.1'),
    ],
  };
}

describe('which packages a vulnerability affects', () => {
  let server: TestServer;
  let reader: string;
  const get = async (path: string, headers: Record<string, string> = admin) => {
    const res = await fetch(`${server.url}${path}`, { headers });
    return { status: res.status, json: (await res.json()) as Json };
  };
  const upload = (records: unknown, token = TEST_TOKEN) =>
    fetch(`${server.url}/api/v1/vulnerabilities`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(records),
    });

  before(async () => {
    server = await startServer();
    for (const repo of ['apps', 'private-apps']) {
      const apk = await buildApk({ name: 'webapp', version: '1.0-r0', depends: [] });
      const sbom = Buffer.from(JSON.stringify(webappSbom('1.0-r0')));
      const res = await publishForm(server, repo, 'glibc', { package: apk, sbom });
      assert.equal(res.status, 201, JSON.stringify(res.json));
    }
    await makePrivate(server, 'private-apps');
    const token = await fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'reader', scopes: ['private-apps:read'] }),
    });
    reader = ((await token.json()) as { token: string }).token;
    // reef's own advisory: lodash's CVE does not affect webapp (its code path is never reached).
    const advisory = await fetch(`${server.url}/api/v1/repos/apps/advisories/webapp`, {
      method: 'PUT',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({
        'schema-version': '2',
        package: { name: 'webapp' },
        advisories: [
          {
            id: 'CGA-wapp-0000-0001',
            aliases: ['CVE-2021-23337'],
            events: [
              {
                timestamp: '2024-05-01T00:00:00Z',
                type: 'false-positive-determination',
                data: { type: 'vulnerable-code-not-in-execution-path' },
              },
            ],
          },
        ],
      }),
    });
    assert.equal(advisory.status, 200);
    const res = await upload([
      osv(
        'GHSA-35jh-r3h4-6jhm',
        [{ package: { ecosystem: 'npm', name: 'lodash' }, ranges: range('SEMVER', '4.17.21') }],
        {
          aliases: ['CVE-2021-23337'],
        },
      ),
      osv('GO-2023-1737', [
        { package: { ecosystem: 'Go', name: 'github.com/gin-gonic/gin' }, ranges: range('SEMVER', '1.9.1') },
      ]),
      osv(
        'PYSEC-2023-74',
        [{ package: { ecosystem: 'PyPI', name: 'requests' }, ranges: range('ECOSYSTEM', '2.31.0') }],
        {
          aliases: ['CVE-2023-32681'],
        },
      ),
      osv('PYSEC-2099-1', [
        { package: { ecosystem: 'PyPI', name: 'requests' }, ranges: range('ECOSYSTEM', '2.30.0') },
      ]),
      osv('GHSA-jfh8-c2jp-5v3q', [
        {
          package: { ecosystem: 'Maven', name: 'org.apache.logging.log4j:log4j-core' },
          ranges: range('ECOSYSTEM', '2.15.0'),
        },
      ]),
      osv(
        'GHSA-withdrawn-0001',
        [{ package: { ecosystem: 'npm', name: 'lodash' }, ranges: range('SEMVER', '9.0.0') }],
        {
          withdrawn: '2024-06-02T00:00:00Z',
        },
      ),
    ]);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { received: 6, stored: 6, older: 0 });
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  test('a fixed version just above the component is a match; just below it is not', async () => {
    const go = await get('/api/v1/vulnerabilities/GO-2023-1737');
    assert.equal(go.status, 200);
    assert.deepEqual(
      go.json.matches.map((m: Json) => [m.package.repo, m.package.name, m.component.purl, m.state]),
      [
        ['apps', 'webapp', 'pkg:golang/github.com/gin-gonic/gin@v1.9.0', 'affected'],
        ['private-apps', 'webapp', 'pkg:golang/github.com/gin-gonic/gin@v1.9.0', 'affected'],
      ],
    );
    assert.deepEqual(go.json.matches[0].range, range('SEMVER', '1.9.1')[0]);
    // By an alias, and PEP 440 for PyPI: 2.30.0 < 2.31.0 matches; fixed in 2.30.0 does not.
    const py = await get('/api/v1/vulnerabilities/CVE-2023-32681');
    assert.deepEqual(py.json.records, ['PYSEC-2023-74']);
    assert.equal(py.json.matches.length, 2);
    assert.deepEqual((await get('/api/v1/vulnerabilities/PYSEC-2099-1')).json.matches, []);
  });

  test("a not-affected advisory of reef's suppresses the match, and says so", async () => {
    const lodash = await get('/api/v1/vulnerabilities/CVE-2021-23337');
    const byRepo = Object.fromEntries(lodash.json.matches.map((m: Json) => [m.package.repo, m]));
    assert.equal(byRepo.apps.state, 'not_affected');
    assert.deepEqual(byRepo.apps.advisory, {
      id: 'CGA-wapp-0000-0001',
      event: 'false-positive-determination',
      justification: 'vulnerable-code-not-in-execution-path',
    });
    assert.equal(byRepo['private-apps'].state, 'affected', 'that advisory is of the other repository');
  });

  test('an ecosystem reef cannot compare is "not evaluated"; a withdrawn record matches nothing', async () => {
    const log4j = await get('/api/v1/vulnerabilities/GHSA-jfh8-c2jp-5v3q');
    assert.deepEqual(log4j.json.matches, []);
    assert.equal(log4j.json.notEvaluated.length, 2);
    assert.match(log4j.json.notEvaluated[0].reason, /Maven/);
    const withdrawn = await get('/api/v1/vulnerabilities/GHSA-withdrawn-0001');
    assert.deepEqual([withdrawn.json.withdrawn, withdrawn.json.matches], [['GHSA-withdrawn-0001'], []]);
    assert.equal((await get('/api/v1/vulnerabilities/CVE-1999-0001')).status, 404);
  });

  test('private repositories only for a token that may read them; pages of one follow each other', async () => {
    const anonymous = await get('/api/v1/vulnerabilities/GO-2023-1737', {});
    assert.deepEqual(
      anonymous.json.matches.map((m: Json) => m.package.repo),
      ['apps'],
    );
    const withToken = await get('/api/v1/vulnerabilities/GO-2023-1737', {
      authorization: `Bearer ${reader}`,
    });
    assert.deepEqual(
      withToken.json.matches.map((m: Json) => m.package.repo),
      ['apps', 'private-apps'],
    );
    const first = await get('/api/v1/vulnerabilities/GO-2023-1737?limit=1');
    assert.equal(first.json.matches.length, 1);
    assert.ok(first.json.next);
    const second = await get(`/api/v1/vulnerabilities/GO-2023-1737?limit=1&after=${first.json.next}`);
    assert.deepEqual(
      [...first.json.matches, ...second.json.matches].map((m: Json) => m.package.repo),
      ['apps', 'private-apps'],
    );
    assert.equal((await get('/api/v1/vulnerabilities/GO-2023-1737?after=bm90LWEtY3Vyc29y')).status, 400);
  });

  test("the reverse view: one package's vulnerabilities", async () => {
    const { status, json } = await get('/api/v1/packages/apps/glibc/x86_64/webapp/1.0-r0/vulnerabilities');
    assert.equal(status, 200);
    assert.deepEqual(json.matches.map((m: Json) => [m.record, m.component.name, m.state]).sort(), [
      ['GHSA-35jh-r3h4-6jhm', 'lodash', 'not_affected'],
      ['GO-2023-1737', 'github.com/gin-gonic/gin', 'affected'],
      ['PYSEC-2023-74', 'requests', 'affected'],
    ]);
    assert.deepEqual(
      json.notEvaluated.map((n: Json) => n.record),
      ['GHSA-jfh8-c2jp-5v3q'],
    );
    assert.equal(json.next, null);
    // Paged: two of the four, then the rest.
    const path = '/api/v1/packages/apps/glibc/x86_64/webapp/1.0-r0/vulnerabilities';
    const first = (await get(`${path}?limit=2`)).json;
    const rest = (await get(`${path}?limit=2&after=${first.next}`)).json;
    assert.deepEqual(
      [...first.matches, ...rest.matches, ...first.notEvaluated, ...rest.notEvaluated]
        .map((m: Json) => m.record)
        .sort(),
      [...json.matches, ...json.notEvaluated].map((m: Json) => m.record).sort(),
    );
    assert.equal(rest.next, null);
    assert.equal(
      (await get('/api/v1/packages/private-apps/glibc/x86_64/webapp/1.0-r0/vulnerabilities', {})).status,
      401,
    );
  });

  test('uploads need *:advise, are checked field by field, and keep the newer of two versions of a record', async () => {
    const token = await fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'repo-advise', scopes: ['apps:advise'] }),
    });
    const repoOnly = ((await token.json()) as { token: string }).token;
    assert.equal((await upload(osv('GHSA-x-1', []), repoOnly)).status, 403);
    const bad = await upload([osv('GHSA-x-2', []), { id: 'GHSA-x-3' }]);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as Json).message, /^\[1\]\.modified/);
    assert.equal(
      (await get('/api/v1/vulnerabilities/GHSA-x-2')).status,
      404,
      'nothing of a bad upload is stored',
    );
    const older = await upload(
      osv(
        'GO-2023-1737',
        [
          {
            package: { ecosystem: 'Go', name: 'github.com/gin-gonic/gin' },
            ranges: range('SEMVER', '1.0.0'),
          },
        ],
        {
          modified: '2020-01-01T00:00:00Z',
        },
      ),
    );
    assert.deepEqual(await older.json(), { received: 1, stored: 0, older: 1 });
    assert.equal(
      (await get('/api/v1/vulnerabilities/GO-2023-1737')).json.matches.length,
      2,
      'the newer record stays',
    );
  });

  test(
    "a real package's SBOM and source package against an apk distribution's records",
    needsSharedFixtures,
    async () => {
      const apk = readFileSync(`${realFixturesDir()}/melange/linter__kubeflow-pipelines-2.1.3-r7.apk`);
      assert.equal((await publish(server, 'wolfi', 'glibc', apk)).status, 201);
      await fetch(`${server.url}/api/v1/repos/wolfi`, {
        method: 'PUT',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ distro: { id: 'wolfi' } }),
      });
      const kubeflow = (id: string, fixed: string) =>
        osv(id, [
          { package: { ecosystem: 'Wolfi', name: 'kubeflow-pipelines' }, ranges: range('ECOSYSTEM', fixed) },
        ]);
      const res = await upload([
        { ...kubeflow('CGA-kfp1-0000-0001', '2.1.3-r8'), upstream: ['CVE-2099-1001'] },
        kubeflow('CGA-kfp1-0000-0002', '2.1.3-r7'),
        kubeflow('CGA-kfp1-0000-0003', '2.1.3-r6'),
        osv('CGA-kfp1-0000-0004', [
          {
            package: { ecosystem: 'Chainguard', name: 'kubeflow-pipelines' },
            ranges: range('ECOSYSTEM', '9.0.0-r0'),
          },
        ]),
      ]);
      assert.equal(res.status, 200);
      const above = await get('/api/v1/vulnerabilities/CGA-kfp1-0000-0001');
      assert.deepEqual(
        above.json.matches.map((m: Json) => [
          m.package.name,
          m.package.version,
          m.package.arch,
          m.component,
          m.state,
        ]),
        [['kubeflow-pipelines', '2.1.3-r7', 'aarch64', undefined, 'affected']],
      );
      // reef's own advisory says this build carries the fix: the match is suppressed as fixed.
      const fixedHere = await fetch(`${server.url}/api/v1/repos/wolfi/advisories/kubeflow-pipelines`, {
        method: 'PUT',
        headers: { ...admin, 'content-type': 'application/yaml' },
        body: 'schema-version: "2"\npackage:\n  name: kubeflow-pipelines\nadvisories:\n  - id: CGA-wolf-0000-0001\n    aliases: [CVE-2099-1001]\n    events:\n      - timestamp: 2024-06-01T00:00:00Z\n        type: fixed\n        data:\n          fixed-version: 2.1.3-r7\n',
      });
      assert.equal(fixedHere.status, 200);
      const suppressed = (await get('/api/v1/vulnerabilities/CVE-2099-1001')).json.matches;
      assert.deepEqual(
        suppressed.map((m: Json) => [m.state, m.advisory]),
        [['fixed', { id: 'CGA-wolf-0000-0001', event: 'fixed', fixedVersion: '2.1.3-r7' }]],
      );
      for (const id of ['CGA-kfp1-0000-0002', 'CGA-kfp1-0000-0003']) {
        assert.deepEqual(
          (await get(`/api/v1/vulnerabilities/${id}`)).json.matches,
          [],
          `${id}: fixed at or below`,
        );
      }
      assert.deepEqual(
        (await get('/api/v1/vulnerabilities/CGA-kfp1-0000-0004')).json.matches,
        [],
        'another distribution: not this repository',
      );
      const reverse = await get(
        '/api/v1/packages/wolfi/glibc/aarch64/kubeflow-pipelines/2.1.3-r7/vulnerabilities',
      );
      assert.deepEqual(
        reverse.json.matches.map((m: Json) => m.record),
        ['CGA-kfp1-0000-0001'],
      );
    },
  );
});
