import { AppError } from '../errors.ts';
import { arr, obj, str } from './json.ts';
import { isLicenseValue } from './license.ts';
import { cycloneDxComponents } from './parse.ts';
import type { Json } from './types.ts';

/**
 * What reef asks of an SBOM a publisher sends, beyond what parse.ts accepts
 * from melange. An embedded document is normalized when served
 * (normalize.ts): its publisher did not write it. A sent one was written for
 * this upload, so what cannot be served as SPDX 2.3 without guessing is
 * refused with a code that says what to fix: a document SPDXID other than
 * `SPDXRef-DOCUMENT` (§6.3), and a licence that is not an SPDX expression
 * (Annex D): reef would have to invent a LicenseRef for it.
 */
export function checkSentSbom(doc: Json): void {
  if ('spdxVersion' in doc) checkSentSpdx(doc);
  else checkSentCycloneDx(doc);
}

function checkSentSpdx(doc: Json): void {
  if (doc.SPDXID !== 'SPDXRef-DOCUMENT') {
    const id = String(doc.SPDXID).slice(0, 200);
    throw new AppError(
      'SBOM_INVALID_SPDXID',
      `the document's SPDXID is '${id}'; SPDX 2.3 §6.3 requires 'SPDXRef-DOCUMENT' (and relationships from the document name it)`,
      { details: { path: '/SPDXID', spdxId: id } },
    );
  }
  for (const field of ['packages', 'files', 'snippets'] as const) {
    for (const [i, element] of arr(doc[field]).entries()) {
      for (const name of ['licenseConcluded', 'licenseDeclared']) {
        const value = element[name];
        if (typeof value === 'string') checkLicense(value, `/${field}/${i}/${name}`, element.SPDXID);
      }
      for (const name of ['licenseInfoFromFiles', 'licenseInfoInFiles', 'licenseInfoInSnippets']) {
        for (const [j, value] of (Array.isArray(element[name]) ? element[name] : []).entries()) {
          if (typeof value === 'string') checkLicense(value, `/${field}/${i}/${name}/${j}`, element.SPDXID);
        }
      }
    }
  }
}

function checkSentCycloneDx(doc: Json): void {
  const metadata = obj(doc.metadata);
  const check = (holder: Json | undefined, path: string, element: unknown) => {
    for (const [i, entry] of arr(holder?.licenses).entries()) {
      if (typeof entry.expression === 'string') {
        checkLicense(entry.expression, `${path}/licenses/${i}/expression`, element);
      }
    }
  };
  check(metadata, '/metadata', 'the document');
  // Components nest (assemblies): the one at fault is named by its bom-ref, else its name.
  for (const { component } of cycloneDxComponents(doc).all) {
    check(component, 'a component', str(component['bom-ref']) ?? str(component.name));
  }
}

function checkLicense(value: string, path: string, element: unknown): void {
  if (isLicenseValue(value)) return;
  const expression = value.slice(0, 200);
  const named = typeof element === 'string' ? element.slice(0, 200) : undefined;
  throw new AppError(
    'SBOM_INVALID_LICENSE',
    `'${expression}' at '${path}'${named ? ` (${named})` : ''} is not an SPDX licence expression: use ids from the SPDX licence list with AND, OR, WITH, or LicenseRef-<id> defined in the document, or NOASSERTION`,
    { details: { path, element: named, expression } },
  );
}
