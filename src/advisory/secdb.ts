import { type AdvisoryDocument, latestEvent } from './document.ts';

/**
 * The security feed scanners read for apk distributions: Alpine's secdb
 * format, `security.json` (secdb.alpinelinux.org; read by anchore/vunnel and
 * aquasecurity/vuln-list-update), built from a
 * repository's advisories exactly as wolfictl builds Wolfi's: per source
 * package, `secfixes` maps a fixed version to the ids it fixes; "0" lists
 * ids the package is not affected by (a false-positive determination). Only
 * an advisory's latest event counts; other states are not in the feed.
 * Each alias is an entry (the advisory's own id is not); ids are sorted
 * within a version; a package with no entry is left out.
 */

export interface SecdbHeader {
  /** The download URL template; `{{urlprefix}}`, `{{reponame}}`, `{{arch}}`, `{{pkg.name}}`, `{{pkg.ver}}`. */
  apkurl: string;
  archs: string[];
  reponame: string;
  urlprefix: string;
}

/** Byte order, as Go sorts the map keys and strings wolfictl writes. */
const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What a package's advisories contribute: fixed version (or "0") → ids. */
export function secfixesOf(doc: AdvisoryDocument): Map<string, string[]> {
  const fixes = new Map<string, string[]>();
  for (const advisory of [...doc.advisories].sort((a, b) => byBytes(a.id, b.id))) {
    const latest = latestEvent(advisory);
    const version =
      latest.type === 'fixed'
        ? latest.data['fixed-version']
        : latest.type === 'false-positive-determination'
          ? '0'
          : undefined;
    if (version === undefined || !advisory.aliases?.length) continue;
    const ids = fixes.get(version) ?? [];
    ids.push(...advisory.aliases);
    fixes.set(version, ids);
  }
  for (const ids of fixes.values()) ids.sort(byBytes);
  return fixes;
}

/**
 * The feed's bytes: the five keys in wolfictl's order, two-space indented
 * (Go's json.MarshalIndent, which escapes <, > and & as JSON.stringify does
 * not; no id or version can hold them), packages by name, versions in byte
 * order. JSON.stringify cannot keep that key order: it puts "0" and other
 * integer-like keys first, numerically.
 */
export function renderSecdb(header: SecdbHeader, docs: Iterable<AdvisoryDocument>): Buffer {
  const packages: string[] = [];
  for (const doc of [...docs].sort((a, b) => byBytes(a.package, b.package))) {
    const fixes = secfixesOf(doc);
    if (fixes.size === 0) continue;
    const versions = [...fixes.keys()].sort(byBytes).map((version) => {
      const ids = fixes.get(version)!.map((id) => `            ${JSON.stringify(id)}`);
      return `          ${JSON.stringify(version)}: [\n${ids.join(',\n')}\n          ]`;
    });
    packages.push(
      `    {\n      "pkg": {\n        "name": ${JSON.stringify(doc.package)},\n        "secfixes": {\n${versions.join(',\n')}\n        }\n      }\n    }`,
    );
  }
  const head = JSON.stringify(
    { apkurl: header.apkurl, archs: header.archs, reponame: header.reponame, urlprefix: header.urlprefix },
    null,
    2,
  ).slice(0, -2);
  const body = packages.length === 0 ? '[]' : `[\n${packages.join(',\n')}\n  ]`;
  return Buffer.from(`${head},\n  "packages": ${body}\n}`);
}
