import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { type ApkFile, type ApkPackage, readApk } from '../../src/apk/read-apk.ts';
import type { GenerateInput } from '../../src/sbom/generate.ts';
import { realFixturesDir } from '../helpers/shared-fixtures.ts';

/**
 * The real SBOMs of the shared fixture corpus (tests that read them skip
 * without it), documents made here in their likeness, and an oracle for the
 * official CycloneDX schema.
 */

export const FIXTURES = realFixturesDir();

export interface FixtureSbom {
  /** Fixture path relative to FIXTURES. */
  file: string;
  source: 'golden' | 'embedded';
  bytes: Buffer;
  /** The package that embeds it. */
  apk?: ApkPackage;
}

/** Every .apk of the fixtures, read by reef (datahash not enforced: one Wolfi fixture is known to mismatch). */
export async function fixturePackages(): Promise<Array<{ file: string; apk: ApkPackage }>> {
  const out: Array<{ file: string; apk: ApkPackage }> = [];
  for (const dir of ['', 'melange', 'go-apk', 'apko', 'gitea']) {
    for (const name of readdirSync(join(FIXTURES, dir)).sort()) {
      if (!name.endsWith('.apk')) continue;
      const file = join(dir, name);
      out.push({
        file,
        apk: await readApk(createReadStream(join(FIXTURES, file)), { requireDatahash: false }),
      });
    }
  }
  return out;
}

let cached: FixtureSbom[] | undefined;

/** Every melange golden SBOM and every SBOM embedded in a fixture package. */
export async function fixtureSboms(): Promise<FixtureSbom[]> {
  if (cached) return cached;
  const out: FixtureSbom[] = [];
  for (const name of readdirSync(join(FIXTURES, 'melange')).sort()) {
    if (name.endsWith('.spdx.json')) {
      const file = join('melange', name);
      out.push({ file, source: 'golden', bytes: readFileSync(join(FIXTURES, file)) });
    }
  }
  for (const { file, apk } of await fixturePackages()) {
    if (apk.sbom) out.push({ file, source: 'embedded', bytes: apk.sbom, apk });
  }
  cached = out;
  return out;
}

/** GNU tar's view of an .apk (all gzip members read as one stream): data entries with their type. */
export function tarEntries(apkPath: string): Array<{ type: string; name: string; target?: string }> {
  const listing = execFileSync('tar', ['--warning=no-unknown-keyword', '-tvzf', apkPath], {
    encoding: 'utf8',
  });
  return (
    listing
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        // mode owner size date time name [-> target | link to target]
        const m = /^(\S)\S*\s+\S+\s+\d+\s+\S+\s+\S+\s+(.*)$/.exec(line);
        if (!m) throw new Error(`unexpected tar listing line: ${line}`);
        const [, kind, rest] = m;
        if (kind === 'l') {
          const [name, target] = rest!.split(' -> ');
          return { type: 'symlink', name: name!, target: target! };
        }
        if (kind === 'h') {
          const [name, target] = rest!.split(' link to ');
          return { type: 'hardlink', name: name!, target: target! };
        }
        return {
          type: kind === 'd' ? 'directory' : kind === '-' ? 'file' : kind!,
          name: rest!.replace(/\/$/, ''),
        };
      })
      // Control entries (.PKGINFO, .SIGN.*, scripts) sit at the root and start with '.'.
      .filter((e) => !/^\.[^/]*$/.test(e.name))
  );
}

/** The bytes GNU tar extracts for one entry. */
export function tarExtract(apkPath: string, name: string): Buffer {
  return execFileSync('tar', ['--warning=no-unknown-keyword', '-xzOf', apkPath, name], {
    maxBuffer: 256 * 2 ** 20,
  });
}

const require = createRequire(import.meta.url);

/**
 * The official CycloneDX JSON schema as the CycloneDX library ships it, compiled
 * here with a fresh ajv: an oracle apart from reef's own validation.
 */
