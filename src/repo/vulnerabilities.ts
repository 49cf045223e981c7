import { PackageURL } from 'packageurl-js';
import { type Advisory, latestEvent } from '../advisory/document.ts';
import { osvTarget } from '../advisory/osv.ts';
import {
  evaluate,
  isApkEcosystem,
  OSV_LIMITS,
  type OsvAffected,
  type OsvRange,
  type OsvRecord,
  parseOsvRecord,
  purlKey,
  type Verdict,
} from '../advisory/osv-match.ts';
import { compareVersions } from '../apk/version.ts';
import { AppError } from '../errors.ts';
import type { SbomComponent } from '../sbom/types.ts';
import type { AdvisoryStore } from '../store/advisory-store.ts';
import type { PackageStore, StoredPackage } from '../store/package-store.ts';
import type { ComponentCursor, SbomStore } from '../store/sbom-store.ts';
import type { VulnerabilityStore } from '../store/vulnerability-store.ts';

/**
 * Which packages a vulnerability affects (README, "Which packages does a
 * vulnerability affect?"): OSV records auditors
 * upload, matched against every package's SBOM components by purl and
 * version, and against apk source packages for apk distributions' records;
 * reef's own advisories then say whether a match stands (affected, under
 * investigation) or not (fixed in this version, not affected).
 */

export interface PackageRef {
  repo: string;
  libc: string;
  arch: string;
  name: string;
  version: string;
}

export type MatchState = 'affected' | 'under_investigation' | 'fixed' | 'not_affected';

export interface Match {
  package: PackageRef;
  /** The SBOM component that matched; absent when the package itself did (apk records). */
  component?: { name: string; version?: string; purl?: string };
  record: string;
  ecosystem: string;
  /** The range the version fell in, or `versions` when it is listed. */
  range?: OsvRange;
  versions?: true;
  /** After reef's advisories: `fixed` and `not_affected` are suppressed matches. */
  state: MatchState;
  advisory?: { id: string; event: string; fixedVersion?: string; justification?: string };
}

export interface NotEvaluated {
  package: PackageRef;
  component?: { name: string; version?: string; purl?: string };
  record: string;
  ecosystem: string;
  reason: string;
}

/** A page of `affectedBy`: which query (record × affected entry) and where in it. */
export interface MatchCursor {
  query: number;
  component?: ComponentCursor;
  packageId?: number;
}

const refOf = (p: {
  repo: string;
  libc: string;
  arch: string;
  name: string;
  version: string;
}): PackageRef => ({
  repo: p.repo,
  libc: p.libc,
  arch: p.arch,
  name: p.name,
  version: p.version,
});

const componentRef = (c: SbomComponent) => ({
  name: c.name,
  ...(c.version !== undefined ? { version: c.version } : {}),
  ...(c.purl !== undefined ? { purl: c.purl } : {}),
});

/** A component's version: its own, else its purl's. */
function componentVersion(c: Pick<SbomComponent, 'version' | 'purl'>): string | undefined {
  if (c.version) return c.version;
  try {
    return c.purl ? (PackageURL.fromString(c.purl).version ?? undefined) : undefined;
  } catch {
    return undefined;
  }
}

function versionlessPurl(purl: string | undefined): string | undefined {
  if (!purl) return undefined;
  try {
    const p = PackageURL.fromString(purl);
    return new PackageURL(p.type, p.namespace, p.name, undefined, undefined, undefined).toString();
  } catch {
    return undefined;
  }
}

export class VulnerabilityService {
  constructor(
    private readonly records: VulnerabilityStore,
    private readonly packages: PackageStore,
    private readonly sboms: SbomStore,
    private readonly advisories: AdvisoryStore,
  ) {}

  /** Stores uploaded OSV records (one, or an array), all or none. */
  async upload(body: unknown): Promise<{ received: number; stored: number; older: number }> {
    const list = Array.isArray(body) ? body : [body];
    if (list.length === 0) throw new AppError('ADVISORY_INVALID', 'send an OSV record, or an array of them');
    if (list.length > OSV_LIMITS.records) {
      throw new AppError(
        'ADVISORY_TOO_LARGE',
        `at most ${OSV_LIMITS.records} records per upload; split the file`,
      );
    }
    const records = list.map((r, i) => parseOsvRecord(r, Array.isArray(body) ? `[${i}]` : 'record'));
    return { received: records.length, ...(await this.records.save(records)) };
  }

