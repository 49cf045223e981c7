import { arr, obj, str } from './json.ts';
import { createLicenseTable, type ExtractedLicense } from './license.ts';
import { normalizeDate } from './spdx-fields.ts';
import type { Json } from './types.ts';

/**
 * An SPDX 2.3 document as reef serves it: what parse.ts accepts from melange
 * and publishers, made to conform to the SPDX 2.3 specification and its
 * official JSON schema (spdx/spdx-spec `schemas/spdx-schema.json`). The
 * accepted documents that do not (melange writes its SBOMs in
 * chainguard-dev/melange `pkg/sbom/`):
 * - enum spellings: melange writes `PACKAGE_MANAGER` where the schema has
 *   `PACKAGE-MANAGER` (§7.21), and `OPERATING-SYSTEM` (the spec text's
 *   spelling, §7.24) where the schema has `OPERATING_SYSTEM`;
 * - melange (2023) named the document `SPDXRef-DOCUMENT-apk-<name>-<version>`;
 *   §6.3 requires `SPDXRef-DOCUMENT`;
 * - one documentNamespace for many documents: older melange wrote the bare
 *   prefix `https://spdx.org/spdxdocs/chainguard/melange/`, current melange one
 *   per build, shared by its subpackages; §6.5 wants one per document;
 * - `created` (and other dates) with a UTC offset; §6.9 asks for UTC `Z`;
 * - licence fields that are not SPDX expressions (Annex D), and LicenseRefs
 *   the document never defines (§10.1).
 *
 * Pure: the same document and options give the same result, so what is
 * served is a function of the stored bytes and its ETag stays stable.
 */

export interface NormalizeOptions {
  /** The documentNamespace of the document reef serves when it differs from the one it read. */
  namespace: string;
  /** Replace the namespace even when nothing else changes (melange's are shared by several documents). */
  replaceNamespace: boolean;
}

const DOCUMENT_ID = 'SPDXRef-DOCUMENT';

/** §7.21 spells the categories with hyphens; melange's Go library wrote underscores. */
const REFERENCE_CATEGORY: Record<string, string> = {
  PACKAGE_MANAGER: 'PACKAGE-MANAGER',
  PERSISTENT_ID: 'PERSISTENT-ID',
};

/** The official 2.3 JSON schema spells this purpose with an underscore; the spec text with a hyphen. */
const PURPOSE: Record<string, string> = { 'OPERATING-SYSTEM': 'OPERATING_SYSTEM' };

/** Licence fields that hold one expression, and those that hold a list (§7.13-7.15, §8.5-8.6, §9.6-9.7). */
const LICENSE_FIELDS = ['licenseConcluded', 'licenseDeclared'];
const LICENSE_LIST_FIELDS = ['licenseInfoFromFiles', 'licenseInfoInFiles', 'licenseInfoInSnippets'];

/** The value every licence field may hold besides an expression (§7.13). */
const isNoneOrNoAssertion = (v: string) => v === 'NONE' || v === 'NOASSERTION';

/**
 * Makes `doc` the document reef serves, in place (a 16 MiB document's tree
 * is not copied), and returns what it changed, as its comment also says.
 * Nothing changed: the caller serves the stored bytes as they are.
 */