export function officialCycloneDxValidator(version: '1.5' | '1.6'): ValidateFunction {
  const dir = join(require.resolve('@cyclonedx/cyclonedx-library/package.json'), '..', 'res', 'schema');
  const load = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  // Formats ajv-formats lacks are accepted as any string here (reef checks them more tightly).
  const ajv = new Ajv({ strict: false, formats: { 'iri-reference': true, iri: true, 'idn-email': true } });
  addFormats.default(ajv);
  for (const file of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    ajv.addSchema({ ...load(file), $id: `http://cyclonedx.org/schema/${file}` });
  }
  return ajv.compile(load(`bom-${version}.SNAPSHOT.schema.json`));
}

/** Hex digest of a string, for hashes in hand-made documents. */
export const sha = (alg: string, s: string) => createHash(alg).update(s).digest('hex');

/**
 * An SPDX 2.3 document shaped like a melange golden SBOM for a Wolfi package:
 * the operating system, the package it describes, the build recipe and the
 * upstream source, no files, and the DESCRIBED_BY and GENERATED_FROM
 * relationships (melange `pkg/sbom`).
 */
export function sampleSpdx(name = 'crane', version = '0.20.2-r1'): Record<string, unknown> {
  const wolfi = { originator: 'Organization: Wolfi', supplier: 'Organization: Wolfi' };
  const apk = `SPDXRef-Package-apk-${name}-${version}`;
  const recipe = `SPDXRef-Package-Melange-testdata-buildC95configs-${name}.yaml-c0ffee`;
  const source = `SPDXRef-Package-Source-github.com-example-${name}-v1.0.0-0`;
  const purl = (locator: string) => [
    { referenceCategory: 'PACKAGE-MANAGER', referenceLocator: locator, referenceType: 'purl' },
  ];
  return {
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `apk-${name}-${version}`,
    spdxVersion: 'SPDX-2.3',
    creationInfo: {
      created: '0001-01-01T00:00:00Z',
      creators: ['Tool: melange (devel)', 'Organization: Chainguard, Inc'],
      licenseListVersion: '3.22',
    },
    dataLicense: 'CC0-1.0',
    documentNamespace: `https://spdx.org/spdxdocs/chainguard/melange/${sha('md5', `${name}-${version}`)}`,
    documentDescribes: [apk],
    packages: [
      {
        SPDXID: 'SPDXRef-OperatingSystem',
        name: 'wolfi',
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'NOASSERTION',
        description: 'Operating System',
        downloadLocation: 'NOASSERTION',
        ...wolfi,
        primaryPackagePurpose: 'OPERATING-SYSTEM',
      },
      {
        SPDXID: apk,
        name,
        versionInfo: version,
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'Apache-2.0',
        downloadLocation: 'NOASSERTION',
        ...wolfi,
        copyrightText: 'NOASSERTION',
        primaryPackagePurpose: 'APPLICATION',
        externalRefs: purl(`pkg:apk/wolfi/${name}@${version}?arch=x86_64&distro=wolfi`),
      },
      {
        SPDXID: recipe,
        name: `testdata/build_configs/${name}.yaml`,
        versionInfo: 'c0ffee',
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'NOASSERTION',
        downloadLocation: 'NOASSERTION',
        ...wolfi,
        primaryPackagePurpose: 'INSTALL',
        externalRefs: purl(`pkg:github/wolfi-dev/os@c0ffee#testdata/build_configs/${name}.yaml`),
      },
      {
        SPDXID: source,
        name,
        versionInfo: 'v1.0.0',
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'Apache-2.0',
        downloadLocation: `https://github.com/example/${name}/archive/v1.0.0.tar.gz`,
        originator: 'Organization: Example',
        supplier: 'Organization: Example',
        primaryPackagePurpose: 'SOURCE',
        externalRefs: purl(`pkg:github/example/${name}@v1.0.0`),
      },
    ],
    relationships: [
      { spdxElementId: apk, relationshipType: 'DESCRIBED_BY', relatedSpdxElement: recipe },
      { spdxElementId: apk, relationshipType: 'GENERATED_FROM', relatedSpdxElement: source },
    ],
  };
}

