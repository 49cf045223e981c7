import { createHash } from 'node:crypto';
import { PackageURL } from 'packageurl-js';
import { parseDependency } from '../apk/dependency.ts';
import type { PkgInfo } from '../apk/pkginfo.ts';
import type { ApkFile } from '../apk/read-apk.ts';
import { createLicenseTable } from './license.ts';
import { createIdAllocator, spdxDate, spdxIdPart } from './spdx-fields.ts';
import type { Json } from './types.ts';

/**
 * An SPDX 2.3 document for a package that brings none (every Alpine/abuild
 * package, issue 5): the package with its purl, licence, maintainer, origin
 * and commit from `.PKGINFO`, its dependencies and provides, and every file
 * of its data tar with the SHA-1 apk recorded for it. Deterministic: the same
 * input gives the same JSON (sorted lists, ids derived from content, no clock
 * and no random UUID), so stored bytes and ETags stay stable.
 */

export interface GenerateInput {
  repo: string;
  libc: string;
  arch: string;
  pkginfo: PkgInfo;
  files: ApkFile[];
  /** Hex SHA-256 of the whole .apk. */
  sha256: string;
  /** Index `C:` of the package (Q1 + base64 SHA-1 of the control member). */
  checksum: string;
  /** creationInfo.created; pass the build date to make the document a function of the package. */
  created: Date;
  /** documentNamespace prefix, an absolute URI (e.g. `<public url>/spdxdocs`). */
  namespaceBase: string;
  /** The vendor the package's purl names; unset: the repository's name. */
  distro?: PurlDistro;
}

/** A distribution as os-release names it: `ID` (`alpine`, `wolfi`) and `VERSION_ID` (`3.18.0`; none when rolling). */
export interface PurlDistro {
  id: string;
  version?: string;
}

/**
 * `pkg:apk/<vendor>/<name>@<version>?arch=<arch>&distro=<vendor>-<vendor version>`,
 * built and percent-encoded by packageurl-js. The purl spec's apk type takes
 * the vendor as namespace (`pkg:apk/alpine/curl@7.83.0-r0?arch=x86`; the spec
 * lowercases apk namespaces and names); the `distro` qualifier is spelled as
 * Syft spells it (syft/pkg/cataloger/alpine/package.go: `alpine-3.18.0`,
 * `wolfi-20230201`, or the id alone), which is what scanners match on.
 * Without a distro, the repository's name stands for the vendor.
 */
export function apkPurl(
  repo: string,
  name: string,
  version: string,
  arch: string,
  distro?: PurlDistro,
): string {
  const namespace = distro?.id ?? repo;
  const qualifier = distro ? [distro.id, distro.version].filter(Boolean).join('-') : repo;
  return new PackageURL('apk', namespace, name, version, { arch, distro: qualifier }, undefined).toString();
}

/** `Name <mail>` (abuild's maintainer syntax) → `Name (mail)` (SPDX 2.3 §7.5 agent syntax). */
function agent(text: string): string {
  return text.replace(/\s*<([^>]*)>\s*$/, ' ($1)').trim();
}

function isWebUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

