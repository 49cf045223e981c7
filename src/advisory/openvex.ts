import { PackageURL } from 'packageurl-js';
import { compareVersions } from '../apk/version.ts';
import { type Advisory, type AdvisoryEvent, latestEvent } from './document.ts';

/**
 * One package's vulnerability statements as an OpenVEX v0.2.0 document
 * (openvex/spec, OPENVEX-SPEC.md): a statement per advisory of its source
 * package, about this package's exact purl. The status follows the
 * advisory's latest event and this version: fixed at or below it → `fixed`,
 * above → `affected` with the version to upgrade to; a false positive →
 * `not_affected` with the matching justification; detection or no analysis
 * yet → `under_investigation`; a true positive without a fix → `affected`.
 * Withdrawn advisories say nothing.
 */

export const OPENVEX_CONTEXT = 'https://openvex.dev/ns/v0.2.0';

/** Wolfi's false-positive kinds as OpenVEX justifications; the contested record has none (an impact statement). */
const JUSTIFICATIONS: Record<string, string | undefined> = {
  'component-vulnerability-mismatch': 'component_not_present',
  'vulnerable-code-version-not-used': 'vulnerable_code_not_present',
  'vulnerable-code-not-included-in-package': 'vulnerable_code_not_present',
  'vulnerable-code-not-in-execution-path': 'vulnerable_code_not_in_execute_path',
  'vulnerable-code-cannot-be-controlled-by-adversary': 'vulnerable_code_cannot_be_controlled_by_adversary',
  'inline-mitigations-exist': 'inline_mitigations_already_exist',
  'vulnerability-record-analysis-contested': undefined,
};

/**
 * The package's purl as VEX consumers match it (go-vex: every qualifier on
 * the VEX side must be on the SBOM side too): `arch` only, no `distro`,
 * whose spelling differs between Syft and Trivy.
 */
export function vexProductPurl(namespace: string, name: string, version: string, arch: string): string {
  return new PackageURL('apk', namespace, name, version, { arch }, undefined).toString();
}

const utc = (timestamp: string): string => new Date(timestamp).toISOString().replace('.000Z', 'Z');

/** The name scanners match: the first CVE, else the first alias, else the advisory's own id. */
function vulnerability(advisory: Advisory): { name: string; aliases?: string[] } {
  const ids = [...(advisory.aliases ?? []), advisory.id];
  const name = ids.find((id) => id.startsWith('CVE-')) ?? ids[0]!;
  const aliases = ids.filter((id) => id !== name);
  return aliases.length > 0 ? { name, aliases } : { name };
}

function note(event: AdvisoryEvent): string | undefined {
  return (event.data as { note?: string } | undefined)?.note || undefined;
}

function statusOf(
  latest: AdvisoryEvent,
  pkg: { name: string; version: string },
): Record<string, string> | undefined {
  switch (latest.type) {
    case 'fixed': {
      const fixedIn = latest.data['fixed-version'];
      if (compareVersions(pkg.version, fixedIn) >= 0) return { status: 'fixed' };
      return { status: 'affected', action_statement: `Upgrade ${pkg.name} to ${fixedIn} or later.` };
    }
    case 'false-positive-determination': {
      const justification = JUSTIFICATIONS[latest.data.type];
      const text = note(latest);
      return justification
        ? { status: 'not_affected', justification, ...(text ? { impact_statement: text } : {}) }
        : {
            status: 'not_affected',
            impact_statement: text ?? `The vulnerability record is contested (${latest.data.type}).`,
          };
    }
    case 'detection':
    case 'analysis-not-planned':
      return { status: 'under_investigation' };
    case 'true-positive-determination':
      return { status: 'affected', action_statement: 'No fixed version yet; the advisory will name it.' };
    case 'pending-upstream-fix':
      return { status: 'affected', action_statement: 'No fixed version yet: the fix is pending upstream.' };
    case 'fix-not-planned':
      return { status: 'affected', action_statement: 'No fix is planned for this package.' };
    case 'withdrawn':
      return undefined;
  }
}

export interface PackageVexInput {
  /** The document's IRI: the URL it is served at. */
  id: string;
  author: string;
  /** Grows with every change of the repository's advisories (OpenVEX: bump on any change). */
  version: number;
  package: { name: string; version: string; purl: string };
  advisories: Advisory[];
}

/** The document, or undefined when no advisory says anything about the package. */
export function packageVex(input: PackageVexInput): Record<string, unknown> | undefined {
  const statements: Array<Record<string, unknown>> = [];
  for (const advisory of [...input.advisories].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const latest = latestEvent(advisory);
    const status = statusOf(latest, input.package);
    if (!status) continue;
    const notes = note(latest);
    statements.push({
      vulnerability: vulnerability(advisory),
      timestamp: utc(latest.timestamp),
      products: [{ '@id': input.package.purl }],
      ...status,
      ...(notes && !status.impact_statement ? { status_notes: notes } : {}),
    });
  }
  if (statements.length === 0) return undefined;
  const timestamp = statements
    .map((s) => String(s.timestamp))
    .sort()
    .at(-1)!;
  return {
    '@context': OPENVEX_CONTEXT,
    '@id': input.id,
    author: input.author,
    timestamp,
    version: Math.max(1, input.version),
    tooling: 'reef',
    statements,
  };
}
