import semver from 'semver';
import parseSpdx from 'spdx-expression-parse';
import spdxSatisfies from 'spdx-satisfies';
import { isValidVersion, matchVersion, type VersionOp } from '../apk/version.ts';
import { AppError } from '../errors.ts';
import type { SbomComponent } from '../sbom/types.ts';
import type { ComponentCursor, LicenseCursor, SbomStore } from '../store/sbom-store.ts';

/**
 * The auditor's questions across every SBOM reef holds: which packages
 * contain a component (in a version range), which declare a licence the
 * approved list does or does not satisfy, and what changed between two
 * versions of a package. The JSON API and the web interface both ask here.
 */

/** One page of the packages holding a component named `name` (or with purl `purl`) in the `version` range. */
export async function findComponents(
  sboms: SbomStore,
  query: { name?: string; purl?: string; version?: string },
  page: { repos: readonly string[]; limit: number; after?: ComponentCursor },
) {
  const constraints = query.version === undefined ? [] : parseConstraints(query.version);
  return await sboms.findComponents(
    { name: query.name, purl: query.purl },
    { ...page, accept: constraints.length === 0 ? undefined : versionFilter(constraints) },
  );
}

/**
 * One page of the packages whose declared licence the approved list
 * `expression` satisfies (`mode` satisfies) or does not (conflicts: a licence
 * that is not an SPDX expression satisfies nothing).
 */
export async function findLicensed(
  sboms: SbomStore,
  query: { expression: string; mode: 'satisfies' | 'conflicts' },
  page: { repos: readonly string[]; limit: number; after?: LicenseCursor },
) {
  const approved = approvedList(query.expression);
  const satisfied = (license: string) => {
    try {
      return license !== '' && spdxSatisfies(license, approved);
    } catch {
      return false;
    }
  };
  // Each distinct licence is judged once (hundreds of them), then only a page of packages is read.
  const want = query.mode === 'satisfies';
  const licenses = (await sboms.publishedLicenses()).filter((l) => satisfied(l) === want);
  return await sboms.findByLicense(licenses, page);
}

/** purl types whose versions are semantic versions. */
const SEMVER_TYPES = new Set(['npm', 'cargo', 'golang', 'gem', 'hex', 'pub', 'swift', 'composer', 'nuget']);

/** `A OR B OR C` → [A, B, C]; spdx-satisfies takes a list of approved licences, not AND. */
function approvedList(expression: string): string[] {
  let tree: SpdxNode;
  try {
    tree = parseSpdx(expression) as SpdxNode;
  } catch (err) {
    throw new AppError(
      'BAD_REQUEST',
      `expression '${expression.slice(0, 100)}' is not an SPDX licence expression`,
      {
        cause: err,
      },
    );
  }
  const out: string[] = [];
  const walk = (node: SpdxNode): void => {
    if ('license' in node) {
      out.push(`${node.license}${node.plus ? '+' : ''}${node.exception ? ` WITH ${node.exception}` : ''}`);
    } else if (node.conjunction === 'or') {
      walk(node.left);
      walk(node.right);
    } else {
      throw new AppError(
        'BAD_REQUEST',
        'give approved licences joined with OR (AND is not a list of approvals)',
      );
    }
  };
  walk(tree);
  return out;
}

type SpdxNode =
  | { license: string; plus?: boolean; exception?: string }
  | { conjunction: 'and' | 'or'; left: SpdxNode; right: SpdxNode };

interface Constraint {
  op: VersionOp;
  version: string;
}

function parseConstraints(text: string): Constraint[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((part) => {
      const m = /^(<=|>=|<~|>~|<|>|=|~)?(.+)$/.exec(part)!;
      const version = m[2]!;
      // A bound that is neither an apk version nor a semantic one matches nothing: say so, not [].
      if (!isValidVersion(version) && semver.coerce(version, { loose: true }) === null) {
        throw new AppError(
          'BAD_REQUEST',
          `'${part.slice(0, 100)}' is not a version constraint: give an operator and a version, e.g. <3.0.8`,
        );
      }
      return { op: (m[1] ?? '=') as VersionOp, version };
    });
}

/**
 * versionMatches with its verdict remembered per (purl type, version): a
 * common component has a handful of versions across a million packages, and
 * a page may have to read far past rows that miss the constraint.
 */
function versionFilter(constraints: Constraint[]): (c: Pick<SbomComponent, 'version' | 'purl'>) => boolean {
  const verdicts = new Map<string, boolean>();
  return (component) => {
    const key = `${purlTypeOf(component.purl) ?? ''}\0${component.version ?? ''}`;
    let ok = verdicts.get(key);
    if (ok === undefined) {
      ok = versionMatches(component, constraints);
      if (verdicts.size < 10_000) verdicts.set(key, ok);
    }
    return ok;
  };
}

function purlTypeOf(purl: string | undefined): string | undefined {
  return /^pkg:([a-z0-9.+-]+)\//i.exec(purl ?? '')?.[1]?.toLowerCase();
}

/** apk rules (apk3 src/version.c) for apk components and plain names; semver for purl types that use it. */
function versionMatches(
  component: Pick<SbomComponent, 'version' | 'purl'>,
  constraints: Constraint[],
): boolean {
  if (constraints.length === 0) return true;
  const version = component.version;
  if (!version) return false;
  const type = purlTypeOf(component.purl);
  if (type && SEMVER_TYPES.has(type)) {
    const v = semver.coerce(version, { loose: true });
    if (!v) return false;
    const range = constraints
      .map((c) => `${c.op === '~' ? '~' : c.op.replace('~', '=')}${c.version}`)
      .join(' ');
    return semver.validRange(range, { loose: true }) !== null && semver.satisfies(v, range, { loose: true });
  }
  if (!isValidVersion(version)) return false;
  return constraints.every((c) => isValidVersion(c.version) && matchVersion(version, c.op, c.version));
}

/** Components keyed by purl without its version (or name): what was added, removed or changed. */
export function diffComponents(before: SbomComponent[], after: SbomComponent[]) {
  const keyOf = (c: SbomComponent) => (c.purl ? c.purl.replace(/@[^?#]*/, '') : `name:${c.name}`);
  const index = (list: SbomComponent[]) => {
    const map = new Map<string, SbomComponent>();
    for (const c of list) map.set(keyOf(c), c);
    return map;
  };
  const a = index(before);
  const b = index(after);
  const added = [...b].filter(([k]) => !a.has(k)).map(([, c]) => c);
  const removed = [...a].filter(([k]) => !b.has(k)).map(([, c]) => c);
  const changed = [...b]
    .filter(([k]) => a.has(k))
    .map(([k, c]) => ({ before: a.get(k)!, after: c }))
    .filter(
      ({ before: x, after: y }) =>
        x.version !== y.version ||
        x.license !== y.license ||
        JSON.stringify(x.checksums) !== JSON.stringify(y.checksums),
    );
  return { added, removed, changed };
}
