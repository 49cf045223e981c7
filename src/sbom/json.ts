import type { Json } from './types.ts';

/** Small readers for untrusted JSON documents: values of the wrong type read as absent. */

export const arr = (v: unknown): Json[] =>
  Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x) as Json[]) : [];

export const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** SPDX's NOASSERTION and NONE say nothing; read them as absent. */
export const asserted = (v: unknown): string | undefined => {
  const s = str(v);
  return s === 'NOASSERTION' || s === 'NONE' ? undefined : s;
};

/** A CycloneDX `licenses` array as one SPDX expression (several entries all apply: AND). */
export function cdxLicense(licenses: unknown): string | undefined {
  const parts = arr(licenses)
    .map(
      (l) =>
        str(l.expression) ??
        str((l.license as Json | undefined)?.id) ??
        str((l.license as Json | undefined)?.name),
    )
    .filter((x): x is string => x !== undefined);
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : parts.map((p) => (/\sOR\s/.test(p) ? `(${p})` : p)).join(' AND ');
}

/** metadata.component and every component, nested ones included, in document order. */
export function cdxComponents(doc: Json): { main: Json | undefined; all: Json[] } {
  const all: Json[] = [];
  const collect = (c: Json) => {
    all.push(c);
    for (const child of arr(c.components)) collect(child);
  };
  const main = ((doc.metadata ?? {}) as Json).component as Json | undefined;
  if (main) collect(main);
  for (const c of arr(doc.components)) collect(c);
  return { main, all };
}
