import assert from 'node:assert/strict';
import { buildApk } from './apk-builder.ts';
import { publish, type TestServer } from './server.ts';

/** What a hostile publisher puts in every field it controls. */
export const HOSTILE = {
  name: 'evil-pkg',
  version: '1.0-r0',
  description: '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">',
  license: '"><svg onload="window.__pwned=3">',
  url: 'javascript:window.__pwned=4',
  maintainer: "<a href='javascript:window.__pwned=5'>me</a>",
};

export async function publishHostile(server: TestServer, repo = 'main'): Promise<void> {
  const apk = await buildApk({
    name: HOSTILE.name,
    version: HOSTILE.version,
    depends: [],
    description: HOSTILE.description,
    license: HOSTILE.license,
    extraPkginfo: [`maintainer = ${HOSTILE.maintainer}`],
    url: HOSTILE.url,
  });
  const res = await publish(server, repo, 'musl', apk);
  assert.equal(res.status, 201, JSON.stringify(res.json));
}
