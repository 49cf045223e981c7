import type { TarEntryType } from '../../apk/tar-reader.ts';
import type { FileListStore, ListedFile } from '../../store/file-list-store.ts';
import type { StoredPackage } from '../../store/package-store.ts';
import { formatBytes, type Html, html, visible } from './html.ts';

/** Entries shown on a page; the API pages through the rest. */
const SHOWN = 1000;
/** Lists this short are shown open; longer ones behind a summary. */
const OPEN_UP_TO = 20;

/** `tar -tv`'s letter for each entry type. */
const TYPE_LETTERS: Record<TarEntryType, string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  hardlink: 'h',
  chardev: 'c',
  blockdev: 'b',
  fifo: 'p',
};

/**
 * The package page's "Files" section: the first entries of the package's
 * data tar, directories left out, and a link to the API for all of them.
 * The list is read from the store, recorded before the page is asked for
 * (ensureFileList); a package whose list could not be read says so.
 */
export async function renderFileList(
  fileLists: FileListStore,
  pkg: StoredPackage,
  base: string,
): Promise<Html> {
  const total = await fileLists.entryCount(pkg.id);
  const api = `${base}/api/v1/packages/${[pkg.repo, pkg.libc, pkg.arch, pkg.name, pkg.version].map(encodeURIComponent).join('/')}/files`;
  const link = html`<a href="${api}">the file list API</a>`;
  if (total === undefined) {
    return html`<h2>Files</h2>
<p class="muted">The file list of this package could not be read yet; ${link} tries again.</p>`;
  }
  const { files, next } = await fileLists.page(pkg.id, { limit: SHOWN, withDirectories: false });
  const note =
    next !== undefined
      ? html`<p class="muted">The first ${SHOWN.toLocaleString('en')} files; ${link} lists all ${total} entries.</p>`
      : files.length < total
        ? html`<p class="muted">Directories are left out; ${link} lists all ${total} entries.</p>`
        : '';
  const table = html`<div class="table-wrap"><table><thead><tr><th>mode</th><th>path</th><th>size</th></tr></thead><tbody>
${files.map(
  (f) =>
    html`<tr><td><code>${modeString(f)}</code></td><td><code>${visible(f.path)}</code>${linkOf(f)}</td><td>${f.type === 'file' ? formatBytes(f.size) : ''}</td></tr>`,
)}
</tbody></table></div>`;
  return html`<h2>Files <span class="muted">${total} entries</span></h2>
${
  files.length === 0
    ? html`<p class="muted">This package installs no files.</p>`
    : files.length <= OPEN_UP_TO
      ? table
      : // A long list would push the SBOM and provenance far down: it opens on request.
        html`<details><summary>Show the ${files.length} files</summary>${table}</details>`
}
${note}`;
}

function linkOf(f: ListedFile): Html | string {
  if (f.linkTarget === undefined) return '';
  const how = f.type === 'hardlink' ? 'link to' : '→';
  return html` ${how} <code>${visible(f.linkTarget)}</code>`;
}

/** `-rwxr-xr-x` as `ls -l` and `tar -tv` print it, setuid, setgid and sticky bits included. */
function modeString(f: Pick<ListedFile, 'type' | 'mode'>): string {
  const m = f.mode;
  const triple = (shift: number, special: boolean, letter: string) => {
    const x = (m >> shift) & 1;
    const last = special ? (x ? letter : letter.toUpperCase()) : x ? 'x' : '-';
    return `${(m >> (shift + 2)) & 1 ? 'r' : '-'}${(m >> (shift + 1)) & 1 ? 'w' : '-'}${last}`;
  };
  return (
    TYPE_LETTERS[f.type] +
    triple(6, (m & 0o4000) !== 0, 's') +
    triple(3, (m & 0o2000) !== 0, 's') +
    triple(0, (m & 0o1000) !== 0, 't')
  );
}
