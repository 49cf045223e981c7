/**
 * HTML for the web interface, rendered on the server. Everything a publisher
 * controls (names, descriptions, URLs, SBOM fields) is hostile here: `html`
 * escapes every interpolated value unless it is itself `html` (or `raw`,
 * for constant markup), and only http(s) URLs ever become links.
 */

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeText(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Value = Html | string | number | undefined | null | false | Value[];

function render(value: Value): string {
  if (value === undefined || value === null || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeText(String(value));
}

/** A tagged template: `html\`<td>${name}</td>\`` escapes `name`. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Constant markup written in reef's own source; never for data. */
export const raw = (text: string): Html => new Html(text);

/** A link when `url` is http(s); the text alone otherwise (no javascript:, data:, or relative tricks). */
export function externalLink(url: string | undefined, text = url): Html {
  if (!url) return html``;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
      return html`<a href="${parsed.href}" rel="nofollow noopener noreferrer">${text}</a>`;
    }
  } catch {
    // Not a URL: shown as text.
  }
  return html`${text}`;
}

/** A package's page; a noarch package shown within an arch's index keeps that arch. */
export function packagePath(
  p: { repo: string; libc: string; arch: string; name: string; version: string },
  arch = p.arch,
): string {
  return uiPath('packages', p.repo, p.libc, arch, p.name, p.version);
}

/** A path under the interface, each segment percent-encoded. */
export function uiPath(...segments: string[]): string {
  return `/ui/${segments.map(encodeURIComponent).join('/')}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/**
 * SECURITY: a path or an SBOM component name is any text a publisher chose.
 * Control characters (a newline makes one name look like two) and the bidirectional controls that reorder text
 * (`evil\u202Etxt.sh` reads as `evilhs.txt`) are shown as `\xNN` / `\u{…}`
 * escapes, and a backslash as `\\`, so what is shown names one thing only.
 * Escaping for HTML is the `html` template's.
 */
export function visible(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.codePointAt(0)!;
    if (c === '\\') out += '\\\\';
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (BIDI_CONTROLS.has(code)) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return out;
}

/** Unicode's bidirectional formatting characters (UAX #9): marks, embeddings, overrides, isolates. */
const BIDI_CONTROLS = new Set([
  0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069,
]);
