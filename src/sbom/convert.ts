import { createHash } from 'node:crypto';
import { cdxHashAlgorithm, spdxChecksumAlgorithm } from './checksum.ts';
import { CDX_PROPERTY as P } from './cyclonedx-properties.ts';
import { arr, asserted, obj, str, strs } from './json.ts';
import {
  cdxLicenseExpression,
  createLicenseTable,
  type ExtractedLicense,
  isLicenseExpression,
} from './license.ts';
import { cycloneDxComponents, cycloneDxName, describedSpdxIds, spdxPurl } from './parse.ts';
import { createIdAllocator, normalizeDate, parseAgent, SPDX_ID_RE, spdxIdPart } from './spdx-fields.ts';
import {
  CHECKSUM_ALGORITHMS,
  PACKAGE_PURPOSES,
  REFERENCE_CATEGORIES,
  RELATIONSHIP_TYPES,
} from './spdx-schema.ts';
import type { Json } from './types.ts';

/**
 * SPDX 2.3 ⇄ CycloneDX 1.6, for serving every SBOM in both formats (issue 5).
 * Both directions keep packages/components, versions, purls, licences,
 * checksums and relationships. CycloneDX has fields for fewer facts than SPDX;
 * the rest travels in `spdx:` properties (cyclonedx-properties.ts) so that
 * SPDX → CycloneDX → SPDX gives them back. Input is a document parseSbom
 * accepted; output passes the same validation (for CycloneDX, the official
 * 1.6 schema). Deterministic: the same document converts to the same JSON.
 */

/** Fixed namespace of reef's name-based (v5) UUIDs. */
const REEF_UUID_NAMESPACE = Buffer.from('0d6c2f4e8a4b5b7e9c3a1f2e4d6b8a90', 'hex');

