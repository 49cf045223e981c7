import parseExpression from 'spdx-expression-parse';
import { arr, obj, str } from './json.ts';

/**
 * SPDX licence expressions (SPDX 2.3 Annex D) and the `LicenseRef-` entries a
 * document must define for every licence that is not on the SPDX list
 * (SPDX 2.3 §10.1). Licence strings come from uploaded packages and documents.
 */

/** SECURITY: the expression parser recurses once per parenthesis; longer text is not an expression. */
const MAX_EXPRESSION_LENGTH = 4096;

type Node = parseExpression.Info;

function parse(text: string): Node | undefined {
  if (text.length > MAX_EXPRESSION_LENGTH) return undefined;
  try {
    return parseExpression(text);
  } catch {
    return undefined;
  }
}

/** True when `text` is a valid SPDX licence expression (ids from the SPDX list, `LicenseRef-…`, AND/OR/WITH). */
export function isLicenseExpression(text: string): boolean {
  return parse(text) !== undefined;
}

/** A value every SPDX licence field may hold (§7.13): an expression, NONE or NOASSERTION. */
export function isLicenseValue(text: string): boolean {
  return text === 'NONE' || text === 'NOASSERTION' || isLicenseExpression(text.trim());
}

/** The document-local `LicenseRef-…` ids an expression uses, sorted (a `DocumentRef-x:LicenseRef-y` is defined elsewhere). */
export function licenseRefsIn(expression: string): string[] {
  const tree = parse(expression);
  const refs = new Set<string>();
  const stack: Node[] = tree ? [tree] : [];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if ('conjunction' in node) stack.push(node.left, node.right);
    else if (node.license.startsWith('LicenseRef-')) refs.add(node.license);
  }
  return [...refs].sort();
}

/** `LicenseRef-` plus the text reduced to the characters an id allows (letters, digits, `.`, `-`). */
export function licenseRefId(text: string): string {
  const idString = text
    .replace(/[^A-Za-z0-9.-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return `LicenseRef-${idString || 'unknown'}`;
}

export interface ExtractedLicense {
  licenseId: string;
  extractedText: string;
  name?: string;
}

/** What a document says when it uses a LicenseRef whose text reef never saw. */
const UNKNOWN_TEXT =
  'The licence text was not available to reef; the licence is known only by this identifier.';

export interface LicenseTable {
  /**
   * An SPDX expression for a licence string: a valid expression as it is
   * (recording the LicenseRefs it uses), anything else as a new LicenseRef
   * whose extracted text is the string itself (or `text` when given).
   */
  expressionFor(license: string, text?: string): string;
  /** The `hasExtractedLicensingInfos` entries, sorted by id. */
  entries(): ExtractedLicense[];
}

/** Collects the LicenseRef definitions of one document; `known` supplies texts already defined. */
export function createLicenseTable(known: Iterable<ExtractedLicense> = []): LicenseTable {
  const knownById = new Map<string, ExtractedLicense>();
  for (const k of known) knownById.set(k.licenseId, k);
  const used = new Map<string, ExtractedLicense>();
  const define = (id: string) => {
    if (!used.has(id)) used.set(id, knownById.get(id) ?? { licenseId: id, extractedText: UNKNOWN_TEXT });
  };
  return {
    expressionFor(license, text) {
      const trimmed = license.trim();
      if (isLicenseExpression(trimmed)) {
        for (const id of licenseRefsIn(trimmed)) define(id);
        return trimmed;
      }
      const base = licenseRefId(trimmed);
      const extractedText = text ?? trimmed;
      let id = base;
      // Two different texts may reduce to the same id; number the later ones.
      for (let n = 2; used.has(id) && used.get(id)!.extractedText !== extractedText; n++) id = `${base}-${n}`;
      if (!used.has(id)) used.set(id, { licenseId: id, extractedText, name: trimmed });
      return id;
    },
    entries() {
      return [...used.values()].sort((a, b) => (a.licenseId < b.licenseId ? -1 : 1));
    },
  };
}

/** A CycloneDX attachment's text, decoded when it is base64. */
function licenseText(attachment: unknown): string | undefined {
  const a = obj(attachment);
  const content = str(a?.content);
  if (!content) return undefined;
  return a?.encoding === 'base64' ? Buffer.from(content, 'base64').toString('utf8') : content;
}

/** Parenthesises an expression that holds OR, so joining several with AND keeps their meaning. */
function grouped(expression: string): string {
  return /\sOR\s/i.test(expression) ? `(${expression})` : expression;
}

/**
 * A CycloneDX `licenses` array (licenseChoice) as one SPDX expression: the
 * expression entry, or every `license` entry (id, or name made a LicenseRef)
 * joined with AND, since a component's licence list means all of them apply.
 * `acknowledgement` (CycloneDX 1.6) says whether it was declared or concluded.
 */
export function cdxLicenseExpression(
  licenses: unknown,
  table: LicenseTable = createLicenseTable(),
): { expression: string; acknowledgement: string | undefined } | undefined {
  const parts: string[] = [];
  let acknowledgement: string | undefined;
  for (const entry of arr(licenses)) {
    const expression = str(entry.expression);
    const license = obj(entry.license);
    acknowledgement ??= str(entry.acknowledgement) ?? str(license?.acknowledgement);
    if (expression) parts.push(table.expressionFor(expression));
    else if (str(license?.id)) parts.push(String(license!.id));
    else if (str(license?.name))
      parts.push(table.expressionFor(String(license!.name), licenseText(license!.text)));
  }
  if (parts.length === 0) return undefined;
  const unique = [...new Set(parts)];
  return {
    expression: unique.length === 1 ? unique[0]! : unique.map(grouped).join(' AND '),
    acknowledgement,
  };
}
