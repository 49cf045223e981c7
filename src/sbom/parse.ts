import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { AppError } from '../errors.ts';
import { arr, asserted, cdxComponents, cdxLicense, str } from './json.ts';
import { SPDX_23_SCHEMA } from './spdx-schema.ts';
import type { Json, ParsedSbom, SbomComponent } from './types.ts';

/**
 * Reads an SPDX 2.3 or CycloneDX 1.5/1.6 JSON document sent by a publisher or
 * embedded by melange. SECURITY: the bytes are untrusted: size is checked
 * before parsing and nesting depth after, before any schema walks them.
 */

export interface SbomLimits {
  maxBytes: number;
  maxDepth: number;
}

export const DEFAULT_SBOM_LIMITS: SbomLimits = { maxBytes: 16 * 2 ** 20, maxDepth: 64 };

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
let validators: { spdx: ValidateFunction; cdx15: ValidateFunction; cdx16: ValidateFunction } | undefined;

/** The official CycloneDX schemas ship with @cyclonedx/cyclonedx-library; compiled once, on first use. */
function schemaValidators() {
  if (validators) return validators;
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
  const load = (file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const ajv = new Ajv({ strict: false, allErrors: false });
  addFormats(ajv);
  // ajv-formats has no IRI formats, which the CycloneDX schemas use for URLs; accept them as strings.
  ajv.addFormat('iri-reference', true);
  ajv.addFormat('iri', true);
  // The shipped bom schemas refer to these two by their SNAPSHOT file names; give them those ids.
  for (const file of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    ajv.addSchema({ ...load(file), $id: `http://cyclonedx.org/schema/${file}` });
  }
  validators = {
    spdx: ajv.compile(SPDX_23_SCHEMA),
    cdx15: ajv.compile(load('bom-1.5.SNAPSHOT.schema.json')),
    cdx16: ajv.compile(load('bom-1.6.SNAPSHOT.schema.json')),
  };
  return validators;
}

export function parseSbom(bytes: Buffer, limits: SbomLimits = DEFAULT_SBOM_LIMITS): ParsedSbom {
  if (bytes.length > limits.maxBytes) {
    throw new AppError('SBOM_TOO_LARGE', `the SBOM is larger than ${limits.maxBytes} bytes`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new AppError('SBOM_INVALID_JSON', `the SBOM is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new AppError('SBOM_UNKNOWN_FORMAT', 'the SBOM is not a JSON object');
  }
  checkDepth(doc, limits.maxDepth);
  const d = doc as Json;
  const { spdx, cdx15, cdx16 } = schemaValidators();
  if (typeof d.spdxVersion === 'string') {
    validateWith(spdx, d, `SPDX ${d.spdxVersion}`);
    return readSpdx(d);
  }
  if (d.bomFormat === 'CycloneDX') {
    const validate = d.specVersion === '1.6' ? cdx16 : d.specVersion === '1.5' ? cdx15 : undefined;
    if (!validate) {
      throw new AppError(
        'SBOM_UNKNOWN_FORMAT',
        `CycloneDX ${String(d.specVersion)} is not accepted; send 1.5 or 1.6`,
      );
    }
    validateWith(validate, d, `CycloneDX ${d.specVersion}`);
    return readCycloneDx(d);
  }
  throw new AppError(
    'SBOM_UNKNOWN_FORMAT',
    'the document is neither SPDX 2.3 (spdxVersion) nor CycloneDX (bomFormat)',
  );
}

function validateWith(validate: ValidateFunction, doc: Json, what: string): void {
  if (validate(doc)) return;
  const e = validate.errors?.[0];
  throw new AppError(
    'SBOM_SCHEMA_INVALID',
    `the SBOM fails the ${what} schema at '${e?.instancePath || '/'}': ${e?.message}`,
    {
      details: { path: e?.instancePath, keyword: e?.keyword },
    },
  );
}

/** Iterative, so hostile nesting cannot overflow the stack. */
function checkDepth(root: unknown, maxDepth: number): void {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > maxDepth) {
      throw new AppError('SBOM_SCHEMA_INVALID', `the SBOM nests deeper than ${maxDepth} levels`);
    }
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
}

function readSpdx(d: Json): ParsedSbom {
  const packages = arr(d.packages);
  const files = arr(d.files);
  const relationships = arr(d.relationships).map((r) => ({
    from: String(r.spdxElementId),
    type: String(r.relationshipType),
    to: String(r.relatedSpdxElement),
  }));
  const described = new Set([
    ...(Array.isArray(d.documentDescribes) ? (d.documentDescribes as string[]) : []),
    ...relationships.filter((r) => r.from === String(d.SPDXID) && r.type === 'DESCRIBES').map((r) => r.to),
  ]);
  const components: SbomComponent[] = [
    ...packages.map((p) => {
      const c: SbomComponent = {
        name: String(p.name),
        checksums: arr(p.checksums).map((x) => ({
          algorithm: String(x.algorithm),
          value: String(x.checksumValue),
        })),
      };
      const version = str(p.versionInfo);
      if (version) c.version = version;
      const purl = arr(p.externalRefs).find((r) => r.referenceType === 'purl');
      if (purl && str(purl.referenceLocator)) c.purl = String(purl.referenceLocator);
      const license = asserted(p.licenseDeclared) ?? asserted(p.licenseConcluded);
      if (license) c.license = license;
      const supplier = asserted(p.supplier);
      if (supplier) c.supplier = supplier.replace(/^(Organization|Person): /, '');
      return c;
    }),
    ...files.map((f) => ({
      name: String(f.fileName),
      checksums: arr(f.checksums).map((x) => ({
        algorithm: String(x.algorithm),
        value: String(x.checksumValue),
      })),
    })),
  ];
  return {
    format: 'spdx',
    specVersion: String(d.spdxVersion).replace(/^SPDX-/, ''),
    document: d,
    describes: packages
      .filter((p) => described.has(String(p.SPDXID)))
      .map((p) => ({ name: String(p.name), version: str(p.versionInfo) })),
    components,
    relationships,
  };
}

/** CycloneDX hash names → SPDX checksum names (SHA-256 → SHA256). */
export function cdxAlgorithm(alg: string): string {
  return alg.replace(/^SHA-(\d+)$/, 'SHA$1').replace(/^SHA3-/, 'SHA3-');
}

function readCycloneDx(d: Json): ParsedSbom {
  const { main, all } = cdxComponents(d);
  const components = all.map((c): SbomComponent => {
    const out: SbomComponent = {
      name: String(c.group ? `${c.group}/${c.name}` : c.name),
      checksums: arr(c.hashes).map((h) => ({
        algorithm: cdxAlgorithm(String(h.alg)),
        value: String(h.content),
      })),
    };
    if (str(c.version)) out.version = String(c.version);
    if (str(c.purl)) out.purl = String(c.purl);
    const license = cdxLicense(c.licenses);
    if (license) out.license = license;
    const supplier = str((c.supplier as Json | undefined)?.name) ?? str(c.author);
    if (supplier) out.supplier = supplier;
    return out;
  });
  const relationships = arr(d.dependencies).flatMap((dep) =>
    (Array.isArray(dep.dependsOn) ? (dep.dependsOn as string[]) : []).map((to) => ({
      from: String(dep.ref),
      type: 'DEPENDS_ON',
      to: String(to),
    })),
  );
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
 * The document must be about this package: a described element with its name
 * and its version (full `-rN` version, or the upstream part when the SBOM omits the revision).
 */
export function checkDescribes(sbom: ParsedSbom, pkg: { name: string; version: string }): void {
  const upstream = pkg.version.replace(/-r\d+$/, '');
  const ok = sbom.describes.some(
    (d) =>
      d.name === pkg.name && (d.version === undefined || d.version === pkg.version || d.version === upstream),
  );
  if (!ok) {
    const said =
      sbom.describes.map((d) => `${d.name} ${d.version ?? '(no version)'}`).join(', ') || 'nothing';
    throw new AppError('SBOM_WRONG_PACKAGE', `the SBOM describes ${said}, not ${pkg.name} ${pkg.version}`);
  }
}
