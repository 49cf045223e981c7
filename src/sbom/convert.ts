import { createHash } from 'node:crypto';
import { spdxIdPart } from './generate.ts';
import { arr, asserted, cdxComponents, cdxLicense, str } from './json.ts';
import { cdxAlgorithm } from './parse.ts';
import type { Json } from './types.ts';

/**
 * SPDX 2.3 ⇄ CycloneDX 1.6. Both directions keep packages, versions, purls,
 * licences, checksums and relationships. SPDX relationships other than
 * DEPENDS_ON have no CycloneDX field of their own; they travel as component
 * properties `spdx:relationship:<TYPE>` and come back from them. Deterministic.
 */

/** CycloneDX hash algorithms by SPDX checksum name; the rest have no CycloneDX equivalent. */
const SPDX_TO_CDX_HASH: Record<string, string> = {
  MD5: 'MD5',
  SHA1: 'SHA-1',
  SHA256: 'SHA-256',
  SHA384: 'SHA-384',
  SHA512: 'SHA-512',
  'SHA3-256': 'SHA3-256',
  'SHA3-384': 'SHA3-384',
  'SHA3-512': 'SHA3-512',
  'BLAKE2b-256': 'BLAKE2b-256',
  'BLAKE2b-384': 'BLAKE2b-384',
  'BLAKE2b-512': 'BLAKE2b-512',
  BLAKE3: 'BLAKE3',
};

/** A v4-shaped UUID from a digest, so the same input always gets the same serial number. */
function uuidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function hashesOf(checksums: unknown): Json[] {
  return arr(checksums)
    .map((c) => ({
      alg: SPDX_TO_CDX_HASH[String(c.algorithm)],
      content: String(c.checksumValue).toLowerCase(),
    }))
    .filter((h) => h.alg !== undefined);
}

