import assert from 'node:assert/strict';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { readApk } from '../../src/apk/read-apk.ts';
import { isAppError } from '../../src/errors.ts';
import { cycloneDxToSpdx, spdxToCycloneDx } from '../../src/sbom/convert.ts';
import { checkDescribes, parseSbom } from '../../src/sbom/parse.ts';
import type { SbomComponent } from '../../src/sbom/types.ts';
import { fixturesDir } from '../helpers/apk-builder.ts';

const FIXTURES = fixturesDir();
const require = createRequire(import.meta.url);

/** The official CycloneDX 1.6 schema through ajv directly: an oracle apart from reef's own validation. */
function officialCycloneDx16() {
  const dir = join(require.resolve('@cyclonedx/cyclonedx-library/package.json'), '..', 'res', 'schema');
  const load = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const ajv = new Ajv({ strict: false });
  addFormats.default(ajv);
  ajv.addFormat('iri-reference', true);
  ajv.addFormat('iri', true);
  for (const file of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    ajv.addSchema({ ...load(file), $id: `http://cyclonedx.org/schema/${file}` });
  }
  return ajv.compile(load('bom-1.6.SNAPSHOT.schema.json'));
}

async function sbomDocuments(): Promise<Array<[string, Buffer]>> {
  const out: Array<[string, Buffer]> = [];
  for (const f of readdirSync(join(FIXTURES, 'melange')).filter((f) => f.endsWith('.spdx.json'))) {
    out.push([f, readFileSync(join(FIXTURES, 'melange', f))]);
  }
  for (const f of [
    'melange/linter__kubeflow-pipelines-2.1.3-r7.apk',
    'go-apk/apk__replaces__replaces-0.0.1-r0.apk',
    'go-apk/apk__hello-wolfi-2.12.1-r0.apk',
    'apko/cli__packages__x86_64__custom-ca-certs-2-1.0.0-r0.apk',
  ]) {
    const pkg = await readApk(createReadStream(join(FIXTURES, f)));
    assert.ok(pkg.sbom, `${f} embeds an SBOM`);
    out.push([f, pkg.sbom]);
  }
  return out;
}

/** What must survive a conversion: names, versions, purls, licences, checksums. */
const essence = (components: SbomComponent[]) =>
  components
    .map((c) =>
      JSON.stringify([
        c.name,
        c.version ?? null,
        c.purl ?? null,
        c.license ?? null,
        [...c.checksums].map((x) => `${x.algorithm}:${x.value.toLowerCase()}`).sort(),
      ]),
    )
    .sort();

describe('SPDX ⇄ CycloneDX on the real SBOMs', () => {
  const validate = officialCycloneDx16();

  test('every golden and embedded SBOM converts to CycloneDX 1.6 that passes the official schema, and back', async () => {
    const docs = await sbomDocuments();
    assert.ok(docs.length >= 7);
    for (const [name, bytes] of docs) {
      const spdx = parseSbom(bytes);
      assert.equal(spdx.format, 'spdx', name);
      const raw = JSON.parse(bytes.toString()) as { packages: Array<{ name: string; versionInfo?: string }> };
      assert.deepEqual(
        spdx.components.filter((c) => raw.packages.some((p) => p.name === c.name)).length,
        raw.packages.length,
        `${name}: every package is a component`,
      );
      const cdx = spdxToCycloneDx(spdx.document);
      assert.ok(validate(cdx), `${name}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
      const parsedCdx = parseSbom(Buffer.from(JSON.stringify(cdx)));
      assert.deepEqual(
        essence(parsedCdx.components),
        essence(spdx.components.filter((c) => c.checksums.every((x) => x.algorithm !== 'SHA224'))),
        name,
      );
      const back = parseSbom(Buffer.from(JSON.stringify(cycloneDxToSpdx(parsedCdx.document))));
      assert.equal(back.format, 'spdx');
      assert.deepEqual(
        essence(back.components),
        essence(spdx.components),
        `${name}: SPDX → CycloneDX → SPDX`,
      );
      assert.deepEqual(
        back.describes.map((d) => `${d.name}@${d.version}`),
        spdx.describes.map((d) => `${d.name}@${d.version}`),
        name,
      );
      assert.equal(
        back.relationships.length,
        spdx.relationships.filter((r) => r.from !== String(spdx.document.SPDXID)).length +
          back.describes.length,
        `${name}: relationships survive`,
      );
    }
  });

  test('conversions are deterministic', async () => {
    const [, bytes] = (await sbomDocuments())[0]!;
    const doc = parseSbom(bytes).document;
    assert.equal(JSON.stringify(spdxToCycloneDx(doc)), JSON.stringify(spdxToCycloneDx(doc)));
  });

  test('checkDescribes accepts the package the SBOM is about, and names what it describes otherwise', () => {
    const crane = parseSbom(
      readFileSync(join(FIXTURES, 'melange/build__goldenfiles__sboms__crane-0.20.2-r1.spdx.json')),
    );
    checkDescribes(crane, { name: 'crane', version: '0.20.2-r1' });
    assert.throws(
      () => checkDescribes(crane, { name: 'crane', version: '0.20.3-r0' }),
      (err) => isAppError(err, 'SBOM_WRONG_PACKAGE') && /crane 0\.20\.2-r1/.test(err.message),
    );
  });

  test('hostile documents: deep nesting, huge, not JSON, unknown format', () => {
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const nested = Buffer.from(`{"spdxVersion":"SPDX-2.3","x":${deep}}`);
    assert.throws(
      () => parseSbom(nested),
      (err) => isAppError(err, 'SBOM_SCHEMA_INVALID') || isAppError(err, 'SBOM_INVALID_JSON'),
    );
    assert.throws(
      () => parseSbom(Buffer.alloc(17 * 2 ** 20, 0x20)),
      (err) => isAppError(err, 'SBOM_TOO_LARGE'),
    );
    assert.throws(
      () => parseSbom(Buffer.from('{nope')),
      (err) => isAppError(err, 'SBOM_INVALID_JSON'),
    );
    assert.throws(
      () => parseSbom(Buffer.from('[]')),
      (err) => isAppError(err, 'SBOM_UNKNOWN_FORMAT'),
    );
    assert.throws(
      () => parseSbom(Buffer.from('{"bomFormat":"CycloneDX","specVersion":"1.2"}')),
      (err) => isAppError(err, 'SBOM_UNKNOWN_FORMAT'),
    );
  });
});