const byKey =
  <T>(key: (x: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

/** A file entry of the SBOM: what apk installs at that path, with the SHA-1 apk checks. */
interface ListedFile {
  path: string;
  sha1: string;
  symlinkTarget: string | undefined;
}

/**
 * Regular files and symlinks with the SHA-1 apk recorded (`APK-TOOLS.checksum.SHA1`,
 * apk2 src/io_archive.c; for a symlink it is the SHA-1 of the target string).
 * A hard link installs its target's content, so it gets its target's SHA-1.
 * The last entry for a path wins, as on extraction. SPDX 2.3 §8.4 makes SHA-1
 * mandatory for a file, so an entry without one cannot be listed: it is
 * named in the package comment instead.
 */
function listFiles(files: ApkFile[]): { listed: ListedFile[]; unlisted: string[] } {
  const byPath = new Map<string, ListedFile | undefined>();
  for (const f of files) {
    if (f.type === 'file' || f.type === 'symlink') {
      byPath.set(f.name, f.sha1 ? { path: f.name, sha1: f.sha1, symlinkTarget: f.linkTarget } : undefined);
    } else if (f.type === 'hardlink') {
      const sha1 = f.sha1 ?? (f.linkTarget ? byPath.get(f.linkTarget)?.sha1 : undefined);
      byPath.set(f.name, sha1 ? { path: f.name, sha1, symlinkTarget: undefined } : undefined);
    }
  }
  const listed: ListedFile[] = [];
  const unlisted: string[] = [];
  for (const [path, file] of byPath) {
    if (file) listed.push({ ...file, sha1: file.sha1.toLowerCase() });
    else unlisted.push(path);
  }
  return { listed: listed.sort(byKey((f) => f.path)), unlisted: unlisted.sort() };
}

/** SPDX 2.3 §7.9: SHA-1 of the sorted, concatenated SHA-1s of the package's files. */
export function packageVerificationCode(sha1s: string[]): string {
  return createHash('sha1')
    .update(
      sha1s
        .map((s) => s.toLowerCase())
        .sort()
        .join(''),
    )
    .digest('hex');
}

interface NamedTarget {
  name: string;
  exact: string | undefined;
  constraints: string[];
}

/** Dependency tokens by name: `foo>=1 foo<2` is one package with both constraints. */
function namedTargets(tokens: string[]): NamedTarget[] {
  const byName = new Map<string, NamedTarget>();
  for (const token of tokens) {
    const dep = parseDependency(token);
    // `!name` is a conflict: a package that must be absent is no dependency.
    if (dep.conflict) continue;
    const entry = byName.get(dep.name) ?? { name: dep.name, exact: undefined, constraints: [] };
    if (dep.op && dep.version) {
      entry.constraints.push(`${dep.op}${dep.version}`);
      if (dep.op === '=') entry.exact = dep.version;
    }
    byName.set(dep.name, entry);
  }
  return [...byName.values()].sort(byKey((e) => e.name));
}

/**
 * The generated document in parts, so that it can be written and checked
 * without ever holding its whole tree (issue 7: 20,000 files make a ~15 MB
 * tree and an 8 MB text). `document` is every member in the order JSON text
 * lists them, except what grows with the file count: `files` is an empty
 * placeholder (present only when there are files) and `relationships` holds
 * only the DESCRIBES, dependency and provides entries. File entry `i` and
 * its CONTAINS relationship (appended after those) come from `file(i)` and
 * `contains(i)`, the one place either is built.
 */
export interface SpdxParts {
  document: Json;
  fileCount: number;
  file(i: number): Json;
  contains(i: number): Json;
}

/** The whole SPDX document as a tree: what the streamed text and the checks in windows must equal. */
export function generateSpdx(input: GenerateInput): Json {
  const parts = generateSpdxParts(input);
  return spdxWindow(parts, 0, parts.fileCount);
}

/**
 * The document with files `start` to `end` (exclusive) and their CONTAINS
 * relationships, everything else whole: a valid document of its own, so a
 * window can be validated and read like any SPDX document. (0, fileCount) is
 * the whole document.
 */
export function spdxWindow(parts: SpdxParts, start: number, end: number): Json {
  const doc: Json = { ...parts.document };
  const files: Json[] = [];
  const contains: Json[] = [];
  for (let i = start; i < end; i++) {
    files.push(parts.file(i));
    contains.push(parts.contains(i));
  }
  // Assigning an existing key keeps its place in the member order.
  if ('files' in doc) doc.files = files;
  doc.relationships = [...(parts.document.relationships as Json[]), ...contains];
  return doc;
}

/**
 * The document's JSON text in pieces, byte for byte
 * `JSON.stringify(generateSpdx(input), null, 2) + '\n'` (stored bytes and
 * ETags depend on it), one file entry or relationship at a time. Each
 * member and element is stringified on its own and indented to its depth:
 * JSON.stringify escapes newlines inside strings, so every '\n' of its
 * output is a line break that takes the indent.
 */
export function* spdxJsonText(parts: SpdxParts): Generator<string> {
  const fixed = parts.document.relationships as Json[];
  let first = true;
  for (const [key, value] of Object.entries(parts.document)) {
    yield `${first ? '{' : ','}\n  ${JSON.stringify(key)}: `;
    first = false;
    if (key === 'files') {
      yield* arrayText(counted(parts.fileCount, parts.file));
    } else if (key === 'relationships') {
      yield* arrayText(chained(fixed, counted(parts.fileCount, parts.contains)));
    } else {
      yield indented(JSON.stringify(value, null, 2), '  ');
    }
  }
  yield first ? '{}\n' : '\n}\n';
}

/** A member array of the document as JSON.stringify(…, null, 2) writes it at depth 1: `[]` when empty. */
function* arrayText(elements: Iterable<Json>): Generator<string> {
  let first = true;
  for (const element of elements) {
    yield `${first ? '[' : ','}\n    ${indented(JSON.stringify(element, null, 2), '    ')}`;
    first = false;
  }
  yield first ? '[]' : '\n  ]';
}

const indented = (text: string, pad: string) => text.replaceAll('\n', `\n${pad}`);

function* counted(n: number, element: (i: number) => Json): Generator<Json> {
  for (let i = 0; i < n; i++) yield element(i);
}

function* chained(head: Json[], tail: Iterable<Json>): Generator<Json> {
  yield* head;
  yield* tail;
}

export function generateSpdxParts(input: GenerateInput): SpdxParts {
  const p = input.pkginfo;
  const mainId = `SPDXRef-Package-${spdxIdPart(p.name)}`;
  const licenses = createLicenseTable();
  // Not every abuild licence is an SPDX expression (`custom`, `GPL2`); those become LicenseRefs.
  const licenseDeclared = p.license.trim() ? licenses.expressionFor(p.license) : 'NOASSERTION';
  const { listed, unlisted } = listFiles(input.files);

  const comment = [
    `apk index checksum (C:) ${input.checksum}; data hash ${p.datahash}.`,
    ...(unlisted.length > 0
      ? [
          `${unlisted.length} entries are not listed for want of an apk SHA-1 (SPDX requires one per file): ` +
            `${unlisted.slice(0, 20).join(', ')}${unlisted.length > 20 ? ', …' : ''}.`,
        ]
      : []),
  ].join(' ');
  const sourceInfo = [
    p.origin ? `built from origin ${p.origin}` : '',
    p.commit ? `at commit ${p.commit}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const main: Json = {
    SPDXID: mainId,
    name: p.name,
    versionInfo: p.version,
    // Where the .apk is downloaded from is the server's business, not the package's.
    downloadLocation: 'NOASSERTION',
    ...(isWebUrl(p.url) ? { homepage: p.url } : {}),
    // An abuild maintainer is a person: "Name <mail>".
    supplier: p.maintainer.trim() ? `Person: ${agent(p.maintainer)}` : 'NOASSERTION',
    filesAnalyzed: listed.length > 0,
    ...(listed.length > 0
      ? {
          packageVerificationCode: {
            packageVerificationCodeValue: packageVerificationCode(listed.map((f) => f.sha1)),
          },
        }
      : {}),
    checksums: [{ algorithm: 'SHA256', checksumValue: input.sha256.toLowerCase() }],
    // `origin` is the source package (the aports directory), `commit` the aports commit it was built from.
    ...(sourceInfo ? { sourceInfo } : {}),
    licenseConcluded: 'NOASSERTION',
    licenseDeclared,
    copyrightText: 'NOASSERTION',
    ...(p.description ? { summary: p.description } : {}),
    comment,
    externalRefs: [
      {
        referenceCategory: 'PACKAGE-MANAGER',
        referenceType: 'purl',
        referenceLocator: apkPurl(input.repo, p.name, p.version, input.arch, input.distro),
      },
    ],
    // As melange marks the package its SBOM describes.
    primaryPackagePurpose: 'APPLICATION',
  };

  const packages: Json[] = [main];
  const relationships: Json[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: mainId },
  ];
  const uniqueId = createIdAllocator(['SPDXRef-DOCUMENT', mainId]);
  const addNamed = (
    kind: string,
    tokens: string[],
    relationshipType: string,
    note: (c: string[]) => string,
  ) => {
    for (const target of namedTargets(tokens)) {
      const id = uniqueId(`SPDXRef-${kind}-${spdxIdPart(target.name)}`);
      packages.push({
        SPDXID: id,
        name: target.name,
        ...(target.exact ? { versionInfo: target.exact } : {}),
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
      });
      const text = note(target.constraints);
      relationships.push({
        spdxElementId: mainId,
        relationshipType,
        relatedSpdxElement: id,
        ...(text ? { comment: text } : {}),
      });
    }
  };
  // `depend`: names of packages, sonames (so:), commands (cmd:), pkg-config names (pc:), paths.
  addNamed('Depends', p.depends, 'DEPENDS_ON', (c) => (c.length ? `apk constraint ${c.join(' ')}` : ''));
  // `provides`: virtual names this package satisfies. SPDX 2.3 has no type for
  // "A satisfies requirements on name B" (PROVIDED_DEPENDENCY_OF means a dependency
  // the environment provides, VARIANT_OF another build of the same thing), so
  // OTHER with the comment §11.1 asks for states exactly that and no more.
  addNamed(
    'Provides',
    p.provides,
    'OTHER',
    (c) =>
      `apk provides: ${p.name} satisfies dependencies on this name${c.length ? ` (${c.join(' ')})` : ''}`,
  );

  // Allocated before any entry is built, in file order, as the whole tree allocated them.
  const fileIds = listed.map((_, i) => uniqueId(`SPDXRef-File-${i + 1}`));
  const file = (i: number): Json => {
    const f = listed[i]!;
    return {
      SPDXID: fileIds[i],
      // §8.1: relative to the package root, prefixed "./".
      fileName: `./${f.path.replace(/^(\.?\/)+/, '')}`,
      checksums: [{ algorithm: 'SHA1', checksumValue: f.sha1 }],
      ...(f.symlinkTarget !== undefined
        ? {
            fileTypes: ['OTHER'],
            comment: `symbolic link to ${f.symlinkTarget}; the SHA1 is of the target path, as apk records it`,
          }
        : {}),
    };
  };
  const contains = (i: number): Json => ({
    spdxElementId: mainId,
    relationshipType: 'CONTAINS',
    relatedSpdxElement: fileIds[i],
  });

  const extracted = licenses.entries();
  const nameVersion = `${p.name}-${p.version}`;
  const base = input.namespaceBase.replace(/#.*$/, '').replace(/\/+$/, '');
  const path = [input.repo, input.libc, input.arch].map(encodeURIComponent).join('/');
  const document: Json = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: nameVersion,
    // One per package file: the same name-version uploaded with other bytes gets another namespace.
    documentNamespace: `${base}/${path}/${encodeURIComponent(nameVersion)}-${input.sha256.toLowerCase()}`,
    creationInfo: {
      created: spdxDate(input.created),
      creators: ['Tool: reef'],
      comment:
        "Generated by reef from the package's .PKGINFO and data tar: the package carried no SBOM of its own.",
    },
    documentDescribes: [mainId],
    packages,
    ...(listed.length > 0 ? { files: [] } : {}),
    relationships,
    ...(extracted.length > 0 ? { hasExtractedLicensingInfos: extracted } : {}),
  };
  return { document, fileCount: listed.length, file, contains };
}
