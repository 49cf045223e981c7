import { AppError } from '../errors.ts';
import { spdxChecksumAlgorithm } from './checksum.ts';
import { CDX_PROPERTY } from './cyclonedx-properties.ts';
import { type SpdxParts, spdxWindow } from './generate.ts';
import { arr, asserted, obj, str, strs } from './json.ts';
import { cdxLicenseExpression } from './license.ts';
import { MAX_SBOM_BYTES } from './limits.ts';
import type { Json, ParsedSbom, SbomComponent, SbomSummary } from './types.ts';
import { validateCycloneDx, validateSpdx } from './validate.ts';

/**
 * Reads an SPDX 2.3 (or 2.2) or CycloneDX 1.5/1.6 JSON document sent by a
 * publisher or embedded by melange (melange pkg/build/sbom/generator.go),
 * validates it against its format's schema and extracts what the auditor API
 * indexes.
 *
 * SECURITY: the bytes are untrusted. The size is checked before anything
 * else, the nesting depth by a scan of the bytes before JSON.parse builds
 * anything (V8 parses 8 million nested arrays without complaint, in seconds),
 * and only then does a schema walk the document.
 */

export interface SbomLimits {
  maxBytes: number;
  maxDepth: number;
}

export const DEFAULT_SBOM_LIMITS: SbomLimits = { maxBytes: MAX_SBOM_BYTES, maxDepth: 64 };

const UTF8_BOM = [0xef, 0xbb, 0xbf];

