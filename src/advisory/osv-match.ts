import * as pep440 from '@renovatebot/pep440';
import { PackageURL } from 'packageurl-js';
import semver from 'semver';
import { z } from 'zod';
import { compareVersions, isValidVersion } from '../apk/version.ts';
import { AppError } from '../errors.ts';

/**
 * Vulnerability data auditors upload (OSV records, e.g. osv.dev exports for
 * Go, npm, PyPI, crates.io, Maven and apk distributions), and the question
 * it answers: is this version of this package in an affected range? Each
 * ecosystem compares versions its own way: SEMVER ranges as semantic
 * versions; ECOSYSTEM ranges by the ecosystem's rules (Go, npm, crates.io:
 * semver; PyPI: PEP 440; apk distributions: apk-tools' order). Where reef
 * has no rule, or a version does not parse, the answer is "not evaluated",
 * never "not affected". Pure.
 */

export const OSV_LIMITS = {
  records: 20_000,
  affected: 500,
  ranges: 50,
  events: 200,
  versions: 5000,
} as const;

const text = (max: number) => z.string().min(1).max(max);

const eventSchema = z.union([
  z.strictObject({ introduced: text(256) }),
  z.strictObject({ fixed: text(256) }),
  z.strictObject({ last_affected: text(256) }),
  z.strictObject({ limit: text(256) }),
]);

const rangeSchema = z.object({
  type: z.enum(['SEMVER', 'ECOSYSTEM', 'GIT']),
  repo: z.string().max(2000).optional(),
  events: z.array(eventSchema).min(1).max(OSV_LIMITS.events),
});

const affectedSchema = z.object({
  package: z.object({ ecosystem: text(100), name: text(500), purl: text(2000).optional() }),
  ranges: z.array(rangeSchema).max(OSV_LIMITS.ranges).optional(),
  versions: z.array(text(256)).max(OSV_LIMITS.versions).optional(),
});

const timestamp = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/, {
  message: 'an RFC 3339 time in UTC, such as 2024-01-31T12:00:00Z',
});

/** The fields reef reads of an OSV record; the rest is kept as sent. */
export const osvRecordSchema = z.looseObject({
  id: z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,19}-[A-Za-z0-9._:-]{1,100}$/, { message: 'an OSV id' }),
  modified: timestamp,
  withdrawn: timestamp.optional(),
  aliases: z.array(text(200)).max(100).optional(),
  upstream: z.array(text(200)).max(100).optional(),
  affected: z.array(affectedSchema).max(OSV_LIMITS.affected).optional(),
});
export type OsvRecord = z.infer<typeof osvRecordSchema>;
export type OsvAffected = z.infer<typeof affectedSchema>;
export type OsvRange = z.infer<typeof rangeSchema>;

/** Validates an uploaded record, naming the field of the first problem (ADVISORY_INVALID). */
export function parseOsvRecord(json: unknown, where: string): OsvRecord {
  const parsed = osvRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    throw new AppError('ADVISORY_INVALID', `${where}${field}: ${issue.message}`, {
      details: { record: where, field: field.replace(/^\./, '') || '(record)' },
    });
  }
  return parsed.data;
}

/** apk distributions' OSV ecosystems (their records name source packages). */
export function isApkEcosystem(ecosystem: string): boolean {
  return /^(Alpine|Wolfi|Chainguard|MinimOS|Alpaquita|CleanStart|BellSoft Hardened Containers)(:|$)/.test(
    ecosystem,
  );
}

/** OSV ecosystems to purl types, for records without a purl (osv-schema, "purl" of each ecosystem). */
const PURL_TYPES: Record<string, string> = {
  Go: 'golang',
  npm: 'npm',
  PyPI: 'pypi',
  'crates.io': 'cargo',
  Maven: 'maven',
  RubyGems: 'gem',
  NuGet: 'nuget',
  Packagist: 'composer',
  Hex: 'hex',
  Pub: 'pub',
};

/**
 * The versionless purl SBOM components of `affected` carry
 * (`pkg:golang/github.com/x/y`), to find them by prefix: the record's own
 * purl without version and qualifiers, else one built from ecosystem and name.
 */