export function normalizeSpdx(doc: Json, options: NormalizeOptions): string[] {
  const changes: string[] = [];

  const oldId = str(doc.SPDXID);
  if (oldId !== DOCUMENT_ID) {
    doc.SPDXID = DOCUMENT_ID;
    const rename = (v: unknown) => (v === oldId ? DOCUMENT_ID : v);
    for (const r of arr(doc.relationships)) {
      r.spdxElementId = rename(r.spdxElementId);
      r.relatedSpdxElement = rename(r.relatedSpdxElement);
    }
    if (Array.isArray(doc.documentDescribes)) doc.documentDescribes = doc.documentDescribes.map(rename);
    changes.push(`document SPDXID ${oldId} is now ${DOCUMENT_ID}`);
  }

  let categories = 0;
  let purposes = 0;
  for (const p of arr(doc.packages)) {
    for (const ref of arr(p.externalRefs)) {
      const fixed = REFERENCE_CATEGORY[String(ref.referenceCategory)];
      if (fixed) {
        ref.referenceCategory = fixed;
        categories++;
      }
    }
    const purpose = PURPOSE[String(p.primaryPackagePurpose)];
    if (purpose) {
      p.primaryPackagePurpose = purpose;
      purposes++;
    }
  }
  if (categories > 0) changes.push('referenceCategory spelled as SPDX 2.3 does (PACKAGE-MANAGER)');
  if (purposes > 0)
    changes.push('primaryPackagePurpose spelled as the SPDX 2.3 schema does (OPERATING_SYSTEM)');

  if (normalizeDates(doc)) changes.push('dates in UTC');
  if (normalizeLicenses(doc)) changes.push('licence values that are not SPDX expressions made LicenseRefs');

  const namespaceReplaced = options.replaceNamespace || changes.length > 0;
  if (!namespaceReplaced) return changes;
  // A changed document is another document: §6.5 gives it its own namespace.
  const original = str(doc.documentNamespace);
  doc.documentNamespace = options.namespace;
  changes.push(
    original ? `documentNamespace ${original} is now unique to this document` : 'a documentNamespace',
  );
  const info = obj(doc.creationInfo);
  if (info) {
    const creators = Array.isArray(info.creators) ? info.creators : [];
    if (!creators.includes('Tool: reef')) info.creators = [...creators, 'Tool: reef'];
    const note = `Normalized by reef to conform to SPDX 2.3: ${changes.join('; ')}.`;
    info.comment = str(info.comment) ? `${info.comment}\n${note}` : note;
  }
  return changes;
}

/** Every date-time of the document in §6.9's `YYYY-MM-DDThh:mm:ssZ`; true when one changed. */
function normalizeDates(doc: Json): boolean {
  let changed = false;
  const fix = (holder: Json | undefined, field: string) => {
    const value = str(holder?.[field]);
    const utc = normalizeDate(value);
    if (holder && value && utc && utc !== value) {
      holder[field] = utc;
      changed = true;
    }
  };
  fix(obj(doc.creationInfo), 'created');
  const annotated = [doc, ...arr(doc.packages), ...arr(doc.files), ...arr(doc.snippets)];
  for (const element of annotated) for (const a of arr(element.annotations)) fix(a, 'annotationDate');
  for (const p of arr(doc.packages))
    for (const field of ['releaseDate', 'builtDate', 'validUntilDate']) fix(p, field);
  for (const r of arr(doc.revieweds)) fix(r, 'reviewDate');
  return changed;
}

/**
 * Licence values as SPDX expressions: one that is not becomes a LicenseRef
 * whose extracted text is the value (license.ts), and every LicenseRef the
 * document uses gets defined. True when anything changed.
 */
function normalizeLicenses(doc: Json): boolean {
  const defined = arr(doc.hasExtractedLicensingInfos);
  const known: ExtractedLicense[] = defined.map((e) => ({
    licenseId: String(e.licenseId),
    extractedText: String(e.extractedText ?? ''),
  }));
  const table = createLicenseTable(known);
  let changed = false;
  const expression = (value: string) => {
    if (isNoneOrNoAssertion(value)) return value;
    const fixed = table.expressionFor(value);
    if (fixed !== value) changed = true;
    return fixed;
  };
  for (const element of [...arr(doc.packages), ...arr(doc.files), ...arr(doc.snippets)]) {
    for (const field of LICENSE_FIELDS) {
      if (typeof element[field] === 'string') element[field] = expression(element[field]);
    }
    for (const field of LICENSE_LIST_FIELDS) {
      if (Array.isArray(element[field])) {
        element[field] = element[field].map((v: unknown) => (typeof v === 'string' ? expression(v) : v));
      }
    }
  }
  const definedIds = new Set(known.map((k) => k.licenseId));
  const added = table.entries().filter((e) => !definedIds.has(e.licenseId));
  if (added.length === 0) return changed;
  doc.hasExtractedLicensingInfos = [...defined, ...added];
  return true;
}
