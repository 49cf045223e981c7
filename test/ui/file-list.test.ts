import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BuildFile, buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, type TestServer } from '../helpers/server.ts';
import { tarListing } from '../helpers/tar-listing.ts';

/** The rows of the Files table: mode, path, link (`→ target` or `link to target`). */
function fileRows(page: string): Array<{ mode: string; path: string; link?: string }> {
  const section = page.slice(page.indexOf('<h2>Files'), page.indexOf('<h2>Versions'));
  return [
    ...section.matchAll(
      /<tr><td><code>([^<]*)<\/code><\/td><td><code>([^<]*)<\/code>(?: ((?:→|link to) <code>[^<]*<\/code>))?<\/td>/g,
    ),
  ].map(([, mode, path, link]) => ({
    mode: mode!,
    path: path!,
    ...(link ? { link: link.replace(/<\/?code>/g, '') } : {}),
  }));
}

describe('package page: Files', () => {
  let server: TestServer;
  let work: string;
  const page = async (name: string) => {
    const res = await fetch(`${server.url}/ui/packages/main/musl/x86_64/${name}/1.0-r0`);
    assert.equal(res.status, 200);
    return res.text();
  };
  const publishFiles = async (name: string, files: BuildFile[]) => {
    const apk = await buildApk({ name, version: '1.0-r0', depends: [], files });
    const res = await publish(server, 'main', 'musl', apk);
    assert.equal(res.status, 201, JSON.stringify(res.json));
    return {
      apk,
      id: (await server.services.store.find({ repo: 'main', libc: 'musl', arch: 'x86_64' }, name, '1.0-r0'))!
        .id,
    };
  };

  before(async () => {
    server = await startServer();
    work = mkdtempSync(join(tmpdir(), 'reef-file-page-'));
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
    removeDir(work);
  });

  test('files as GNU tar lists them, directories left out, links with their targets', async () => {
    const { apk } = await publishFiles('tree', [
      { name: 'usr/', type: 'directory' },
      { name: 'usr/bin/', type: 'directory' },
      { name: 'usr/bin/tree', content: 'an executable', mode: 0o755 },
      { name: 'usr/bin/t', type: 'symlink', linkTarget: 'tree' },
      { name: 'usr/bin/tree-again', type: 'link', linkTarget: 'usr/bin/tree' },
      { name: 'usr/sbin/helper', content: 'setuid', mode: 0o4755 },
      { name: 'etc/tree.conf', content: 'x', mode: 0o600 },
    ]);
    const text = await page('tree');
    const expected = tarListing(apk, work)
      .filter((e) => e.type !== 'directory')
      .map((e) => ({
        mode: e.modeText,
        path: e.path,
        ...(e.linkTarget === undefined
          ? {}
          : { link: `${e.type === 'hardlink' ? 'link to' : '→'} ${e.linkTarget}` }),
      }));
    assert.equal(expected.length, 5);
    assert.deepEqual(fileRows(text), expected);
    assert.match(text, /<h2>Files <span class="muted">7 entries<\/span><\/h2>/);
    assert.match(
      text,
      /Directories are left out; <a href="[^"]+\/api\/v1\/packages\/main\/musl\/x86_64\/tree\/1.0-r0\/files">/,
    );
  });

  test('a hostile file name is shown as text: escaped, one line, in reading order', async () => {
    const names = [
      'usr/share/<script>window.__pwned=1</script>',
      `usr/share/a"b'c&d`,
      'usr/share/line1\nusr/bin/sudo',
      'usr/share/evil\u202Etxt.sh',
      'usr/share/back\\slash',
    ];
    await publishFiles('hostile-names', [
      ...names.map((name) => ({ name, content: 'x' })),
      { name: 'usr/share/img', type: 'symlink', linkTarget: '"><img src=x onerror="window.__pwned=2">' },
    ]);
    const text = await page('hostile-names');
    assert.doesNotMatch(text, /<script>window/);
    assert.doesNotMatch(text, /<img/);
    const files = text.slice(text.indexOf('<h2>Files'), text.indexOf('<h2>Versions'));
    assert.doesNotMatch(files, /\u202E/);
    assert.deepEqual(
      fileRows(text).map((r) => r.path),
      [
        'usr/share/&lt;script&gt;window.__pwned=1&lt;/script&gt;',
        'usr/share/a&quot;b&#39;c&amp;d',
        'usr/share/line1\\x0ausr/bin/sudo',
        'usr/share/evil\\u{202e}txt.sh',
        'usr/share/back\\\\slash',
        'usr/share/img',
      ],
    );
    assert.equal(
      fileRows(text).at(-1)!.link,
      '→ &quot;&gt;&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;',
    );
    // The API gives the names exactly.
    const api = await fetch(`${server.url}/api/v1/packages/main/musl/x86_64/hostile-names/1.0-r0/files`);
    const body = (await api.json()) as { files: Array<{ path: string }> };
    assert.deepEqual(
      body.files.map((f) => f.path),
      [...names, 'usr/share/img'],
    );
  });

  test('a long list: the first 1,000 files, and a link to the API for all of them', async () => {
    await publishFiles(
      'long',
      Array.from({ length: 1005 }, (_, i) => ({
        name: `usr/share/long/f${String(i).padStart(4, '0')}`,
        content: '',
      })),
    );
    const text = await page('long');
    const rows = fileRows(text);
    assert.equal(rows.length, 1000);
    assert.equal(rows.at(-1)!.path, 'usr/share/long/f0999');
    assert.match(
      text,
      /The first 1,000 files; <a href="[^"]+\/long\/1.0-r0\/files">the file list API<\/a> lists all 1005 entries/,
    );
  });

  test('a package published before lists were kept: the page reads its list; a blob that is not the package shows none', async () => {
    const { id } = await publishFiles('older', [{ name: 'usr/bin/older', content: 'x', mode: 0o755 }]);
    const { database } = server.services;
    const forget = async () => {
      await database.run('DELETE FROM package_files WHERE package_id = ?', [id]);
      await database.run('DELETE FROM package_file_lists WHERE package_id = ?', [id]);
    };
    await forget();
    assert.deepEqual(fileRows(await page('older')), [{ mode: '-rwxr-xr-x', path: 'usr/bin/older' }]);

    await forget();
    const sha256 = (await server.services.store.getById(id))!.sha256;
    const blob = join(server.dataDir, 'blobs', 'sha256', sha256.slice(0, 2), sha256);
    const original = readFileSync(blob);
    writeFileSync(blob, await buildApk({ name: 'impostor', version: '1.0-r0', depends: [] }));
    try {
      const text = await page('older');
      assert.deepEqual(fileRows(text), []);
      assert.match(text, /The file list of this package could not be read yet/);
      assert.doesNotMatch(text, /hello\.txt/);
    } finally {
      writeFileSync(blob, original);
    }
  });
});
