import type { Json } from './types.ts';

/**
 * Readers for documents that passed a schema but are still untrusted: a value
 * of the wrong type reads as absent instead of throwing deep inside a mapping.
 */

export const obj = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;

export const arr = (v: unknown): Json[] =>
  Array.isArray(v) ? v.filter((x): x is Json => obj(x) !== undefined) : [];

export const strs = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

export const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** SPDX's NOASSERTION and NONE say nothing about the thing; read them as absent. */
export const asserted = (v: unknown): string | undefined => {
  const s = str(v);
  return s === 'NOASSERTION' || s === 'NONE' ? undefined : s;
};