export function parseSbom(bytes: Buffer, limits: SbomLimits = DEFAULT_SBOM_LIMITS): ParsedSbom {
  checkSbomSize(bytes.length, limits);
  // A UTF-8 byte order mark is not JSON (RFC 8259 §8.1) but editors write it; skip it.
  const start = UTF8_BOM.every((b, i) => bytes[i] === b) ? 3 : 0;
  checkNesting(bytes, start, limits.maxDepth);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start));
  } catch (err) {
    throw new AppError('SBOM_INVALID_JSON', 'the SBOM is not UTF-8 text', { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AppError('SBOM_INVALID_JSON', `the SBOM is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseSbomDocument(doc);
}

/**
 * The format checks, schema validation and extraction of parseSbom, for a
 * document already in memory: reef's generated SBOM is validated as built,
 * without a second copy of its tree from JSON.parse (20,000 files make an
 * 8 MB document). The caller has bounded its size.
 */
export function parseSbomDocument(doc: unknown): ParsedSbom {
  const d = obj(doc);
  if (!d) throw new AppError('SBOM_UNKNOWN_FORMAT', 'the SBOM is not a JSON object');

  if ('spdxVersion' in d) {
    if (d.spdxVersion !== 'SPDX-2.3' && d.spdxVersion !== 'SPDX-2.2') {
      throw new AppError(
        'SBOM_UNKNOWN_FORMAT',
        `spdxVersion '${String(d.spdxVersion).slice(0, 40)}' is not accepted; send SPDX 2.3 (or 2.2) JSON`,
      );
    }
    validateSpdx(d);
    return readSpdx(d);
  }
  if (d.bomFormat === 'CycloneDX') {
    if (d.specVersion !== '1.5' && d.specVersion !== '1.6') {
      throw new AppError(
        'SBOM_UNKNOWN_FORMAT',
        `CycloneDX specVersion '${String(d.specVersion).slice(0, 40)}' is not accepted; send CycloneDX 1.5 or 1.6 JSON`,
      );
    }
    validateCycloneDx(d, d.specVersion);
    return readCycloneDx(d);
  }
  const spdx3 = '@context' in d ? ' (SPDX 3 JSON-LD is not accepted)' : '';
  throw new AppError(
    'SBOM_UNKNOWN_FORMAT',
    `the document is neither SPDX 2.3 JSON (spdxVersion) nor CycloneDX 1.5/1.6 JSON (bomFormat)${spdx3}`,
  );
}

/** Files per window: small next to the document, large enough that the packages checked again per window cost little. */
const GENERATED_WINDOW_FILES = 1000;

/**
 * parseSbomDocument for reef's own generated SPDX, without its whole tree
 * (issue 7): the document is checked and read in windows (spdxWindow), each
 * a complete document with every member but a slice of the files and of their
 * CONTAINS relationships. Every window passes the full SPDX schema and
 * reference rules, so every element is checked in the context the schema
 * gives it; still a runtime check because file names, link targets, SHA-1s
 * and every .PKGINFO value in the document are the uploader's (a pax SHA-1
 * that is not hex fails the checksum pattern). What windows cannot see, an
 * SPDXID used in two windows, cannot happen: one allocator hands out every id
 * (generate.ts). The components are the packages once, then every window's
 * files in order: what parseSbomDocument gives for the whole tree. Errors
 * name the path in the whole document.
 */
export function parseGeneratedSpdx(parts: SpdxParts, windowFiles = GENERATED_WINDOW_FILES): SbomSummary {
  const reading = readGeneratedSpdx(parts, windowFiles);
  for (;;) {
    const step = reading.next();
    if (step.done) return step.value;
  }
}

/**
 * parseGeneratedSpdx one window per step, for a caller that gives the event
 * loop a turn between windows: 100,000 files are a hundred windows and
 * seconds of schema checks, too long to hold the server's one thread.
 */
export function* readGeneratedSpdx(
  parts: SpdxParts,
  windowFiles = GENERATED_WINDOW_FILES,
): Generator<void, SbomSummary> {
  const packageCount = arr(parts.document.packages).length;
  const fixedRelationships = arr(parts.document.relationships).length;
  let first: ParsedSbom | undefined;
  const components: SbomComponent[] = [];
  for (let start = 0; start === 0 || start < parts.fileCount; start += windowFiles) {
    if (start > 0) yield;
    const window = spdxWindow(parts, start, Math.min(start + windowFiles, parts.fileCount));
    let parsed: ParsedSbom;
    try {
      parsed = parseSbomDocument(window);
    } catch (err) {
      throw inWholeDocument(err, start, fixedRelationships);
    }
    first ??= parsed;
    for (let i = start === 0 ? 0 : packageCount; i < parsed.components.length; i++) {
      components.push(parsed.components[i]!);
    }
  }
  return { format: first!.format, specVersion: first!.specVersion, describes: first!.describes, components };
}

/** A window's `/files/j…` is `/files/(start + j)…` of the whole document; a CONTAINS relationship likewise. */
function inWholeDocument(err: unknown, start: number, fixedRelationships: number): unknown {
  if (start === 0 || !(err instanceof AppError)) return err;
  const path = err.details?.path;
  const m = typeof path === 'string' ? /^\/(files|relationships)\/(\d+)/.exec(path) : null;
  if (!m || (m[1] === 'relationships' && Number(m[2]) < fixedRelationships)) return err;
  const whole = `/${m[1]}/${Number(m[2]) + start}${(path as string).slice(m[0].length)}`;
  return new AppError(err.code, err.message.replace(`'${path}'`, `'${whole}'`), {
    cause: err,
    details: { ...err.details, path: whole },
  });
}

export function checkSbomSize(size: number, limits: SbomLimits = DEFAULT_SBOM_LIMITS): void {
  if (size > limits.maxBytes) {
    throw new AppError('SBOM_TOO_LARGE', `the SBOM is larger than ${limits.maxBytes} bytes`, {
      details: { limit: limits.maxBytes },
    });
  }
}

/**
 * The deepest nesting of objects and arrays, counted over the raw bytes: a
 * quote opens or closes a string (a backslash escapes the next byte), and
 * brackets inside strings do not count. UTF-8 continuation bytes are never
 * ASCII, so a byte scan is exact. Malformed input is left to JSON.parse.
 */
function checkNesting(bytes: Buffer, start: number, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = start; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) {
        throw new AppError(
          'SBOM_SCHEMA_INVALID',
          `the SBOM nests objects and arrays deeper than ${maxDepth} levels`,
          { details: { limit: maxDepth, offset: i } },
        );
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
}

/** SPDX elements the document is about: documentDescribes, DESCRIBES from the document, DESCRIBED_BY to it (§11.1). */
export function describedSpdxIds(doc: Json): string[] {
  const documentId = String(doc.SPDXID);
  const ids = [...strs(doc.documentDescribes)];
  for (const r of arr(doc.relationships)) {
    if (r.relationshipType === 'DESCRIBES' && r.spdxElementId === documentId) {
      ids.push(String(r.relatedSpdxElement));
    }
    if (r.relationshipType === 'DESCRIBED_BY' && r.relatedSpdxElement === documentId) {
      ids.push(String(r.spdxElementId));
    }
  }
  return [...new Set(ids)];
}

/** The first purl among a package's external references (§7.21, Annex F). */
export function spdxPurl(p: Json): string | undefined {
  return str(
    arr(p.externalRefs).find((r) => r.referenceType === 'purl' && str(r.referenceLocator))?.referenceLocator,
  );
}

function spdxChecksums(checksums: unknown): SbomComponent['checksums'] {
  return arr(checksums).map((c) => ({
    algorithm: String(c.algorithm),
    value: String(c.checksumValue).toLowerCase(),
  }));
}

function readSpdx(d: Json): ParsedSbom {
  const components: SbomComponent[] = [];
  const described = new Map<string, { name: string; version: string | undefined }>();
  const wanted = describedSpdxIds(d);
  const isWanted = new Set(wanted);
  for (const p of arr(d.packages)) {
    const c: SbomComponent = { name: String(p.name), checksums: spdxChecksums(p.checksums) };
    const version = str(p.versionInfo);
    if (version) c.version = version;
    const purl = spdxPurl(p);
    if (purl) c.purl = purl;
    const license = asserted(p.licenseDeclared) ?? asserted(p.licenseConcluded);
    if (license) c.license = license;
    const supplier = asserted(p.supplier);
    if (supplier) c.supplier = supplier.replace(/^(Organization|Person): */, '');
    components.push(c);
    if (isWanted.has(String(p.SPDXID))) described.set(String(p.SPDXID), { name: c.name, version });
  }
  for (const f of arr(d.files)) {
    components.push({ name: String(f.fileName), checksums: spdxChecksums(f.checksums) });
    if (isWanted.has(String(f.SPDXID))) {
      described.set(String(f.SPDXID), { name: String(f.fileName), version: undefined });
    }
  }
  return {
    format: 'spdx',
    specVersion: String(d.spdxVersion).replace(/^SPDX-/, ''),
    document: d,
    // In the order the document names them.
    describes: wanted.flatMap((id) => described.get(id) ?? []),
    components,
    relationships: arr(d.relationships).map((r) => ({
      from: String(r.spdxElementId),
      type: String(r.relationshipType),
      to: String(r.relatedSpdxElement),
    })),
  };
}

/** metadata.component, then every component with the ones nested in it (assemblies), in document order. */
export function cycloneDxComponents(doc: Json): {
  main: Json | undefined;
  all: Array<{ component: Json; parent: Json | undefined }>;
} {
  const all: Array<{ component: Json; parent: Json | undefined }> = [];
  // Iterative, depth-first, in document order.
  const visit = (roots: Json[]) => {
    const stack = roots.map((component) => ({ component, parent: undefined as Json | undefined })).reverse();
    while (stack.length > 0) {
      const next = stack.pop()!;
      all.push(next);
      const children = arr(next.component.components);
      for (let i = children.length - 1; i >= 0; i--) {
        stack.push({ component: children[i]!, parent: next.component });
      }
    }
  };
  const main = obj(obj(doc.metadata)?.component);
  if (main) visit([main]);
  visit(arr(doc.components));
  return { main, all };
}

/** A CycloneDX component's name as one string: Maven-style groups are part of the identity. */
export function cycloneDxName(c: Json): string {
  return str(c.group) ? `${c.group}/${String(c.name)}` : String(c.name);
}

function readCycloneDx(d: Json): ParsedSbom {
  const { main, all } = cycloneDxComponents(d);
  const relationships: ParsedSbom['relationships'] = [];
  const components = all.map(({ component: c, parent }): SbomComponent => {
    const out: SbomComponent = {
      name: cycloneDxName(c),
      checksums: arr(c.hashes).map((h) => ({
        algorithm: spdxChecksumAlgorithm(String(h.alg)) ?? String(h.alg),
        value: String(h.content).toLowerCase(),
      })),
    };
    if (str(c.version)) out.version = String(c.version);
    if (str(c.purl)) out.purl = String(c.purl);
    const license = cdxLicenseExpression(c.licenses)?.expression;
    if (license) out.license = license;
    const supplier =
      str(obj(c.supplier)?.name) ??
      str(c.author) ??
      str(arr(c.authors)[0]?.name) ??
      str(obj(c.manufacturer)?.name);
    if (supplier) out.supplier = supplier;
    const ref = str(c['bom-ref']);
    // A nested component is part of its parent (CycloneDX assemblies).
    if (ref && parent && str(parent['bom-ref'])) {
      relationships.push({ from: String(parent['bom-ref']), type: 'CONTAINS', to: ref });
    }
    if (ref) {
      for (const p of arr(c.properties)) {
        const name = String(p.name);
        if (name.startsWith(CDX_PROPERTY.relationship) && str(p.value)) {
          relationships.push({
            from: ref,
            type: name.slice(CDX_PROPERTY.relationship.length),
            to: String(p.value),
          });
        }
      }
    }
    return out;
  });
  for (const dep of arr(d.dependencies)) {
    for (const to of strs(dep.dependsOn))
      relationships.push({ from: String(dep.ref), type: 'DEPENDS_ON', to });
  }
  return {
    format: 'cyclonedx',
    specVersion: String(d.specVersion),
    document: d,
    describes: main ? [{ name: String(main.name), version: str(main.version) }] : [],
    components,
    relationships,
  };
}

/**
 * The document must be about this package: a described element with its
 * name, and its version or none. melange writes the full version with its
 * `-rN` (melange pkg/build/sbom/spdx/spdx.go); a tool that only knows the
 * upstream version writes it without, so that is accepted too, but a
 * different `-rN` is not.
 */
export function checkDescribes(
  sbom: Pick<ParsedSbom, 'describes'>,
  pkg: { name: string; version: string },
): void {
  const upstream = pkg.version.replace(/-r\d+$/, '');
  const ok = sbom.describes.some(
    (d) =>
      d.name === pkg.name && (d.version === undefined || d.version === pkg.version || d.version === upstream),
  );
  if (!ok) {
    const said =
      sbom.describes
        .slice(0, 5)
        .map((d) => `${d.name.slice(0, 100)} ${d.version?.slice(0, 100) ?? '(no version)'}`)
        .join(', ') || 'no package';
    throw new AppError('SBOM_WRONG_PACKAGE', `the SBOM describes ${said}, not ${pkg.name} ${pkg.version}`, {
      details: { describes: sbom.describes.slice(0, 5) },
    });
  }
}