  /** The repositories among `readable` whose distro is `ecosystem` (apk records apply to those). */
  private async reposOf(ecosystem: string, readable: readonly string[]): Promise<string[]> {
    const repos: string[] = [];
    for (const name of readable) {
      const repo = await this.packages.getRepo(name);
      try {
        if (osvTarget(name, repo?.distro).ecosystem === ecosystem) repos.push(name);
      } catch {
        // No OSV ecosystem for this repository: apk records do not apply to it.
      }
    }
    return repos;
  }

  /**
   * What reef's advisories say of a match in `pkg`: the advisory of its source
   * package that names the vulnerability (by any of `names`), if any.
   */
  private async stateOf(
    pkg: StoredPackage | (PackageRef & { origin?: string }),
    names: Set<string>,
    docs: Map<string, Advisory[]>,
  ): Promise<Pick<Match, 'state' | 'advisory'>> {
    const origin = ('origin' in pkg && pkg.origin) || pkg.name;
    const key = `${pkg.repo}\n${origin}`;
    let list = docs.get(key);
    if (!list) {
      list = (await this.advisories.get(pkg.repo, origin))?.advisories ?? [];
      docs.set(key, list);
    }
    const advisory = list.find((a) => names.has(a.id) || a.aliases?.some((x) => names.has(x)));
    if (!advisory) return { state: 'affected' };
    const latest = latestEvent(advisory);
    const base = { id: advisory.id, event: latest.type };
    switch (latest.type) {
      case 'fixed': {
        const fixedVersion = latest.data['fixed-version'];
        return {
          state: compareVersions(pkg.version, fixedVersion) >= 0 ? 'fixed' : 'affected',
          advisory: { ...base, fixedVersion },
        };
      }
      case 'false-positive-determination':
        return { state: 'not_affected', advisory: { ...base, justification: latest.data.type } };
      case 'detection':
      case 'analysis-not-planned':
        return { state: 'under_investigation', advisory: base };
      default:
        return { state: 'affected', advisory: base };
    }
  }

  /** Files a verdict about `pkg` (or one of its components) under matches or not-evaluated. */
  private async record(
    out: { matches: Match[]; notEvaluated: NotEvaluated[] },
    verdict: Verdict,
    found: { record: OsvRecord; affected: OsvAffected; names: Set<string>; docs: Map<string, Advisory[]> },
    pkg: PackageRef & { origin?: string },
    component?: SbomComponent,
  ): Promise<void> {
    if (verdict.result === 'unaffected') return;
    const where = {
      package: refOf(pkg),
      ...(component ? { component: componentRef(component) } : {}),
      record: found.record.id,
      ecosystem: found.affected.package.ecosystem,
    };
    if (verdict.result === 'not_evaluated') {
      out.notEvaluated.push({ ...where, reason: verdict.reason });
      return;
    }
    out.matches.push({
      ...where,
      ...(verdict.range ? { range: verdict.range } : {}),
      ...(verdict.versions ? { versions: true as const } : {}),
      ...(await this.stateOf(pkg, found.names, found.docs)),
    });
  }