export function spdxToCycloneDx(doc: Json): Json {
  const relationships = arr(doc.relationships);
  const described = new Set([
    ...(Array.isArray(doc.documentDescribes) ? (doc.documentDescribes as string[]) : []),
    ...relationships
      .filter((r) => r.spdxElementId === doc.SPDXID && r.relationshipType === 'DESCRIBES')
      .map((r) => String(r.relatedSpdxElement)),
  ]);
  const known = new Set<string>();
  const toComponent = (p: Json): Json => {
    const ref = String(p.SPDXID);
    known.add(ref);
    const purl = arr(p.externalRefs).find((r) => r.referenceType === 'purl');
    const license = asserted(p.licenseDeclared) ?? asserted(p.licenseConcluded);
    const supplier = asserted(p.supplier)?.replace(/^(Organization|Person): /, '');
    const hashes = hashesOf(p.checksums);
    const purpose = str(p.primaryPackagePurpose);
    return {
      type:
        purpose === 'OPERATING-SYSTEM'
          ? 'operating-system'
          : purpose === 'SOURCE' || purpose === 'INSTALL'
            ? 'data'
            : 'library',
      'bom-ref': ref,
      name: String(p.name),
      ...(str(p.versionInfo) ? { version: String(p.versionInfo) } : {}),
      ...(supplier ? { supplier: { name: supplier } } : {}),
      ...(hashes.length ? { hashes } : {}),
      ...(license ? { licenses: [{ expression: license }] } : {}),
      ...(purl && str(purl.referenceLocator) ? { purl: String(purl.referenceLocator) } : {}),
    };
  };
  const packages = arr(doc.packages);
  const mainPkg = packages.find((p) => described.has(String(p.SPDXID)));
  const components: Json[] = packages.filter((p) => p !== mainPkg).map(toComponent);
  for (const f of arr(doc.files)) {
    const ref = String(f.SPDXID);
    known.add(ref);
    components.push({
      type: 'file',
      'bom-ref': ref,
      name: String(f.fileName),
      hashes: hashesOf(f.checksums),
    });
  }
  const main = mainPkg ? { ...toComponent(mainPkg), type: 'application' } : undefined;

  // DEPENDS_ON becomes dependencies; every other relationship a property of its source component.
  const dependsOn = new Map<string, string[]>();
  const properties = new Map<string, Json[]>();
  for (const r of relationships) {
    const from = String(r.spdxElementId);
    const to = String(r.relatedSpdxElement);
    const type = String(r.relationshipType);
    if (!known.has(from)) continue;
    if (type === 'DEPENDS_ON' && known.has(to)) {
      dependsOn.set(from, [...(dependsOn.get(from) ?? []), to]);
    } else {
      properties.set(from, [
        ...(properties.get(from) ?? []),
        { name: `spdx:relationship:${type}`, value: to },
      ]);
    }
  }
  const withProperties = (c: Json) => {
    const props = properties.get(String(c['bom-ref']));
    return props ? { ...c, properties: props } : c;
  };
  const created = str((doc.creationInfo as Json | undefined)?.created);
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${uuidFrom(JSON.stringify(doc))}`,
    version: 1,
    metadata: {
      ...(created ? { timestamp: created } : {}),
      tools: { components: [{ type: 'application', name: 'reef' }] },
      ...(main ? { component: withProperties(main) } : {}),
    },
    components: components.map(withProperties),
    dependencies: [...known]
      .filter((ref) => dependsOn.has(ref))
      .map((ref) => ({ ref, dependsOn: [...new Set(dependsOn.get(ref))] })),
  };
}

export function cycloneDxToSpdx(doc: Json): Json {
  const ids = new Map<string, string>();
  const used = new Set<string>();
  const idOf = (ref: string, kind: string): string => {
    let id = ids.get(ref);
    if (!id) {
      const base = `SPDXRef-${kind}-${spdxIdPart(ref)}`;
      id = base;
      for (let n = 1; used.has(id); n++) id = `${base}-${n}`;
      used.add(id);
      ids.set(ref, id);
    }
    return id;
  };
  const checksumsOf = (c: Json) =>
    arr(c.hashes).map((h) => ({ algorithm: cdxAlgorithm(String(h.alg)), checksumValue: String(h.content) }));
  const packages: Json[] = [];
  const files: Json[] = [];
  const relationships: Json[] = [];
  const { main, all } = cdxComponents(doc);
  const metadata = (doc.metadata ?? {}) as Json;
  for (const [i, c] of all.entries()) {
    const ref = str(c['bom-ref']) ?? `component-${i}`;
    const checksums = checksumsOf(c);
    // An SPDX file needs a SHA-1; a file component without one stays a package.
    if (c.type === 'file' && checksums.some((x) => x.algorithm === 'SHA1')) {
      files.push({ SPDXID: idOf(ref, 'File'), fileName: String(c.name), checksums });
    } else {
      const supplier = str((c.supplier as Json | undefined)?.name) ?? str(c.author);
      packages.push({
        SPDXID: idOf(ref, 'Package'),
        name: String(c.group ? `${c.group}/${c.name}` : c.name),
        ...(str(c.version) ? { versionInfo: String(c.version) } : {}),
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: cdxLicense(c.licenses) ?? 'NOASSERTION',
        supplier: supplier ? `Organization: ${supplier}` : 'NOASSERTION',
        ...(checksums.length ? { checksums } : {}),
        ...(str(c.purl)
          ? {
              externalRefs: [
                {
                  referenceCategory: 'PACKAGE-MANAGER',
                  referenceType: 'purl',
                  referenceLocator: String(c.purl),
                },
              ],
            }
          : {}),
      });
    }
    for (const p of arr(c.properties)) {
      const m = /^spdx:relationship:([A-Z_]+)$/.exec(String(p.name));
      if (m)
        relationships.push({
          spdxElementId: idOf(ref, 'Package'),
          relationshipType: m[1],
          relatedSpdxElement: String(p.value),
        });
    }
  }
  // Property targets were SPDX ids in the original document; map them to this document's ids.
  const byOriginal = new Map([...ids].map(([ref, id]) => [ref, id]));
  for (const r of relationships)
    r.relatedSpdxElement = byOriginal.get(String(r.relatedSpdxElement)) ?? r.relatedSpdxElement;
  for (const dep of arr(doc.dependencies)) {
    for (const to of Array.isArray(dep.dependsOn) ? (dep.dependsOn as string[]) : []) {
      if (!ids.has(String(dep.ref)) || !ids.has(to)) continue;
      relationships.push({
        spdxElementId: ids.get(String(dep.ref)),
        relationshipType: 'DEPENDS_ON',
        relatedSpdxElement: ids.get(to),
      });
    }
  }
  const mainId = main ? ids.get(str(main['bom-ref']) ?? 'component-0') : undefined;
  const timestamp = str(metadata.timestamp) ?? '1970-01-01T00:00:00Z';
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: main ? `${main.name}${str(main.version) ? `-${main.version}` : ''}` : 'cyclonedx-document',
    documentNamespace: `https://reef.invalid/spdxdocs/from-cyclonedx/${uuidFrom(JSON.stringify(doc))}`,
    creationInfo: { created: timestamp.replace(/\.\d+Z$/, 'Z'), creators: ['Tool: reef'] },
    ...(mainId ? { documentDescribes: [mainId] } : {}),
    packages,
    ...(files.length ? { files } : {}),
    relationships: [
      ...(mainId
        ? [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: mainId }]
        : []),
      ...relationships,
    ],
  };
}
