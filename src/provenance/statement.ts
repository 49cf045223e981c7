import { AppError } from '../errors.ts';
import { IN_TOTO_STATEMENT } from './publish-statement.ts';

/**
 * Publisher provenance statements: an in-toto Statement v1 with a SLSA
 * provenance v1 predicate, sent as a Sigstore bundle (DSSE) or as melange's
 * unsigned `.attest.tar.gz` (melange pkg/build/package.go). This file reads the
 * statement and binds it to a package; signature checks live in verify-bundle.ts.
 *
 * SECURITY: everything here is attacker-controlled JSON. Reads are bounded and
 * typed; nothing from the statement is trusted before the subject binds it to
 * the package and a signature binds it to a signer.
 */

export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';

export interface StatementSubject {
  name: string;
  digest: Record<string, string>;
}

export interface ProvenanceStatement {
  subject: StatementSubject[];
  predicateType: string;
  predicate: Record<string, unknown>;
}

/** What an auditor wants from a SLSA v1 predicate, each when present. */
export interface PredicateSummary {
  builderId?: string;
  buildType?: string;
  sourceRepository?: string;
  sourceCommit?: string;
  invocationId?: string;
}

/** The package a statement must name: its file's SHA-256, or (melange) its datahash. */
export interface SubjectTarget {
  filename: string;
  sha256: string;
  datahash: string;
}

export type SubjectBinding = 'sha256' | 'datahash';

const MAX_SUBJECTS = 1024;

function invalid(message: string): AppError {
  return new AppError('PROVENANCE_INVALID', message);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses a statement payload with the expected predicate type (a publisher's
 * SLSA provenance, or reef's own publish record); throws PROVENANCE_INVALID
 * saying what is wrong.
 */
export function parseStatement(payload: Buffer, predicateType = SLSA_PROVENANCE_V1): ProvenanceStatement {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    throw invalid('the attestation payload is not JSON; expected an in-toto Statement v1');
  }
  if (!isObject(json)) throw invalid('the attestation payload is not a JSON object');
  if (json._type !== IN_TOTO_STATEMENT) {
    throw invalid(`the statement's _type is ${JSON.stringify(json._type)}; expected ${IN_TOTO_STATEMENT}`);
  }
  if (json.predicateType !== predicateType) {
    throw invalid(
      `the statement's predicateType is ${JSON.stringify(json.predicateType)}; expected ${predicateType}`,
    );
  }
  if (!isObject(json.predicate)) throw invalid('the statement has no predicate object');
  const subjects = json.subject;
  if (!Array.isArray(subjects) || subjects.length === 0 || subjects.length > MAX_SUBJECTS) {
    throw invalid(`the statement needs 1 to ${MAX_SUBJECTS} subjects`);
  }
  const subject: StatementSubject[] = [];
  for (const s of subjects) {
    if (!isObject(s) || !isObject(s.digest)) throw invalid('a statement subject has no digest object');
    const digest: Record<string, string> = {};
    for (const [alg, value] of Object.entries(s.digest)) {
      if (typeof value === 'string') digest[alg] = value.toLowerCase();
    }
    subject.push({ name: typeof s.name === 'string' ? s.name : '', digest });
  }
  return { subject, predicateType: json.predicateType, predicate: json.predicate };
}

/**
 * Which digest ties the statement to the package: the whole file's SHA-256,
 * or melange's convention of the data member's (datahash). Throws
 * PROVENANCE_SUBJECT_MISMATCH naming the digests that did not match.
 */
export function bindSubject(statement: ProvenanceStatement, target: SubjectTarget): SubjectBinding {
  const digests = statement.subject.map((s) => s.digest.sha256).filter((d) => d !== undefined);
  if (digests.includes(target.sha256)) return 'sha256';
  if (digests.includes(target.datahash)) return 'datahash';
  const named = statement.subject
    .slice(0, 5)
    .map((s) => `${s.name.slice(0, 100) || '(unnamed)'} sha256:${(s.digest.sha256 ?? 'none').slice(0, 64)}`)
    .join(', ');
  throw new AppError(
    'PROVENANCE_SUBJECT_MISMATCH',
    `the provenance is about ${named}, not ${target.filename}: expected sha256 ${target.sha256} (the .apk file) or ${target.datahash} (its datahash)`,
    { details: { subjects: digests.slice(0, 5), sha256: target.sha256, datahash: target.datahash } },
  );
}

const str = (v: unknown): string | undefined =>
  typeof v === 'string' && v.length > 0 ? v.slice(0, 2048) : undefined;

/** Reads builder, build type, source repository and commit from a SLSA v1 predicate. */
export function summarizePredicate(predicate: Record<string, unknown>): PredicateSummary {
  const def = isObject(predicate.buildDefinition) ? predicate.buildDefinition : {};
  const run = isObject(predicate.runDetails) ? predicate.runDetails : {};
  const builder = isObject(run.builder) ? run.builder : {};
  const metadata = isObject(run.metadata) ? run.metadata : {};
  const external = isObject(def.externalParameters) ? def.externalParameters : {};
  const workflow = isObject(external.workflow) ? external.workflow : {};
  const deps = Array.isArray(def.resolvedDependencies) ? def.resolvedDependencies.filter(isObject) : [];
  // GitHub's generator names the repository in externalParameters.workflow and
  // the commit in the first resolved dependency (a git+https URI with a gitCommit digest).
  const source = deps.find((d) => typeof d.uri === 'string' && d.uri.startsWith('git+')) ?? deps[0];
  const sourceDigest = source && isObject(source.digest) ? source.digest : {};
  const summary: PredicateSummary = {
    builderId: str(builder.id),
    buildType: str(def.buildType),
    sourceRepository: str(workflow.repository) ?? gitRepository(str(source?.uri)),
    sourceCommit: str(sourceDigest.gitCommit) ?? str(sourceDigest.sha1),
    invocationId: str(metadata.invocationId),
  };
  return Object.fromEntries(Object.entries(summary).filter(([, v]) => v !== undefined));
}

/** `git+https://github.com/o/r@refs/heads/main` → `https://github.com/o/r`. */
function gitRepository(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  return uri.replace(/^git\+/, '').replace(/@[^/@]*$/, '');
}
