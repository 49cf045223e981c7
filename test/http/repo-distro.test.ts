import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PackageURL } from 'packageurl-js';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  officialCycloneDxValidator,
  officialSpdxValidator,
  schemaErrors,
} from '../helpers/official-schemas.ts';
import { publish, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { needsSharedFixtures } from '../helpers/shared-fixtures.ts';

/**
 * A repository's `distro` setting names the vendor in the purls of the SBOMs
 * reef generates: the purl spec's apk namespace, and the `distro` qualifier
 * as Syft writes it. The purls are read back with packageurl-js's parser.
 */

interface SpdxDoc {
  packages: Array<{
    name: string;
    externalRefs?: Array<{ referenceType: string; referenceLocator: string }>;
  }>;
}
interface CdxDoc {
  metadata: { component: { purl?: string } };
}

const admin = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };

describe('repository distro: the vendor in generated purls', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  const settings = (repo: string, body: unknown) =>
    fetch(`${server.url}/api/v1/repos/${repo}`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify(body),
    });

  const mainPurl = async (repo: string, libc: string, name: string, version: string) => {
    const base = `${server.url}/${repo}/${libc}/x86_64/${name}-${version}.apk`;
    const spdx = (await (await fetch(`${base}.spdx.json`)).json()) as SpdxDoc;
    const locator = spdx.packages
      .find((p) => p.name === name)
      ?.externalRefs?.find((r) => r.referenceType === 'purl')?.referenceLocator;
    const cdx = (await (await fetch(`${base}.cdx.json`)).json()) as CdxDoc;
    assert.equal(cdx.metadata.component.purl, locator, 'CycloneDX carries the same purl');
    return { spdx, cdx, purl: PackageURL.fromString(locator!) };
  };

  test('unset, the repository name stands for the vendor, as before', async () => {
    assert.equal(
      (await publish(server, 'corp', 'glibc', await buildApk({ name: 'tool', depends: [] }))).status,
      201,
    );
    const { purl } = await mainPurl('corp', 'glibc', 'tool', '1.0.0-r0');
    assert.equal(purl.type, 'apk');
    assert.equal(purl.namespace, 'corp');
    assert.deepEqual({ ...purl.qualifiers }, { arch: 'x86_64', distro: 'corp' });
    const repos = (await (await fetch(`${server.url}/api/v1/repos`)).json()) as {
      repos: Array<{ name: string; distro: unknown }>;
    };
    assert.equal(repos.repos.find((r) => r.name === 'corp')?.distro, null);
  });

  test('set, new SBOMs name the vendor and its version as Syft does; stored ones keep theirs', async () => {
    const before = await fetch(`${server.url}/corp/glibc/x86_64/tool-1.0.0-r0.apk.spdx.json`);
    const beforeBytes = Buffer.from(await before.arrayBuffer());

    const res = await settings('corp', { distro: { id: 'wolfi', version: '20230201' } });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { distro: unknown }).distro, {
      id: 'wolfi',
      version: '20230201',
    });

    assert.equal(
      (
        await publish(
          server,
          'corp',
          'glibc',
          await buildApk({ name: 'glibc-x', version: '2.39-r0', depends: [] }),
        )
      ).status,
      201,
    );
    const { spdx, cdx, purl } = await mainPurl('corp', 'glibc', 'glibc-x', '2.39-r0');
    assert.equal(purl.toString(), 'pkg:apk/wolfi/glibc-x@2.39-r0?arch=x86_64&distro=wolfi-20230201');
    if (!needsSharedFixtures.skip) {
      const validateSpdx = officialSpdxValidator();
      assert.ok(validateSpdx(spdx), schemaErrors(validateSpdx));
      const validateCdx = officialCycloneDxValidator();
      assert.ok(validateCdx(cdx), schemaErrors(validateCdx));
    }

    // A package published before keeps the SBOM it was published with (served bytes never change).
    const again = await fetch(`${server.url}/corp/glibc/x86_64/tool-1.0.0-r0.apk.spdx.json`);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(beforeBytes));

    // A rolling distribution has no version: the qualifier is the id alone.
    assert.equal((await settings('alp', { distro: { id: 'alpine', version: '3.18.0' } })).status, 200);
    assert.equal((await settings('roll', { distro: { id: 'chainguard' } })).status, 200);
    assert.equal(
      (
        await publish(
          server,
          'alp',
          'musl',
          await buildApk({ name: 'musl-x', version: '1.2.3-r4', depends: [] }),
        )
      ).status,
      201,
    );
    assert.equal(
      (await publish(server, 'roll', 'glibc', await buildApk({ name: 'r', depends: [] }))).status,
      201,
    );
    assert.equal(
      (await mainPurl('alp', 'musl', 'musl-x', '1.2.3-r4')).purl.toString(),
      'pkg:apk/alpine/musl-x@1.2.3-r4?arch=x86_64&distro=alpine-3.18.0',
    );
    assert.equal(
      (await mainPurl('roll', 'glibc', 'r', '1.0.0-r0')).purl.toString(),
      'pkg:apk/chainguard/r@1.0.0-r0?arch=x86_64&distro=chainguard',
    );

    // null goes back to the repository name; omitted leaves it as it is.
    assert.equal((await settings('roll', { private: false })).status, 200);
    const kept = (await (await settings('roll', {})).json()) as { distro: unknown };
    assert.deepEqual(kept.distro, { id: 'chainguard' });
    const cleared = (await (await settings('roll', { distro: null })).json()) as { distro: unknown };
    assert.equal(cleared.distro, null);
  });

  test('a distro that is not an os-release value is refused', async () => {
    for (const distro of [
      { id: 'Alpine' },
      { id: 'wolfi os' },
      { id: '' },
      { id: 'a', version: '3/18' },
      { id: 'a', extra: 1 },
    ]) {
      const res = await settings('bad', { distro });
      assert.equal(res.status, 400, JSON.stringify(distro));
      assert.equal(((await res.json()) as { code: string }).code, 'BAD_REQUEST');
    }
  });
});
