import { AppError } from '../errors.ts';
import { type Advisory, type AdvisoryDocument, type AdvisoryEvent, latestEvent } from './document.ts';

/**
 * Advisories as OSV records (ossf/osv-schema 1.7, docs/schema.md), one per advisory, as Chainguard publishes them for Wolfi:
 * the affected package is the source package in the repository's ecosystem,
 * with an ECOSYSTEM range in apk version order. A fixed advisory is
 * `introduced 0, fixed V`; a false positive `introduced 0, fixed 0` with
 * `database_specific.false_positive`; an affected one with no fix
 * (true positive, pending upstream fix, fix not planned) `introduced 0`
 * alone. One still under investigation names no affected package; a
 * withdrawn one neither, and carries `withdrawn`. CVE and GHSA ids go in `upstream`.
 */

export const OSV_SCHEMA_VERSION = '1.7.0';

/** Where an advisory's package lives: the OSV ecosystem and the purl namespace of the repository's distro. */
export interface OsvTarget {
  ecosystem: string;
  purlNamespace: string;
}

/**
 * The OSV ecosystem of a repository's distro (its os-release ID, as set with
 * `PUT /api/v1/repos/<repo>`): only ecosystems the OSV schema lists. Alpine
 * names its release (`Alpine:v3.20`).
 */
export function osvTarget(repo: string, distro: { id: string; version?: string } | undefined): OsvTarget {
  const id = distro?.id;
  const name = id === undefined ? undefined : OSV_ECOSYSTEMS[id];
  if (id === 'alpine') {
    const release = distro?.version === 'edge' ? 'edge' : /^(\d+\.\d+)/.exec(distro?.version ?? '')?.[1];
    if (release)
      return { ecosystem: `Alpine:${release === 'edge' ? 'edge' : `v${release}`}`, purlNamespace: 'alpine' };
  } else if (id !== undefined && name !== undefined) {
    return { ecosystem: name, purlNamespace: id };
  }
  throw new AppError(
    'ADVISORY_NO_ECOSYSTEM',
    `${repo}'s distro ${id === undefined ? 'is not set' : `'${id}'${id === 'alpine' ? ' has no release version' : ''}`}; ` +
      `OSV names an ecosystem: set one with PUT /api/v1/repos/${repo} {"distro": {"id": "wolfi"}} ` +
      `(one of ${Object.keys(OSV_ECOSYSTEMS).join(', ')}; alpine with its version, e.g. 3.20)`,
  );
}

/** os-release IDs of the apk distributions OSV knows, to its ecosystem names. */
const OSV_ECOSYSTEMS: Record<string, string> = {
  wolfi: 'Wolfi',
  chainguard: 'Chainguard',
  alpine: 'Alpine',
  minimos: 'MinimOS',
  alpaquita: 'Alpaquita',
  cleanstart: 'CleanStart',
};

/** RFC 3339 in UTC, whole seconds when the event had them (OSV wants `Z`). */
function utc(timestamp: string): string {
  return new Date(timestamp).toISOString().replace('.000Z', 'Z');
}

const FIX_UNKNOWN = new Set<AdvisoryEvent['type']>(['detection', 'analysis-not-planned']);
const NO_FIX = new Set<AdvisoryEvent['type']>([
  'true-positive-determination',
  'pending-upstream-fix',
  'fix-not-planned',
]);

function rangeOf(latest: AdvisoryEvent): Record<string, unknown> | undefined {
  if (latest.type === 'fixed') {
    return { type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: latest.data['fixed-version'] }] };
  }
  if (latest.type === 'false-positive-determination') {
    return {
      type: 'ECOSYSTEM',
      events: [{ introduced: '0' }, { fixed: '0' }],
      database_specific: { false_positive: true },
    };
  }
  if (NO_FIX.has(latest.type)) return { type: 'ECOSYSTEM', events: [{ introduced: '0' }] };
  return undefined;
}

/** The last note of the advisory's events, if any: what the team wrote. */
function lastNote(advisory: Advisory): string | undefined {
  for (const event of [...advisory.events].reverse()) {
    const note = (event.data as { note?: string } | undefined)?.note;
    if (note) return note;
  }
  return undefined;
}

export function advisoryToOsv(
  doc: AdvisoryDocument,
  advisory: Advisory,
  target: OsvTarget,
): Record<string, unknown> {
  const latest = latestEvent(advisory);
  const times = advisory.events.map((e) => Date.parse(e.timestamp));
  const record: Record<string, unknown> = {
    schema_version: OSV_SCHEMA_VERSION,
    id: advisory.id,
    modified: utc(advisory.events[times.indexOf(Math.max(...times))]!.timestamp),
    published: utc(advisory.events[times.indexOf(Math.min(...times))]!.timestamp),
  };
  if (latest.type === 'withdrawn') record.withdrawn = utc(latest.timestamp);
  if (advisory.aliases?.length) record.upstream = [...advisory.aliases];
  const note = lastNote(advisory);
  if (note) record.details = note;
  // Under investigation or withdrawn: no claim about any version, so no affected package.
  const range = latest.type === 'withdrawn' || FIX_UNKNOWN.has(latest.type) ? undefined : rangeOf(latest);
  if (range) {
    record.affected = [
      {
        package: {
          ecosystem: target.ecosystem,
          name: doc.package,
          purl: `pkg:apk/${target.purlNamespace}/${encodeURIComponent(doc.package.toLowerCase())}`,
        },
        ranges: [range],
      },
    ];
  }
  record.database_specific = { state: latest.type };
  return record;
}

/** Every advisory of every document, by id: a repository's export. */
export function osvRecords(
  docs: Iterable<AdvisoryDocument>,
  target: OsvTarget,
): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const doc of docs)
    for (const advisory of doc.advisories) out.push(advisoryToOsv(doc, advisory, target));
  return out.sort((a, b) => (String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0));
}