/** RFC 9562 §5.5 UUID v5: the same name always gives the same UUID, so serial numbers are stable. */
export function uuidV5(name: string): string {
  const h = createHash('sha1').update(REEF_UUID_NAMESPACE).update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function contentUuid(doc: Json): string {
  return uuidV5(`sha256:${createHash('sha256').update(JSON.stringify(doc)).digest('hex')}`);
}

/** SPDX primary package purpose → CycloneDX component type; the lossy ones also keep a property. */
const PURPOSE_TO_TYPE: Record<string, string> = {
  APPLICATION: 'application',
  FRAMEWORK: 'framework',
  LIBRARY: 'library',
  CONTAINER: 'container',
  'OPERATING-SYSTEM': 'operating-system',
  OPERATING_SYSTEM: 'operating-system',
  DEVICE: 'device',
  FIRMWARE: 'firmware',
  FILE: 'file',
  // No CycloneDX type says "source", "installer" or "archive"; library is its documented default.
  SOURCE: 'library',
  ARCHIVE: 'library',
  INSTALL: 'library',
  OTHER: 'library',
};

/** CycloneDX type → SPDX purpose, spelled as the official SPDX 2.3 JSON schema spells it. */
const TYPE_TO_PURPOSE: Record<string, string> = {
  application: 'APPLICATION',
  framework: 'FRAMEWORK',
  library: 'LIBRARY',
  container: 'CONTAINER',
  'operating-system': 'OPERATING_SYSTEM',
  device: 'DEVICE',
  firmware: 'FIRMWARE',
  file: 'FILE',
};

/** A purpose carried in a property, if it is one SPDX knows. */
function purposeOf(value: string | undefined): string | undefined {
  const purpose = value?.replace('OPERATING-SYSTEM', 'OPERATING_SYSTEM');
  return purpose && (PACKAGE_PURPOSES as readonly string[]).includes(purpose) ? purpose : undefined;
}

const VALID_RELATIONSHIP = new Set<string>(RELATIONSHIP_TYPES);
const VALID_CHECKSUM = new Set<string>(CHECKSUM_ALGORITHMS);
const VALID_CATEGORY = new Set<string>(REFERENCE_CATEGORIES);

/** A URL with a scheme, as CycloneDX externalReferences (iri-reference) and SPDX downloadLocation want. */
const hasScheme = (s: string) => /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"{}|\\^`]+$/.test(s);

function cdxLicenses(expression: string, acknowledgement: 'declared' | 'concluded'): Json[] {
  // CycloneDX's expression slot is for SPDX expressions; anything else is a named licence.
  return isLicenseExpression(expression)
    ? [{ expression, acknowledgement }]
    : [{ license: { name: expression, acknowledgement } }];
}

function uniqueBy<T>(items: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((x) => {
    const k = key(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const property = (name: string, value: string): Json => ({ name, value });

export function spdxToCycloneDx(doc: Json): Json {
  const documentId = String(doc.SPDXID);
  const packages = arr(doc.packages);
  const files = arr(doc.files);
  const packageIds = new Set(packages.map((p) => String(p.SPDXID)));
  const fileIds = new Set(files.map((f) => String(f.SPDXID)));
  const known = (id: string) => packageIds.has(id) || fileIds.has(id);
  const described = describedSpdxIds(doc);
  const mainId = described.find((id) => packageIds.has(id)) ?? described.find((id) => fileIds.has(id));

  // DEPENDS_ON / DEPENDENCY_OF go into the dependency graph; every other relationship
  // (CONTAINS, GENERATED_FROM, DESCRIBED_BY, …) becomes a property of its source
  // component, or of metadata for the document's own.
  const METADATA = '';
  const properties = new Map<string, Json[]>();
  const addProperty = (ref: string, p: Json) => properties.set(ref, [...(properties.get(ref) ?? []), p]);
  const dependsOn = new Map<string, string[]>();
  const addDependency = (from: string, to: string) =>
    dependsOn.set(from, [...(dependsOn.get(from) ?? []), to]);
  // The document's own id may be SPDXRef-DOCUMENT-<name> (melange 2023); conversions name it plainly.
  const target = (to: string) => (to === documentId ? 'SPDXRef-DOCUMENT' : to);
  const fromDocument = new Set<string>();
  for (const r of arr(doc.relationships)) {
    const from = String(r.spdxElementId);
    const type = String(r.relationshipType);
    const to = String(r.relatedSpdxElement);
    if (from === documentId) {
      fromDocument.add(`${type} ${to}`);
      // metadata.component already says this one.
      if (!(type === 'DESCRIBES' && to === mainId)) {
        addProperty(METADATA, property(P.relationship + type, target(to)));
      }
      continue;
    }
    // A snippet or an element of another document has no component to hang the relationship on.
    if (!known(from)) continue;
    if (type === 'DEPENDS_ON' && known(to)) {
      addDependency(from, to);
      continue;
    }
    // A DEPENDENCY_OF B is B depends on A; the property keeps the original direction for the way back.
    if (type === 'DEPENDENCY_OF' && known(to)) addDependency(to, from);
    addProperty(from, property(P.relationship + type, target(to)));
  }
  for (const id of strs(doc.documentDescribes)) {
    if (id !== mainId && !fromDocument.has(`DESCRIBES ${id}`)) {
      addProperty(METADATA, property(`${P.relationship}DESCRIBES`, id));
    }
  }

  const withProperties = (component: Json, own: Json[]): Json => {
    const all = uniqueBy([...own, ...(properties.get(String(component['bom-ref'])) ?? [])], (p) =>
      JSON.stringify(p),
    );
    return all.length > 0 ? { ...component, properties: all } : component;
  };

  const hashesOf = (checksums: unknown, own: Json[]): Json[] => {
    const hashes: Json[] = [];
    for (const c of arr(checksums)) {
      const algorithm = String(c.algorithm);
      const value = String(c.checksumValue).toLowerCase();
      const alg = cdxHashAlgorithm(algorithm);
      if (alg) hashes.push({ alg, content: value });
      else own.push(property(P.checksum + algorithm, value));
    }
    return uniqueBy(hashes, (h) => `${h.alg}:${h.content}`);
  };

  const packageComponent = (p: Json, isMain: boolean): Json => {
    const own: Json[] = [];
    // The official SPDX 2.3 JSON schema spells OPERATING_SYSTEM; melange writes the spec text's OPERATING-SYSTEM.
    const purpose = str(p.primaryPackagePurpose)?.replace('OPERATING-SYSTEM', 'OPERATING_SYSTEM');
    const type = purpose ? (PURPOSE_TO_TYPE[purpose] ?? 'library') : isMain ? 'application' : 'library';
    if (purpose && TYPE_TO_PURPOSE[type] !== purpose) own.push(property(P.purpose, purpose));

    // CycloneDX's supplier is an organisation; a Person: (or unprefixed) supplier also keeps its exact text.
    const supplierText = asserted(p.supplier);
    const supplierAgent = supplierText ? parseAgent(supplierText) : undefined;
    const supplier = supplierText ? (supplierAgent?.name ?? supplierText) : undefined;
    if (supplierText && supplierAgent?.kind !== 'Organization') own.push(property(P.supplier, supplierText));
    // The originator made the software: an organisation is its manufacturer, a person its author.
    const originatorText = asserted(p.originator);
    const originator = originatorText ? parseAgent(originatorText) : undefined;
    if (originatorText && originator?.kind !== 'Organization' && originator?.kind !== 'Person') {
      own.push(property(P.originator, originatorText));
    }

    const hashes = hashesOf(p.checksums, own);
    // CycloneDX 1.6 holds one expression, marked declared or concluded; a second one travels as a property.
    const declared = asserted(p.licenseDeclared);
    const concluded = asserted(p.licenseConcluded);
    let licenses: Json[] | undefined;
    if (declared) {
      licenses = cdxLicenses(declared, 'declared');
      if (concluded && concluded !== declared) own.push(property(P.licenseConcluded, concluded));
    } else if (concluded) {
      licenses = cdxLicenses(concluded, 'concluded');
    }

    // One purl and one CPE have fields; further references (melange lists several) are properties.
    const purl = spdxPurl(p);
    const refs = arr(p.externalRefs);
    const cpeRef = refs.find((r) => r.referenceType === 'cpe23Type' || r.referenceType === 'cpe22Type');
    const cpe = str(cpeRef?.referenceLocator);
    let purlTaken = false;
    for (const r of refs) {
      const locator = String(r.referenceLocator);
      if (!purlTaken && r.referenceType === 'purl' && locator === purl) {
        purlTaken = true;
        continue;
      }
      if (r === cpeRef) continue;
      const category = String(r.referenceCategory).replace('_', '-');
      own.push(property(`${P.externalRef}${category}:${String(r.referenceType)}`, locator));
    }

    const externalReferences: Json[] = [];
    const download = asserted(p.downloadLocation);
    if (download && hasScheme(download)) externalReferences.push({ type: 'distribution', url: download });
    const homepage = asserted(p.homepage);
    if (homepage && hasScheme(homepage)) externalReferences.push({ type: 'website', url: homepage });
    const description = str(p.description) ?? str(p.summary);
    const copyright = asserted(p.copyrightText);

    return withProperties(
      {
        type,
        'bom-ref': String(p.SPDXID),
        ...(supplier ? { supplier: { name: supplier } } : {}),
        ...(originator?.kind === 'Organization' ? { manufacturer: { name: originator.name } } : {}),
        ...(originator?.kind === 'Person' ? { authors: [{ name: originator.name }] } : {}),
        name: String(p.name),
        ...(str(p.versionInfo) ? { version: String(p.versionInfo) } : {}),
        ...(description ? { description } : {}),
        ...(hashes.length > 0 ? { hashes } : {}),
        ...(licenses ? { licenses } : {}),
        ...(copyright ? { copyright } : {}),
        ...(cpe ? { cpe } : {}),
        ...(purl ? { purl } : {}),
        ...(externalReferences.length > 0 ? { externalReferences } : {}),
      },
      own,
    );
  };

  const fileComponent = (f: Json): Json => {
    const own: Json[] = [];
    const hashes = hashesOf(f.checksums, own);
    const concluded = asserted(f.licenseConcluded);
    return withProperties(
      {
        type: 'file',
        'bom-ref': String(f.SPDXID),
        name: String(f.fileName),
        ...(hashes.length > 0 ? { hashes } : {}),
        ...(concluded ? { licenses: cdxLicenses(concluded, 'concluded') } : {}),
      },
      own,
    );
  };

  let main: Json | undefined;
  const components: Json[] = [];
  for (const p of packages) {
    const isMain = String(p.SPDXID) === mainId;
    const c = packageComponent(p, isMain);
    if (isMain) main = c;
    else components.push(c);
  }
  for (const f of files) {
    const c = fileComponent(f);
    if (String(f.SPDXID) === mainId) main = c;
    else components.push(c);
  }

  const creationInfo = obj(doc.creationInfo);
  const created = normalizeDate(str(creationInfo?.created));
  const metadataProperties = uniqueBy(
    [
      ...strs(creationInfo?.creators).map((c) => property(P.creator, c)),
      ...arr(doc.hasExtractedLicensingInfos).map((e) =>
        property(P.extractedLicense + String(e.licenseId), String(e.extractedText)),
      ),
      ...(properties.get(METADATA) ?? []),
    ],
    (p) => JSON.stringify(p),
  );
  const order = [...packages, ...files].map((e) => String(e.SPDXID));
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${contentUuid(doc)}`,
    version: 1,
    metadata: {
      ...(created ? { timestamp: created } : {}),
      tools: { components: [{ type: 'application', name: 'reef' }] },
      ...(main ? { component: main } : {}),
      ...(metadataProperties.length > 0 ? { properties: metadataProperties } : {}),
    },
    components,
    dependencies: order
      .filter((ref) => dependsOn.has(ref))
      .map((ref) => ({ ref, dependsOn: [...new Set(dependsOn.get(ref))] })),
  };
}

export interface CycloneDxToSpdxOptions {
  /** documentNamespace prefix, an absolute URI without `#`. */
  namespaceBase?: string;
}

const DEFAULT_NAMESPACE_BASE = 'https://reef.invalid/spdxdocs/cyclonedx';
const EXTERNAL_ELEMENT = /^DocumentRef-[A-Za-z0-9.+-]+:SPDXRef-[A-Za-z0-9.-]+$/;

export function cycloneDxToSpdx(doc: Json, options: CycloneDxToSpdxOptions = {}): Json {
  const metadata = obj(doc.metadata) ?? {};
  const metadataProperties = arr(metadata.properties);
  const known: ExtractedLicense[] = metadataProperties
    .filter((p) => String(p.name).startsWith(P.extractedLicense))
    .map((p) => ({
      licenseId: String(p.name).slice(P.extractedLicense.length),
      extractedText: String(p.value ?? ''),
    }));
  const licenses = createLicenseTable(known);
  const { main, all } = cycloneDxComponents(doc);

  // SPDXIDs: a bom-ref that already is one is kept (round trips keep their ids), others are derived.
  const allocate = createIdAllocator();
  const idOf = new Map<Json, string>();
  const idByRef = new Map<string, string>();
  const entries: Array<{ c: Json; parent: Json | undefined; id: string; isFile: boolean }> = [];
  for (const [i, { component: c, parent }] of all.entries()) {
    const ref = str(c['bom-ref']);
    // bom-refs are unique in a valid BOM; a repeated one is the same component listed twice.
    if (ref && idByRef.has(ref)) {
      idOf.set(c, idByRef.get(ref)!);
      continue;
    }
    // SPDX files need a SHA1 (§8.4); a file component without one stays a package of purpose FILE.
    const isFile = c.type === 'file' && arr(c.hashes).some((h) => h.alg === 'SHA-1');
    const kind = isFile ? 'File' : 'Package';
    const id = allocate(
      ref && SPDX_ID_RE.test(ref) ? ref : `SPDXRef-${kind}-${spdxIdPart(ref ?? String(i + 1))}`,
    );
    idOf.set(c, id);
    if (ref) idByRef.set(ref, id);
    entries.push({ c, parent, id, isFile });
  }
  const mainId = main ? idOf.get(main) : undefined;
  const resolve = (value: string): string | undefined =>
    idByRef.get(value) ??
    (value === 'SPDXRef-DOCUMENT' ||
    value === 'NONE' ||
    value === 'NOASSERTION' ||
    EXTERNAL_ELEMENT.test(value)
      ? value
      : undefined);

  const relationships: Json[] = [];
  const seen = new Set<string>();
  const relate = (from: string, type: string, to: string | undefined) => {
    if (!to || !VALID_RELATIONSHIP.has(type)) return;
    const key = `${from} ${type} ${to}`;
    if (seen.has(key)) return;
    seen.add(key);
    relationships.push({ spdxElementId: from, relationshipType: type, relatedSpdxElement: to });
  };
  const relationshipProperties = (props: Json[]) =>
    props
      .filter((p) => String(p.name).startsWith(P.relationship))
      .map((p) => ({ type: String(p.name).slice(P.relationship.length), to: String(p.value ?? '') }));

  // metadata.component is what the document describes, unless it says so itself (DESCRIBED_BY the document).
  const mainSaysDescribed =
    main !== undefined &&
    relationshipProperties(arr(main.properties)).some(
      (r) => r.type === 'DESCRIBED_BY' && r.to === 'SPDXRef-DOCUMENT',
    );
  if (mainId && !mainSaysDescribed) relate('SPDXRef-DOCUMENT', 'DESCRIBES', mainId);
  for (const r of relationshipProperties(metadataProperties))
    relate('SPDXRef-DOCUMENT', r.type, resolve(r.to));
  // Dependency edges a DEPENDENCY_OF property on their target already states.
  const stated = new Set<string>();
  for (const { c, parent, id } of entries) {
    // A nested component is part of its parent (an assembly): CONTAINS.
    if (parent) relate(idOf.get(parent)!, 'CONTAINS', id);
    for (const r of relationshipProperties(arr(c.properties))) {
      relate(id, r.type, resolve(r.to));
      if (r.type === 'DEPENDENCY_OF') stated.add(`${r.to} ${String(c['bom-ref'])}`);
    }
  }
  for (const dep of arr(doc.dependencies)) {
    const from = idByRef.get(String(dep.ref));
    if (!from) continue;
    for (const to of strs(dep.dependsOn)) {
      if (!stated.has(`${String(dep.ref)} ${to}`)) relate(from, 'DEPENDS_ON', idByRef.get(to));
    }
  }
  const fileIds = new Set(entries.filter((e) => e.isFile).map((e) => e.id));
  const containsFiles = new Set(
    relationships
      .filter((r) => r.relationshipType === 'CONTAINS' && fileIds.has(String(r.relatedSpdxElement)))
      .map((r) => String(r.spdxElementId)),
  );

  const packages: Json[] = [];
  const files: Json[] = [];
  for (const { c, id, isFile } of entries) {
    const props = arr(c.properties);
    const prop = (name: string) => str(props.find((p) => p.name === name)?.value);
    const checksums = uniqueBy(
      [
        ...arr(c.hashes).flatMap((h) => {
          const algorithm = spdxChecksumAlgorithm(String(h.alg));
          return algorithm ? [{ algorithm, checksumValue: String(h.content).toLowerCase() }] : [];
        }),
        ...props
          .filter((p) => String(p.name).startsWith(P.checksum))
          .map((p) => ({
            algorithm: String(p.name).slice(P.checksum.length),
            checksumValue: String(p.value ?? ''),
          }))
          .filter((x) => VALID_CHECKSUM.has(x.algorithm) && /^[0-9a-f]+$/i.test(x.checksumValue)),
      ],
      (x) => `${x.algorithm}:${x.checksumValue}`,
    );
    const license = cdxLicenseExpression(c.licenses, licenses);
    const concludedProperty = prop(P.licenseConcluded);
    let concluded = concludedProperty ? licenses.expressionFor(concludedProperty) : undefined;
    let declared: string | undefined;
    if (license?.acknowledgement === 'concluded') concluded = license.expression;
    else if (license) declared = license.expression;

    if (isFile) {
      files.push({
        SPDXID: id,
        fileName: String(c.name),
        checksums,
        ...(concluded || declared ? { licenseConcluded: concluded ?? declared } : {}),
      });
      continue;
    }

    const supplierName = str(obj(c.supplier)?.name) ?? str(c.publisher);
    const manufacturer = str(obj(c.manufacturer)?.name);
    const author = str(arr(c.authors)[0]?.name) ?? str(c.author);
    const refs = arr(c.externalReferences);
    const url = (type: string) => str(refs.find((r) => r.type === type && hasScheme(String(r.url)))?.url);
    const externalRefs: Json[] = [];
    if (str(c.purl)) {
      externalRefs.push({
        referenceCategory: 'PACKAGE-MANAGER',
        referenceType: 'purl',
        referenceLocator: c.purl,
      });
    }
    if (str(c.cpe)) {
      const cpe = String(c.cpe);
      externalRefs.push({
        referenceCategory: 'SECURITY',
        referenceType: cpe.startsWith('cpe:2.3:') ? 'cpe23Type' : 'cpe22Type',
        referenceLocator: cpe,
      });
    }
    for (const p of props) {
      const m = /^spdx:externalRef:([A-Z_-]+):(.+)$/.exec(String(p.name));
      const locator = str(p.value);
      if (m && VALID_CATEGORY.has(m[1]!) && locator && /^\S+$/.test(locator)) {
        externalRefs.push({ referenceCategory: m[1], referenceType: m[2], referenceLocator: locator });
      }
    }
    const originator =
      prop(P.originator) ??
      (manufacturer ? `Organization: ${manufacturer}` : author ? `Person: ${author}` : undefined);
    const description = str(c.description);
    packages.push({
      SPDXID: id,
      name: cycloneDxName(c),
      ...(str(c.version) ? { versionInfo: String(c.version) } : {}),
      supplier: prop(P.supplier) ?? (supplierName ? `Organization: ${supplierName}` : 'NOASSERTION'),
      ...(originator ? { originator } : {}),
      downloadLocation: url('distribution') ?? url('vcs') ?? 'NOASSERTION',
      ...(url('website') ? { homepage: url('website') } : {}),
      // §7.8: only a package whose files were analysed may contain files.
      filesAnalyzed: containsFiles.has(id),
      ...(checksums.length > 0 ? { checksums } : {}),
      licenseConcluded: concluded ?? 'NOASSERTION',
      licenseDeclared: declared ?? 'NOASSERTION',
      copyrightText: str(c.copyright) ?? 'NOASSERTION',
      ...(description ? { description } : {}),
      ...(externalRefs.length > 0 ? { externalRefs } : {}),
      primaryPackagePurpose: purposeOf(prop(P.purpose)) ?? TYPE_TO_PURPOSE[String(c.type)] ?? 'OTHER',
    });
  }

  // Creators: the ones an SPDX original named (carried as properties), else the BOM's tools and authors.
  const tools = obj(metadata.tools);
  const toolNames = [...arr(tools?.components), ...arr(metadata.tools)].map((t) =>
    [str(t.name), str(t.version)].filter(Boolean).join('-'),
  );
  const restored = metadataProperties.filter((p) => p.name === P.creator).map((p) => String(p.value ?? ''));
  const manufacturerName = str(obj(metadata.manufacturer)?.name);
  const creators = uniqueBy(
    [
      'Tool: reef',
      ...(restored.length > 0
        ? restored
        : [
            ...toolNames.filter(Boolean).map((t) => `Tool: ${t}`),
            ...arr(metadata.authors).flatMap((a) => (str(a.name) ? [`Person: ${a.name}`] : [])),
            ...(manufacturerName ? [`Organization: ${manufacturerName}`] : []),
          ]),
    ].filter((c) => /^(Person|Organization|Tool): \S/.test(c)),
    (c) => c,
  );
  const base = (options.namespaceBase ?? DEFAULT_NAMESPACE_BASE).replace(/#.*$/, '').replace(/\/+$/, '');
  const extracted = licenses.entries();
  const serial = str(doc.serialNumber);
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: main
      ? `${cycloneDxName(main)}${str(main.version) ? `-${main.version}` : ''}`
      : 'cyclonedx-document',
    // A new document, so a new namespace, derived from the content: a CycloneDX
    // serial number stays the same across the versions of a BOM.
    documentNamespace: `${base}/${contentUuid(doc)}`,
    creationInfo: {
      created: normalizeDate(str(metadata.timestamp)) ?? '1970-01-01T00:00:00Z',
      creators,
      comment: `Converted by reef from CycloneDX ${String(doc.specVersion)}${serial ? ` ${serial}` : ''}.`,
    },
    documentDescribes: relationships
      .filter((r) => r.spdxElementId === 'SPDXRef-DOCUMENT' && r.relationshipType === 'DESCRIBES')
      .map((r) => String(r.relatedSpdxElement))
      .filter((id) => id !== 'NONE' && id !== 'NOASSERTION'),
    packages,
    ...(files.length > 0 ? { files } : {}),
    relationships,
    ...(extracted.length > 0 ? { hasExtractedLicensingInfos: extracted } : {}),
  };
}
