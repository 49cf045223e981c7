/** The syntax of a few SPDX 2.3 field values, shared by generation and conversion. */

/** `SPDXRef-[idstring]` (§3.2). */
export const SPDX_ID_RE = /^SPDXRef-[A-Za-z0-9.-]+$/;

/** An idstring for any text: SPDX identifiers allow letters, digits, `.` and `-` only (§3.2). */
export function spdxIdPart(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]/g, '-') || 'x';
}

/** Hands out unique SPDXIDs within one document, numbering repeats. */
export function createIdAllocator(
  reserved: Iterable<string> = ['SPDXRef-DOCUMENT'],
): (base: string) => string {
  const used = new Set(reserved);
  return (base) => {
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    return id;
  };
}

/** §6.9: `YYYY-MM-DDThh:mm:ssZ`, UTC, no fraction. */
export function spdxDate(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** An ISO 8601 date-time re-written as §6.9 asks, or undefined when it is not a date. */
export function normalizeDate(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : spdxDate(date);
}

/** §7.5/§7.6 agent: `Person: name (mail)`, `Organization: name (mail)`, or `Tool: name`. */
export function parseAgent(
  text: string,
): { kind: 'Person' | 'Organization' | 'Tool'; name: string } | undefined {
  const m = /^(Person|Organization|Tool):\s*(.*?)\s*$/.exec(text);
  if (!m?.[2]) return undefined;
  return { kind: m[1] as 'Person' | 'Organization' | 'Tool', name: m[2] };
}
