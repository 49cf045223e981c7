import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BuildFile, buildApk } from '../helpers/apk-builder.ts';
import {
  createToken,
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';
import { type ListedEntry, tarListing } from '../helpers/tar-listing.ts';

interface ListJson {
  files: ListedEntry[];
  total: number;
  next: string | null;
}

const admin = { authorization: `Bearer ${TEST_TOKEN}` };

describe('package file lists (HTTP)', () => {
  let server: TestServer;
  let work: string;

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.url}${path}`, { headers });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const listOf = async (path: string, headers: Record<string, string> = {}) => {
    const res = await get(path, headers);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as unknown as ListJson;
  };
  const filesPath = (name: string, version = '1.0-r0', repo = 'main') =>
    `/api/v1/packages/${repo}/musl/x86_64/${name}/${version}/files`;
  const publishFiles = async (name: string, files: BuildFile[], repo = 'main') => {
    const apk = await buildApk({ name, version: '1.0-r0', depends: [], files });
    const res = await publish(server, repo, 'musl', apk);
    assert.equal(res.status, 201, JSON.stringify(res.json));
    return {
      apk,
      id: (await server.services.store.find({ repo, libc: 'musl', arch: 'x86_64' }, name, '1.0-r0'))!.id,
    };
  };
  const rowCounts = async (id: number) => ({
    files: (
      await server.services.database.get<{ n: number }>(
        'SELECT COUNT(*) AS n FROM package_files WHERE package_id = ?',
        [id],
      )
    )?.n,
    recorded:
      (await server.services.database.get('SELECT 1 FROM package_file_lists WHERE package_id = ?', [id])) !==
      undefined,
  });
  const listedByTar = (apk: Buffer): ListedEntry[] => tarListing(apk, work).map(({ modeText: _, ...e }) => e);
  /** As a package published before migration 0012 is: no list recorded. */
  const forgetList = async (id: number) => {
    await server.services.database.run('DELETE FROM package_files WHERE package_id = ?', [id]);
    await server.services.database.run('DELETE FROM package_file_lists WHERE package_id = ?', [id]);
    assert.deepEqual(await rowCounts(id), { files: 0, recorded: false });
  };

  const TREE: BuildFile[] = [
    { name: 'usr/', type: 'directory' },
    { name: 'usr/bin/', type: 'directory' },
    { name: 'usr/bin/tree', content: 'an executable', mode: 0o755 },
    { name: 'usr/bin/t', type: 'symlink', linkTarget: 'tree' },
    { name: 'usr/bin/tree-again', type: 'link', linkTarget: 'usr/bin/tree' },
    { name: 'usr/sbin/suid-helper', content: 'setuid', mode: 0o4755 },
    { name: 'usr/share/doc/tree/README', content: 'x'.repeat(5000) },
    { name: 'etc/tree.conf', content: '', mode: 0o600 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ];

  before(async () => {
    server = await startServer();
    work = mkdtempSync(join(tmpdir(), 'reef-files-'));
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  test('the list is the data tar as GNU tar lists it, in archive order', async () => {
    const { apk } = await publishFiles('tree', TREE);
    const list = await listOf(filesPath('tree'));
    const expected = listedByTar(apk);
    assert.equal(expected.length, TREE.length, 'tar saw every entry');
    assert.deepEqual(list.files, expected);
    assert.equal(list.total, TREE.length);
    assert.equal(list.next, null);
    // A noarch package answers under any arch, like its other routes; this one is x86_64 only.
    assert.equal((await get('/api/v1/packages/main/musl/aarch64/tree/1.0-r0/files', admin)).status, 404);
  });

  test('pages: limit and after walk the whole list once; a bad cursor or limit is a 400', async () => {
    const many: BuildFile[] = Array.from({ length: 1500 }, (_, i) => ({
      name: `usr/share/many/f${String(i).padStart(4, '0')}`,
      content: String(i),
    }));
    await publishFiles('many', many);
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const query: string = `?limit=600${after ? `&after=${after}` : ''}`;
      const page = await listOf(`${filesPath('many')}${query}`);
      assert.equal(page.total, 1500);
      assert.ok(page.files.length <= 600);
      seen.push(...page.files.map((f) => f.path));
      after = page.next;
      pages++;
    } while (after !== null);
    assert.equal(pages, 3);
    assert.deepEqual(
      seen,
      many.map((f) => f.name),
    );
    const bad = await get(`${filesPath('many')}?after=not-a-cursor`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'BAD_REQUEST');
    assert.equal((await get(`${filesPath('many')}?limit=0`)).body.code, 'BAD_REQUEST');
    assert.equal((await get(`${filesPath('many')}?limit=10001`)).body.code, 'BAD_REQUEST');
  });

  test('a private package: a caller who may not read it gets what its metadata route answers, and no path', async () => {
    await publishFiles('secret-tool', [{ name: 'usr/bin/secret-tool-binary', content: 'x' }], 'vault');
    await makePrivate(server, 'vault');
    const other = { authorization: `Bearer ${await createToken(server, 'main-reader', ['main:read'])}` };
    const metadata = '/api/v1/packages/vault/musl/x86_64/secret-tool/1.0-r0';
    for (const headers of [{}, other]) {
      const files = await fetch(`${server.url}${filesPath('secret-tool', '1.0-r0', 'vault')}`, { headers });
      const meta = await fetch(`${server.url}${metadata}`, { headers });
      assert.ok(files.status >= 400 && files.status < 500);
      assert.equal(files.status, meta.status);
      const text = await files.text();
      assert.equal(JSON.parse(text).code, ((await meta.json()) as { code: string }).code);
      assert.doesNotMatch(text, /secret-tool-binary/);
    }
    // A name that does not exist answers as a private one does: nothing tells them apart.
    const none = await fetch(`${server.url}${filesPath('secret-tool', '1.0-r0', 'no-such-repo')}`);
    const hidden = await fetch(`${server.url}${filesPath('secret-tool', '1.0-r0', 'vault')}`);
    assert.equal(none.status, hidden.status);
    const allowed = await listOf(filesPath('secret-tool', '1.0-r0', 'vault'), admin);
    assert.deepEqual(
      allowed.files.map((f) => f.path),
      ['usr/bin/secret-tool-binary'],
    );
    const missing = await get(filesPath('no-such-package'));
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'PACKAGE_NOT_FOUND');
  });

  test('a package published before lists were kept gets its list read from the stored .apk, once', async () => {
    const { apk, id } = await publishFiles('older', TREE);
    assert.deepEqual(await rowCounts(id), { files: TREE.length, recorded: true }, 'recorded at publish');
    await forgetList(id);
    // Several callers at once: one read of the blob, the same answer for all.
    const { blobs } = server.services;
    const read = blobs.read;
    let reads = 0;
    blobs.read = (...args) => {
      reads++;
      return read.apply(blobs, args);
    };
    let lists: ListJson[];
    try {
      lists = await Promise.all([1, 2, 3].map(() => listOf(filesPath('older'))));
    } finally {
      blobs.read = read;
    }
    assert.equal(reads, 1);
    for (const list of lists) {
      assert.deepEqual(list.files, listedByTar(apk));
      assert.equal(list.total, TREE.length);
    }
    assert.deepEqual(await rowCounts(id), { files: TREE.length, recorded: true });
  });

  test('stored bytes that are not the package: no list is served, none is kept', {
    skip: process.env.REEF_TEST_BLOB === 's3' && 'corrupts a blob file of the data folder',
  }, async () => {
    const { id } = await publishFiles('swapped', TREE);
    const other = await buildApk({
      name: 'impostor',
      version: '1.0-r0',
      depends: [],
      files: [{ name: 'usr/x' }],
    });
    await forgetList(id);
    const sha256 = (await server.services.store.getById(id))!.sha256;
    const blob = join(server.dataDir, 'blobs', 'sha256', sha256.slice(0, 2), sha256);
    const original = readFileSync(blob);
    writeFileSync(blob, other);
    try {
      const res = await get(filesPath('swapped'));
      assert.equal(res.status, 500);
      assert.equal(res.body.code, 'INTERNAL');
      assert.doesNotMatch(JSON.stringify(res.body), /usr\/x/);
      assert.deepEqual(await rowCounts(id), { files: 0, recorded: false });
      // The failure is remembered for those bytes: asking again reads nothing.
      const { blobs } = server.services;
      const read = blobs.read;
      let reads = 0;
      blobs.read = (...args) => {
        reads++;
        return read.apply(blobs, args);
      };
      try {
        assert.equal((await get(filesPath('swapped'))).status, 500);
        assert.equal(
          (await fetch(`${server.url}/ui/packages/main/musl/x86_64/swapped/1.0-r0`)).status,
          200,
          'the page still renders',
        );
      } finally {
        blobs.read = read;
      }
      assert.equal(reads, 0);
      // Other bytes (here truncated; a restore from a backup alike) are read again.
      writeFileSync(blob, original.subarray(0, original.length - 100));
      assert.equal((await get(filesPath('swapped'))).status, 500, 'a truncated blob');
      assert.deepEqual(await rowCounts(id), { files: 0, recorded: false });
    } finally {
      writeFileSync(blob, original);
    }
    assert.equal((await listOf(filesPath('swapped'))).total, TREE.length);
  });

  test('a list is written with its package or not at all; deleting the package deletes it', async () => {
    const { fileLists } = server.services;
    const save = fileLists.save;
    fileLists.save = () => {
      throw new Error('simulated failure while writing the list');
    };
    try {
      const apk = await buildApk({ name: 'atomic', version: '1.0-r0', depends: [] });
      assert.equal((await publish(server, 'main', 'musl', apk)).status, 500);
    } finally {
      fileLists.save = save;
    }
    assert.equal(
      await server.services.store.find({ repo: 'main', libc: 'musl', arch: 'x86_64' }, 'atomic', '1.0-r0'),
      undefined,
    );
    assert.equal((await get('/api/v1/packages/main/musl/x86_64/atomic/1.0-r0')).status, 404);

    const { id } = await publishFiles('doomed', TREE);
    assert.deepEqual(await rowCounts(id), { files: TREE.length, recorded: true });
    const deleted = await fetch(`${server.url}/api/v1/repos/main/musl/x86_64/doomed/1.0-r0`, {
      method: 'DELETE',
      headers: admin,
    });
    assert.equal(deleted.status, 204);
    assert.deepEqual(await rowCounts(id), { files: 0, recorded: false });
    assert.equal((await get(filesPath('doomed'))).status, 404);
  });
});
