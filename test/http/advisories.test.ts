import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import { buildApk } from '../helpers/apk-builder.ts';
import { assertExit, reef } from '../helpers/reef-cli.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { needsSharedFixtures, sharedFixture } from '../helpers/shared-fixtures.ts';
import { keyVerifier } from '../helpers/sigstore-ca.ts';

// biome-ignore lint/suspicious/noExplicitAny: JSON read back from the API, checked field by field
type Json = any;

const yaml = (name: string, advisories: string) =>
  `schema-version: "2"\npackage:\n  name: ${name}\nadvisories:\n${advisories}`;
const fixedAdvisory = (id: string, alias: string, version: string, at = '2024-05-01T10:00:00Z') =>
  `  - id: ${id}\n    aliases:\n      - ${alias}\n    events:\n      - timestamp: ${at}\n        type: fixed\n        data:\n          fixed-version: ${version}\n`;

describe('security advisories over HTTP', () => {
  let server: TestServer;
  const tokens: Record<string, string> = {};
  before(async () => {
    server = await startServer();
    for (const [name, scopes] of [
      ['advise', ['sec:advise', 'imp:advise', 'wolfi:advise', 'cli:advise']],
      ['publish', ['sec:publish']],
      ['other', ['elsewhere:advise']],
      ['reader', ['private-sec:read']],
    ] as const) {
      const res = await fetch(`${server.url}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, scopes }),
      });
      tokens[name] = ((await res.json()) as { token: string }).token;
    }
    // The repository has musl packages for two arches: the feed's header names them.
    for (const arch of ['x86_64', 'aarch64']) {
      const apk = await buildApk({ name: 'openssl', version: '3.0.7-r0', arch, depends: [] });
      assert.equal((await publish(server, 'sec', 'musl', apk)).status, 201);
    }
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  const put = (repo: string, name: string, body: string, token = tokens.advise!, type = 'application/yaml') =>
    fetch(`${server.url}/api/v1/repos/${repo}/advisories/${name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': type },
      body,
    });
  const importFiles = (
    repo: string,
    files: Array<{ file: string; content: string }>,
    token = tokens.advise!,
  ) =>
    fetch(`${server.url}/api/v1/repos/${repo}/advisories/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ files }),
    });
  const feed = (repo: string, libc = 'musl', headers: Record<string, string> = {}) =>
    fetch(`${server.url}/${repo}/${libc}/security.json`, { headers });
  const auditActions = async () =>
    (
      (await (
        await fetch(`${server.url}/api/v1/audit?limit=200`, {
          headers: { authorization: `Bearer ${TEST_TOKEN}` },
        })
      ).json()) as {
        entries: Array<{ action: string; target: string; result: string; code?: string; detail?: Json }>;
      }
    ).entries.filter((e) => e.action.startsWith('advisory.'));

  test('a package written as YAML is in the feed at once, with a new ETag; the old one gets 304 no more', async () => {
    const empty = await feed('sec');
    assert.equal(empty.status, 200);
    const emptyTag = empty.headers.get('etag')!;
    const emptyJson = (await empty.json()) as Record<string, unknown>;
    assert.deepEqual(emptyJson, {
      apkurl: '{{urlprefix}}/{{reponame}}/musl/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk',
      archs: ['aarch64', 'x86_64'],
      reponame: 'sec',
      urlprefix: server.url,
      packages: [],
    });
    assert.equal((await feed('sec', 'musl', { 'if-none-match': emptyTag })).status, 304);

    const res = await put(
      'sec',
      'openssl',
      yaml('openssl', fixedAdvisory('CGA-2222-2222-2222', 'CVE-2022-3602', '3.0.7-r0')),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(((await res.json()) as { added: string[] }).added, ['CGA-2222-2222-2222']);

    const changed = await feed('sec', 'musl', { 'if-none-match': emptyTag });
    assert.equal(changed.status, 200, 'the advisory is in the feed at the next request');
    assert.notEqual(changed.headers.get('etag'), emptyTag);
    assert.equal(changed.headers.get('cache-control'), 'public, no-cache');
    const body = (await changed.json()) as {
      packages: unknown[];
      apkurl: string;
      urlprefix: string;
      reponame: string;
    };
    assert.deepEqual(body.packages, [
      { pkg: { name: 'openssl', secfixes: { '3.0.7-r0': ['CVE-2022-3602'] } } },
    ]);
    // The template resolves to the package reef serves.
    const url = body.apkurl
      .replace('{{urlprefix}}', body.urlprefix)
      .replace('{{reponame}}', body.reponame)
      .replace('{{arch}}', 'aarch64')
      .replace('{{pkg.name}}', 'openssl')
      .replace('{{pkg.ver}}', '3.0.7-r0');
    assert.equal((await fetch(url)).status, 200, url);
    const head = await fetch(`${server.url}/sec/musl/security.json`, { method: 'HEAD' });
    assert.equal(head.headers.get('etag'), changed.headers.get('etag'));

    const doc = (await (await fetch(`${server.url}/api/v1/repos/sec/advisories/openssl`)).json()) as Json;
    assert.equal(doc['schema-version'], '2.0.2');
    assert.equal(doc.advisories[0].events[0].data['fixed-version'], '3.0.7-r0');
    const list = (await (await fetch(`${server.url}/api/v1/repos/sec/advisories`)).json()) as Json;
    assert.deepEqual(
      list.packages.map((p: { package: string; advisories: number }) => [p.package, p.advisories]),
      [['openssl', 1]],
    );
  });

  test('writes need <repo>:advise on that repository', async () => {
    const body = yaml('zlib', fixedAdvisory('CGA-3333-3333-3333', 'CVE-2022-37434', '1.2.12-r3'));
    assert.equal((await put('sec', 'zlib', body, tokens.publish!)).status, 403);
    assert.equal((await put('sec', 'zlib', body, tokens.other!)).status, 403);
    const anonymous = await fetch(`${server.url}/api/v1/repos/sec/advisories/zlib`, { method: 'PUT', body });
    assert.equal(anonymous.status, 401);
    assert.equal((await fetch(`${server.url}/api/v1/repos/sec/advisories/zlib`)).status, 404);
    assert.equal((await put('sec', 'zlib', body)).status, 200);
  });

  test('bad documents get a 4xx naming the field, and change nothing', async () => {
    const before = (await feed('sec')).headers.get('etag');
    const cases: Array<[string, string, number, string, RegExp?]> = [
      [
        'unknown event',
        yaml(
          'curl',
          `  - id: CGA-4444-4444-4444\n    events:\n      - timestamp: 2024-01-01T00:00:00Z\n        type: exploded\n`,
        ),
        400,
        'ADVISORY_INVALID',
        /advisories\[0\]\.events\[0\]\.type/,
      ],
      [
        'unparsable version',
        yaml('curl', fixedAdvisory('CGA-4444-4444-4444', 'CVE-1', '57-1-r2x')),
        400,
        'ADVISORY_INVALID',
        /fixed-version/,
      ],
      [
        'another package',
        yaml('wget', fixedAdvisory('CGA-4444-4444-4444', 'CVE-1', '1-r0')),
        400,
        'ADVISORY_INVALID',
        /package\.name/,
      ],
      [
        'id of another package',
        yaml('curl', fixedAdvisory('CGA-2222-2222-2222', 'CVE-1', '1-r0')),
        409,
        'ADVISORY_ID_TAKEN',
        /openssl/,
      ],
      ['not YAML', 'package: [', 400, 'ADVISORY_INVALID', /YAML/],
      [
        'too large',
        `${yaml('curl', fixedAdvisory('CGA-4444-4444-4444', 'CVE-1', '1-r0'))}#${'x'.repeat(1100 * 1024)}`,
        413,
        'ADVISORY_TOO_LARGE',
      ],
    ];
    for (const [what, body, status, code, message] of cases) {
      const res = await put('sec', 'curl', body);
      const json = (await res.json()) as { code: string; message: string };
      assert.equal(res.status, status, `${what}: ${JSON.stringify(json)}`);
      assert.equal(json.code, code, what);
      if (message) assert.match(json.message, message, what);
    }
    const huge = await put('sec', 'curl', 'x'.repeat(3 * 1024 * 1024));
    assert.equal(huge.status, 413, 'over the body limit');
    assert.equal(
      (await fetch(`${server.url}/api/v1/repos/sec/advisories/curl`)).status,
      404,
      'nothing stored',
    );
    assert.equal((await feed('sec')).headers.get('etag'), before, 'the feed is unchanged');
    const rejected = (await auditActions()).filter((e) => e.target === 'sec/curl');
    assert.ok(rejected.length >= cases.length && rejected.every((e) => e.result === 'rejected'));
  });

  test('an import is all or nothing, and names the bad file', async () => {
    const good = {
      file: 'a/brotli.advisories.yaml',
      content: yaml('brotli', fixedAdvisory('CGA-5555-5555-5555', 'CVE-2020-8927', '1.0.9-r0')),
    };
    const bad = {
      file: 'a/ko.advisories.yaml',
      content: yaml('ko', fixedAdvisory('CGA-6666-6666-6666', 'GHSA-2h5h-59f5-c5x9', 'v0.13')),
    };
    const misnamed = {
      file: 'a/kubectl.advisories.yaml',
      content: yaml('ko', fixedAdvisory('CGA-6666-6666-6666', 'GHSA-1', '1-r0')),
    };
    for (const files of [
      [good, bad],
      [good, misnamed],
    ]) {
      const res = await importFiles('imp', files);
      const json = (await res.json()) as { code: string; message: string; details: { file: string } };
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.equal(json.details.file, files[1]!.file);
      assert.match(json.message, new RegExp(`^${files[1]!.file}: `));
    }
    assert.equal(
      (
        await fetch(`${server.url}/api/v1/repos/imp/advisories/brotli`, {
          headers: { authorization: `Bearer ${TEST_TOKEN}` },
        })
      ).status,
      404,
      'the good file was not written',
    );
    assert.equal((await importFiles('imp', [good], tokens.publish!)).status, 403);
    const ok = await importFiles('imp', [good]);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { files: 1, packages: 1, added: 1, changed: 0, removed: 0 });
    const audit = await auditActions();
    assert.ok(audit.some((e) => e.action === 'advisory.import' && e.target === 'imp' && e.result === 'ok'));
    assert.ok(
      audit.some(
        (e) => e.action === 'advisory.write' && e.target === 'imp/brotli' && e.detail.import === true,
      ),
    );
  });

  test("a private repository's feed needs a read token", async () => {
    await makePrivate(server, 'private-sec');
    assert.equal((await feed('private-sec', 'glibc')).status, 401);
    const res = await feed('private-sec', 'glibc', { authorization: `Bearer ${tokens.reader}` });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'private, no-cache');
    assert.equal(
      (await feed('no-such-repo', 'glibc')).status,
      401,
      'a missing repository answers as a private one',
    );
  });

  test(
    'the wolfictl golden advisories imported give its packages, versions and ids',
    needsSharedFixtures,
    async () => {
      const dir = sharedFixture('advisories', 'wolfictl-golden', 'advisories');
      const files = readdirSync(dir).map((f) => ({ file: f, content: readFileSync(`${dir}/${f}`, 'utf8') }));
      const res = await importFiles('wolfi', files);
      assert.equal(res.status, 200, await res.clone().text());
      const expected = JSON.parse(
        readFileSync(sharedFixture('advisories', 'wolfictl-golden', 'security.expected.json'), 'utf8'),
      );
      const served = (await (await feed('wolfi', 'glibc')).json()) as { packages: unknown };
      assert.deepEqual(served.packages, expected.packages);
    },
  );

  test('reef advisories import sends a folder of .advisories.yaml files; a bad one stops it all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reef-advisories-'));
    try {
      writeFileSync(
        join(dir, 'bzip2.advisories.yaml'),
        yaml('bzip2', fixedAdvisory('CGA-7777-7777-7777', 'CVE-2019-12900', '1.0.8-r1')),
      );
      writeFileSync(join(dir, 'README.md'), 'not an advisory file');
      const env = { REEF_URL: server.url, REEF_TOKEN: tokens.advise! };
      const ok = await reef(['advisories', 'import', dir, '--repo', 'cli'], env);
      assertExit(ok, 0);
      assert.match(ok.stdout, /^imported 1 files into cli: 1 advisories added, 0 changed, 0 removed$/m);
      writeFileSync(
        join(dir, 'xz.advisories.yaml'),
        yaml('xz', fixedAdvisory('CGA-8888-8888-8888', 'CVE-2024-3094', '5.6.1')),
      );
      writeFileSync(
        join(dir, 'bzip2.advisories.yaml'),
        yaml('bzip2', fixedAdvisory('CGA-7777-7777-7777', 'CVE-2019-12900', '1.0.8-r2')),
      );
      const bad = await reef(['advisories', 'import', dir, '--repo', 'cli'], env);
      assertExit(bad, 1);
      assert.match(
        bad.stderr,
        /nothing written: xz\.advisories\.yaml: advisories\[0\]\.events\[0\]\.data\.fixed-version/,
      );
      const stored = (await (await fetch(`${server.url}/api/v1/repos/cli/advisories/bzip2`)).json()) as Json;
      assert.equal(
        stored.advisories[0].events[0].data['fixed-version'],
        '1.0.8-r1',
        'bzip2 kept its earlier advisory',
      );
      assertExit(await reef(['advisories', 'import', dir], env), 2);
    } finally {
      removeDir(dir);
    }
  });

  test("reef's signed statement of the feed: its subject is the feed as served, signed with the attestation key", async () => {
    const keys = (await (await fetch(`${server.url}/keys`)).json()) as { attestation: string };
    const pem = await (await fetch(`${server.url}/keys/${keys.attestation}`)).text();
    const verifier = keyVerifier(pem);
    const check = async () => {
      const served = Buffer.from(await (await feed('sec')).arrayBuffer());
      const res = await fetch(`${server.url}/sec/musl/security.json.sigstore.json`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/vnd.dev.sigstore.bundle.v0.3+json');
      const bundle = (await res.json()) as Json;
      verifier.verify(toSignedEntity(bundleFromJSON(bundle)));
      const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
      assert.deepEqual(statement.subject, [
        { name: 'security.json', digest: { sha256: createHash('sha256').update(served).digest('hex') } },
      ]);
      assert.equal(statement.predicateType, 'https://reef.dev/attestation/feed/v1');
      assert.equal(statement.predicate.url, `${server.url}/sec/musl/security.json`);
      return statement;
    };
    const first = await check();
    // A change: the next statement is about the new bytes, and the generation moved on.
    const res = await put(
      'sec',
      'openssl',
      yaml('openssl', fixedAdvisory('CGA-2222-2222-2222', 'CVE-2022-3602', '3.0.7-r1')),
    );
    assert.equal(res.status, 200);
    const second = await check();
    assert.notDeepEqual(second.subject, first.subject);
    assert.ok(second.predicate.advisoryGeneration > first.predicate.advisoryGeneration);
    // A tampered statement does not verify.
    const bundle = (await (await fetch(`${server.url}/sec/musl/security.json.sigstore.json`)).json()) as Json;
    const payload = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
    payload.subject[0].digest.sha256 = '0'.repeat(64);
    bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(payload)).toString('base64');
    assert.throws(() => verifier.verify(toSignedEntity(bundleFromJSON(bundle))));
  });
});