export function purlKey(affected: OsvAffected): string | undefined {
  try {
    if (affected.package.purl) {
      const p = PackageURL.fromString(affected.package.purl);
      return new PackageURL(p.type, p.namespace, p.name, undefined, undefined, undefined).toString();
    }
    const type = PURL_TYPES[affected.package.ecosystem.split(':')[0]!];
    if (!type) return undefined;
    let name = affected.package.name;
    let namespace: string | undefined;
    if (type === 'maven') [namespace, name] = name.split(':') as [string, string];
    else if (type === 'pypi') name = name.toLowerCase().replace(/[-_.]+/g, '-');
    else if (name.includes('/')) {
      namespace = name.slice(0, name.lastIndexOf('/'));
      name = name.slice(name.lastIndexOf('/') + 1);
    }
    return new PackageURL(type, namespace, name, undefined, undefined, undefined).toString();
  } catch {
    return undefined;
  }
}

type Compare = (a: string, b: string) => number;

/** Go writes `v1.2.3`; the rest of semver as is. */
const semverOf = (v: string) => semver.valid(v.replace(/^v(?=\d)/, ''));
const compareSemver: Compare = (a, b) => semver.compare(semverOf(a)!, semverOf(b)!);

/** How `ecosystem` orders versions for a range of `type`, and which versions it can read. */
function comparator(
  ecosystem: string,
  type: OsvRange['type'],
): { valid: (v: string) => boolean; compare: Compare } | undefined {
  const base = ecosystem.split(':')[0]!;
  if (type === 'SEMVER' || (type === 'ECOSYSTEM' && ['Go', 'npm', 'crates.io'].includes(base))) {
    return { valid: (v) => semverOf(v) !== null, compare: compareSemver };
  }
  if (type !== 'ECOSYSTEM') return undefined;
  if (base === 'PyPI')
    return { valid: (v) => pep440.valid(v) !== null, compare: (a, b) => pep440.compare(a, b) };
  if (isApkEcosystem(ecosystem)) return { valid: isValidVersion, compare: compareVersions };
  return undefined;
}

export type Verdict =
  | { result: 'affected'; range?: OsvRange; versions?: true }
  | { result: 'unaffected' }
  | { result: 'not_evaluated'; reason: string };

/**
 * Whether `version` is affected by `affected` (OSV's evaluation: a version is
 * affected if it is listed, or if walking a range's events in version order
 * it passed an `introduced` and no later `fixed` or `last_affected`).
 */
export function evaluate(affected: OsvAffected, version: string | undefined): Verdict {
  if (version === undefined || version === '')
    return { result: 'not_evaluated', reason: 'the component has no version' };
  const ecosystem = affected.package.ecosystem;
  if (affected.versions?.some((v) => v === version || v === version.replace(/^v(?=\d)/, ''))) {
    return { result: 'affected', versions: true };
  }
  let notEvaluated: string | undefined;
  for (const range of affected.ranges ?? []) {
    const rule = comparator(ecosystem, range.type);
    if (!rule) {
      notEvaluated = `reef cannot compare ${ecosystem} versions in a ${range.type} range`;
      continue;
    }
    if (!rule.valid(version)) {
      notEvaluated = `version '${version.slice(0, 80)}' is not a ${ecosystem} version reef reads`;
      continue;
    }
    const events: Array<{ kind: 'introduced' | 'fixed' | 'last_affected'; at: string }> = [];
    let unreadable = false;
    for (const e of range.events) {
      const [kind, at] = Object.entries(e)[0] as ['introduced' | 'fixed' | 'last_affected' | 'limit', string];
      if (kind === 'limit') continue;
      if (at === '0' && kind === 'introduced') events.push({ kind, at });
      else if (rule.valid(at)) events.push({ kind, at });
      else unreadable = true;
    }
    if (unreadable) {
      notEvaluated = `a ${range.type} range of ${ecosystem} holds a version reef cannot read`;
      continue;
    }
    const cmp = (a: string, b: string) =>
      a === '0' ? (b === '0' ? 0 : -1) : b === '0' ? 1 : rule.compare(a, b);
    events.sort((x, y) => cmp(x.at, y.at));
    let inRange = false;
    for (const e of events) {
      if (e.kind === 'introduced' && cmp(version, e.at) >= 0) inRange = true;
      else if (e.kind === 'fixed' && cmp(version, e.at) >= 0) inRange = false;
      else if (e.kind === 'last_affected' && cmp(version, e.at) > 0) inRange = false;
    }
    if (inRange) return { result: 'affected', range };
  }
  return notEvaluated ? { result: 'not_evaluated', reason: notEvaluated } : { result: 'unaffected' };
}