/** sampleSpdx with one more component: openssl at version `openssl`, as a JSON text. */
export function spdxWithOpenssl(
  name: string,
  version: string,
  openssl: string,
  license = 'Apache-2.0',
): string {
  const doc = sampleSpdx(name, version) as { packages: Array<Record<string, unknown>> };
  doc.packages.push({
    SPDXID: 'SPDXRef-Package-openssl',
    name: 'openssl',
    versionInfo: openssl,
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: license,
    downloadLocation: 'NOASSERTION',
    externalRefs: [
      {
        referenceCategory: 'PACKAGE-MANAGER',
        referenceType: 'purl',
        referenceLocator: `pkg:apk/wolfi/openssl@${openssl}?arch=x86_64`,
      },
    ],
  });
  return JSON.stringify(doc);
}

/**
 * A CycloneDX 1.5 document shaped like syft / cdxgen output: the legacy tools
 * array, licences by id, by name and as an expression, a Maven group, a nested
 * (assembly) file component and a dependency graph.
 */
export function sampleCycloneDx(): Record<string, unknown> {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
    version: 1,
    metadata: {
      timestamp: '2024-05-01T12:30:00.123Z',
      tools: [{ vendor: 'anchore', name: 'syft', version: '1.4.1' }],
      component: {
        type: 'application',
        'bom-ref': 'app',
        supplier: { name: 'Acme' },
        name: 'myapp',
        version: '2.0.1-r3',
        hashes: [{ alg: 'SHA-256', content: sha('sha256', 'myapp').toUpperCase() }],
        licenses: [{ license: { id: 'MIT' } }, { license: { name: 'Acme Proprietary' } }],
        purl: 'pkg:apk/acme/myapp@2.0.1-r3?arch=x86_64&distro=acme',
      },
    },
    components: [
      {
        type: 'library',
        'bom-ref': 'pkg:npm/left-pad@1.3.0',
        name: 'left-pad',
        version: '1.3.0',
        hashes: [
          { alg: 'SHA-1', content: sha('sha1', 'left-pad') },
          { alg: 'SHA-512', content: sha('sha512', 'left-pad') },
        ],
        licenses: [{ expression: 'MIT OR Apache-2.0' }],
        purl: 'pkg:npm/left-pad@1.3.0',
        components: [
          {
            type: 'file',
            'bom-ref': 'file-index',
            name: 'index.js',
            hashes: [{ alg: 'SHA-1', content: sha('sha1', 'index.js') }],
          },
        ],
      },
      {
        type: 'library',
        'bom-ref': 'maven-commons',
        author: 'The Apache Software Foundation',
        group: 'org.apache.commons',
        name: 'commons-lang3',
        version: '3.12.0',
        licenses: [{ license: { id: 'Apache-2.0' } }],
        cpe: 'cpe:2.3:a:apache:commons_lang:3.12.0:*:*:*:*:*:*:*',
        purl: 'pkg:maven/org.apache.commons/commons-lang3@3.12.0',
        externalReferences: [{ type: 'website', url: 'https://commons.apache.org/lang/' }],
      },
    ],
    dependencies: [
      { ref: 'app', dependsOn: ['pkg:npm/left-pad@1.3.0', 'maven-commons'] },
      { ref: 'pkg:npm/left-pad@1.3.0', dependsOn: [] },
    ],
  };
}

/** What reef generates an SPDX document from, for a package of main/musl (as prepareSbom fills it in). */
export function spdxInputOf(
  apk: ApkPackage,
  options: { created: Date; namespaceBase: string },
): GenerateInput {
  return {
    repo: 'main',
    libc: 'musl',
    arch: apk.pkginfo.arch,
    pkginfo: apk.pkginfo,
    files: apk.files,
    sha256: apk.sha256,
    checksum: apk.checksum,
    ...options,
  };
}

/** A data-tar entry as readApk reports it: a root-owned 0644 regular file unless `extra` says otherwise. */
export function apkFile(name: string, extra: Partial<ApkFile> = {}): ApkFile {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, ...extra };
}
