import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { AppError } from '../errors.ts';
import { arr, strs } from './json.ts';
import { SPDX_23_SCHEMA } from './spdx-schema.ts';
import type { Json } from './types.ts';

/**
 * Schema validation of SBOM documents. CycloneDX against the official 1.5 /
 * 1.6 JSON schemas that @cyclonedx/cyclonedx-library ships (res/schema);
 * SPDX against reef's transcription of the 2.3 spec (spdx-schema.ts) plus the
 * rules a schema cannot state: unique SPDXIDs and references that resolve.
 * Reading the schema files is the one piece of I/O here: package data, read
 * once on first use, never a user's path.
 */

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** The directory of the official CycloneDX JSON schemas inside @cyclonedx/cyclonedx-library. */
export function cycloneDxSchemaDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
}

/** RFC 3987 IRI-reference: any character but controls, space and the ones RFC 3987 excludes (<>"{}|\^`). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: excluding control characters is the point.
const IRI_REFERENCE = /^[^\u0000-\u0020<>"{}|\\^`\u007f]*$/u;
/** RFC 6531 address, loosely: the CycloneDX schema only uses it for contact e-mails. */
const IDN_EMAIL = /^[^\s@]+@[^\s@]+$/u;

let ajvInstance: Ajv | undefined;

/** One ajv for all schemas; each schema is compiled on its first use (CycloneDX 1.6 alone takes ~1 s). */
function ajv(): Ajv {
  if (ajvInstance) return ajvInstance;
  // The CycloneDX schemas are draft-07 (ajv's default dialect) and carry keywords
  // ajv's strict mode rejects (meta:enum, …): strict off, formats from ajv-formats.
  const instance = new Ajv({ strict: false, allErrors: false });
  addFormats(instance);
  // ajv-formats has no IRI or IDN formats; unknown ones would be logged and skipped.
  instance.addFormat('iri-reference', IRI_REFERENCE);
  instance.addFormat('iri', IRI_REFERENCE);
  instance.addFormat('idn-email', IDN_EMAIL);
  // The bom schemas $ref these by their SNAPSHOT file names, relative to their own $id.
  for (const file of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    instance.addSchema({ ...loadCycloneDxSchema(file), $id: `http://cyclonedx.org/schema/${file}` });
  }
  ajvInstance = instance;
  return instance;
}

function loadCycloneDxSchema(file: string): Json {
  return JSON.parse(readFileSync(join(cycloneDxSchemaDir(), file), 'utf8')) as Json;
}

const compiled = new Map<string, ValidateFunction>();

function validator(name: 'spdx' | '1.5' | '1.6'): ValidateFunction {
  let validate = compiled.get(name);
  if (!validate) {
    validate = ajv().compile(
      name === 'spdx' ? SPDX_23_SCHEMA : loadCycloneDxSchema(`bom-${name}.SNAPSHOT.schema.json`),
    );
    compiled.set(name, validate);
  }
  return validate;
}

function schemaError(what: string, error: ErrorObject | undefined): AppError {
  const path = error?.instancePath || '/';
  const extra = error?.params.additionalProperty ? ` ('${String(error.params.additionalProperty)}')` : '';
  return new AppError(
    'SBOM_SCHEMA_INVALID',
    `the SBOM fails the ${what} schema at '${path}': ${error?.message}${extra}`,
    { details: { path, keyword: error?.keyword } },
  );
}

export function validateCycloneDx(doc: Json, specVersion: '1.5' | '1.6'): void {
  const validate = validator(specVersion);
  if (!validate(doc)) throw schemaError(`CycloneDX ${specVersion}`, validate.errors?.[0]);
}

export function validateSpdx(doc: Json): void {
  const validate = validator('spdx');
  const what = `SPDX ${String(doc.spdxVersion).replace(/^SPDX-/, '')}`;
  if (!validate(doc)) throw schemaError(what, validate.errors?.[0]);
  checkSpdxReferences(doc);
}

/** Elements in another document (§6.6) are not ours to resolve. */
const isExternal = (id: string) => id.startsWith('DocumentRef-');

/**
 * §3.2 SPDXIDs are unique within a document; §6, §7, §9, §11: every
 * reference names an element of this document (or of a referenced one).
 * A dangling reference would make an auditor's graph lie.
 */
function checkSpdxReferences(doc: Json): void {
  const ids = new Set<string>([String(doc.SPDXID)]);
  const files = new Set<string>();
  for (const [field, elements] of [
    ['packages', arr(doc.packages)],
    ['files', arr(doc.files)],
    ['snippets', arr(doc.snippets)],
  ] as const) {
    for (const [i, e] of elements.entries()) {
      const id = String(e.SPDXID);
      if (ids.has(id)) invalid(`/${field}/${i}/SPDXID`, `SPDXID '${id}' is used twice`);
      ids.add(id);
      if (field === 'files') files.add(id);
    }
  }
  const resolves = (id: string) => ids.has(id) || isExternal(id);
  for (const [i, id] of strs(doc.documentDescribes).entries()) {
    if (!resolves(id)) invalid(`/documentDescribes/${i}`, `'${id}' is not an element of the document`);
  }
  for (const [i, p] of arr(doc.packages).entries()) {
    for (const [j, id] of strs(p.hasFiles).entries()) {
      if (!files.has(id)) invalid(`/packages/${i}/hasFiles/${j}`, `'${id}' is not a file of the document`);
    }
  }
  for (const [i, s] of arr(doc.snippets).entries()) {
    const from = String(s.snippetFromFile);
    if (!files.has(from) && !isExternal(from)) {
      invalid(`/snippets/${i}/snippetFromFile`, `'${from}' is not a file of the document`);
    }
  }
  for (const [i, r] of arr(doc.relationships).entries()) {
    const from = String(r.spdxElementId);
    const to = String(r.relatedSpdxElement);
    if (!resolves(from)) {
      invalid(`/relationships/${i}/spdxElementId`, `'${from}' is not an element of the document`);
    }
    if (to !== 'NONE' && to !== 'NOASSERTION' && !resolves(to)) {
      invalid(`/relationships/${i}/relatedSpdxElement`, `'${to}' is not an element of the document`);
    }
  }
}

function invalid(path: string, message: string): never {
  throw new AppError('SBOM_SCHEMA_INVALID', `the SBOM fails the SPDX rules at '${path}': ${message}`, {
    details: { path, keyword: 'reference' },
  });
}
