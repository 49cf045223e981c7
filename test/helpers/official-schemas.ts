import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { sharedFixture } from './shared-fixtures.ts';

/**
 * The official JSON schemas of SPDX 2.3 (spdx/spdx-spec `schemas/spdx-schema.json`)
 * and CycloneDX 1.6 (CycloneDX/specification `schema/bom-1.6.schema.json` with
 * the `spdx.schema.json` and `jsf-0.82.schema.json` it references), from the
 * shared fixture corpus, and those of OSV and OpenVEX: an oracle that is not reef's own schema code. Use
 * with `needsSharedFixtures`; the corpus is read on first use.
 */

let spdx: ValidateFunction | undefined;
let cyclonedx: ValidateFunction | undefined;

function newAjv(): Ajv {
  // The official schemas are draft-07 and use keywords strict mode refuses (meta:enum).
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  // ajv-formats knows neither; the CycloneDX schema uses them for URLs and e-mails.
  ajv.addFormat('iri-reference', true);
  ajv.addFormat('idn-email', true);
  return ajv;
}

const load = (...parts: string[]) => JSON.parse(readFileSync(sharedFixture(...parts), 'utf8'));

/** The official SPDX 2.3 JSON schema. */
export function officialSpdxValidator(): ValidateFunction {
  spdx ??= newAjv().compile(load('spdx', 'spdx-schema-2.3.json'));
  return spdx;
}

/** The official CycloneDX 1.6 JSON schema, its `$ref`s resolved to the files beside it by their `$id`s. */
export function officialCycloneDxValidator(): ValidateFunction {
  if (!cyclonedx) {
    const ajv = newAjv();
    ajv.addSchema(load('cyclonedx', 'spdx.schema.json'));
    ajv.addSchema(load('cyclonedx', 'jsf-0.82.schema.json'));
    cyclonedx = ajv.compile(load('cyclonedx', 'bom-1.6.schema.json'));
  }
  return cyclonedx;
}

let osv: ValidateFunction | undefined;
let openvex: ValidateFunction | undefined;

/** A draft 2020-12 validator (the OSV and OpenVEX schemas' dialect). */
function newAjv2020(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addFormat('iri', true);
  return ajv;
}

/** The OSV schema (ossf/osv-schema `validation/schema.json`, v1.7.5+). */
export function officialOsvValidator(): ValidateFunction {
  osv ??= newAjv2020().compile(load('advisories', 'osv', 'osv-schema.json'));
  return osv;
}

/** The OpenVEX v0.2.0 schema (openvex/spec `openvex_json_schema.json`). */
export function officialOpenVexValidator(): ValidateFunction {
  openvex ??= newAjv2020().compile(load('advisories', 'openvex', 'openvex_json_schema.json'));
  return openvex;
}

/** The validator's first errors, for an assertion message. */
export function schemaErrors(validate: ValidateFunction): string {
  return JSON.stringify(
    validate.errors?.slice(0, 5).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`),
  );
}