  /**
   * The packages `name` (an OSV id, CVE or GHSA) affects, in `readable`
   * repositories, one page at a time: matches and the components reef could
   * not evaluate. Withdrawn records are listed and match nothing.
   */
  async affectedBy(
    name: string,
    readable: readonly string[],
    page: { limit: number; after?: MatchCursor; maxRows?: number },
  ): Promise<{
    records: string[];
    withdrawn: string[];
    matches: Match[];
    notEvaluated: NotEvaluated[];
    next: MatchCursor | undefined;
  }> {
    const all = await this.records.byName(name);
    if (all.length === 0) {
      throw new AppError('ADVISORY_NOT_FOUND', `no uploaded OSV record is known as ${name.slice(0, 200)}`);
    }
    const live = all.filter((r) => !r.withdrawn);
    const names = new Set([
      name,
      ...live.flatMap((r) => [r.id, ...(r.aliases ?? []), ...(r.upstream ?? [])]),
    ]);
    const queries = live.flatMap((record) =>
      (record.affected ?? []).map((affected) => ({ record, affected })),
    );
    const out = { matches: [] as Match[], notEvaluated: [] as NotEvaluated[] };
    const docs = new Map<string, Advisory[]>();
    const result = (next: MatchCursor | undefined) => ({
      records: live.map((r) => r.id),
      withdrawn: all.filter((r) => r.withdrawn).map((r) => r.id),
      ...out,
      next,
    });
    let budget = page.maxRows ?? 50_000;
    for (let q = page.after?.query ?? 0; q < queries.length; q++) {
      const { record, affected } = queries[q]!;
      const found = { record, affected, names, docs };
      const resume = page.after?.query === q ? page.after : undefined;
      const room = page.limit - out.matches.length - out.notEvaluated.length;
      if (room <= 0 || budget <= 0) return result({ query: q, ...resume });
      if (isApkEcosystem(affected.package.ecosystem)) {
        const repos = await this.reposOf(affected.package.ecosystem, readable);
        let after = resume?.packageId ?? 0;
        for (;;) {
          const batch = await this.packages.byOrigin(affected.package.name, repos, 500, after);
          for (const p of batch) {
            budget--;
            await this.record(out, evaluate(affected, p.version), found, p);
            after = p.id;
            if (out.matches.length + out.notEvaluated.length >= page.limit || budget <= 0) {
              return result({ query: q, packageId: after });
            }
          }
          if (batch.length < 500) break;
        }
        continue;
      }
      const key = purlKey(affected);
      if (!key) continue;
      const page1 = await this.sboms.findComponents(
        { purl: key },
        {
          repos: readable,
          limit: room,
          after: resume?.component,
          maxRows: budget,
          accept: (c) => evaluate(affected, componentVersion(c)).result !== 'unaffected',
        },
      );
      budget -= page1.hits.length;
      for (const hit of page1.hits) {
        await this.record(
          out,
          evaluate(affected, componentVersion(hit.component)),
          found,
          hit.package,
          hit.component,
        );
      }
      if (page1.next) return result({ query: q, component: page1.next });
    }
    return result(undefined);
  }

  /** The reverse view: every uploaded vulnerability one package's SBOM or source package falls under. */
  async forPackage(pkg: StoredPackage): Promise<{ matches: Match[]; notEvaluated: NotEvaluated[] }> {
    const components = await this.sboms.componentsOf(pkg.id);
    const byKey = new Map<string, SbomComponent[]>();
    for (const c of components) {
      const key = versionlessPurl(c.purl);
      if (!key || key.startsWith('pkg:apk/')) continue;
      byKey.set(key, [...(byKey.get(key) ?? []), c]);
    }
    const origin = pkg.origin || pkg.name;
    const distro = (await this.packages.getRepo(pkg.repo))?.distro;
    const ecosystem = (() => {
      try {
        return osvTarget(pkg.repo, distro).ecosystem;
      } catch {
        return undefined;
      }
    })();
    const out = { matches: [] as Match[], notEvaluated: [] as NotEvaluated[] };
    const docs = new Map<string, Advisory[]>();
    for (const record of await this.records.naming([...byKey.keys()], ecosystem ? [origin] : [])) {
      const names = new Set([record.id, ...(record.aliases ?? []), ...(record.upstream ?? [])]);
      for (const affected of record.affected ?? []) {
        const found = { record, affected, names, docs };
        if (isApkEcosystem(affected.package.ecosystem)) {
          if (affected.package.ecosystem === ecosystem && affected.package.name === origin) {
            await this.record(out, evaluate(affected, pkg.version), found, pkg);
          }
          continue;
        }
        for (const component of byKey.get(purlKey(affected) ?? '') ?? []) {
          await this.record(out, evaluate(affected, componentVersion(component)), found, pkg, component);
        }
      }
    }
    return out;
  }
}
