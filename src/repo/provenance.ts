import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, resolve } from 'node:path';
import type { ApkPackage } from '../apk/read-apk.ts';
import {
  loadPublicKey,
  type PublicKeyEntry,
  publicKeyFingerprint,
  verifySignatures,
} from '../apk/signature.ts';
import type { ProvenancePolicyConfig } from '../config.ts';
import { AppError } from '../errors.ts';
import { isGzip, readMelangeAttestation } from '../provenance/melange-attestation.ts';
import {
  bindSubject,
  type PredicateSummary,
  parseStatement,
  type SubjectBinding,
  type SubjectTarget,
  summarizePredicate,
} from '../provenance/statement.ts';
import {
  BundleVerifier,
  parseDsseBundle,
  parseTrustedRoot,
  type SignerIdentity,
} from '../provenance/verify-bundle.ts';

/**
 * Publisher provenance under each repository's policy (issue 6): read what the
 * publisher sent, bind it to the package, verify its signer, and decide
 * whether the publish may go on. Policies are built once, at start, so a bad
 * key file or trusted root stops the server with a message instead of failing
 * uploads later.
 */

export type ProvenanceMode = 'off' | 'record' | 'require';
export type ProvenanceFormat = 'sigstore-bundle' | 'melange-attestation';

/** What reef stores and shows about a publisher's provenance. */
export interface ProvenanceResult {
  format: ProvenanceFormat;
  /** The repository's policy mode when it was checked. */
  policy: ProvenanceMode;
  verified: boolean;
  /** Which digest the statement's subject matched. */
  subjectDigest: SubjectBinding;
  signer?: SignerIdentity | { kind: 'apk-key'; key: string };
  predicateType: string;
  predicate: PredicateSummary;
  /** Why it did not verify. */
  reason?: string;
  /** Set when an admin's re-evaluation (`reef provenance reverify`) verified what was stored unverified. */
  reevaluated?: { at: string; previousReason?: string };
}

export interface PublisherProvenance {
  bytes: Buffer;
  sha256: string;
  result: ProvenanceResult;
}

interface RepoPolicy {
  mode: ProvenanceMode;
  verifier: BundleVerifier;
  requirePackageSignature: boolean;
  packageKeys: PublicKeyEntry[];
}

const require = createRequire(import.meta.url);

/** The public-good Sigstore trusted root, as pinned in @sigstore/tuf's seeds (sigstore-js packages/tuf/seeds.json). */
function publicGoodTrustedRoot(): unknown {
  const seeds = require('@sigstore/tuf/seeds.json') as Record<string, { targets: Record<string, string> }>;
  const target = seeds['https://tuf-repo-cdn.sigstore.dev']?.targets['trusted_root.json'];
  if (!target) throw new AppError('CONFIG_INVALID', '@sigstore/tuf has no pinned public-good trusted root');
  return JSON.parse(Buffer.from(target, 'base64').toString('utf8'));
}

function readConfigFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `cannot read ${what} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function loadSignerKey(value: string, configDir: string): { name: string; key: KeyObject } {
  const inline = value.trimStart().startsWith('-----BEGIN');
  const path = inline ? '' : resolve(configDir, value);
  const pem = inline ? value : readConfigFile(path, 'publisher key');
  try {
    const key = createPublicKey(pem);
    return { name: inline ? `key-${publicKeyFingerprint(key)}` : basename(path), key };
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      `publisher key ${inline ? '(inline)' : path} is not a PEM public key`,
      {
        cause: err,
      },
    );
  }
}

function buildPolicy(config: ProvenancePolicyConfig, configDir: string): RepoPolicy {
  let trustedRoot: ReturnType<typeof parseTrustedRoot> | undefined;
  if (config.trustedRoot === 'public-good') {
    trustedRoot = parseTrustedRoot(publicGoodTrustedRoot(), 'public-good');
  } else if (config.trustedRoot !== undefined) {
    const path = resolve(configDir, config.trustedRoot);
    let json: unknown;
    try {
      json = JSON.parse(readConfigFile(path, 'trusted root').toString('utf8'));
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('CONFIG_INVALID', `trusted root ${path} is not JSON`, { cause: err });
    }
    trustedRoot = parseTrustedRoot(json, path);
  }
  return {
    mode: config.mode,
    verifier: new BundleVerifier({
      keys: config.keys.map((k) => loadSignerKey(k, configDir)),
      identities: config.identities,
      trustedRoot,
      identityThresholds: {
        tlog: config.tlogThreshold,
        ctlog: config.ctlogThreshold,
        timestamp: config.timestampThreshold,
      },
      keyThresholds: { tlog: config.keyTlogThreshold, timestamp: config.keyTimestampThreshold },
    }),
    requirePackageSignature: config.requirePackageSignature,
    packageKeys: config.packageKeys.map((k) => {
      const path = resolve(configDir, k);
      try {
        return loadPublicKey(basename(path), readConfigFile(path, 'package key'));
      } catch (err) {
        if (isConfigError(err)) throw err;
        throw new AppError('CONFIG_INVALID', `package key ${path} is not a PEM RSA public key`, {
          cause: err,
        });
      }
    }),
  };
}

type Verdict =
  | { verified: true; signer: NonNullable<ProvenanceResult['signer']> }
  | { verified: false; reason: string };

/** A provenance document read far enough to know its statement, with its signature check deferred. */
interface ReadProvenance {
  format: ProvenanceFormat;
  payload: Buffer;
  verify(): Verdict;
}

function readBundle(bytes: Buffer, policy: RepoPolicy): ReadProvenance {
  const { bundle, payload } = parseDsseBundle(bytes);
  return { format: 'sigstore-bundle', payload, verify: () => policy.verifier.verify(bundle) };
}

async function readMelange(
  bytes: Buffer,
  target: { name: string; version: string },
  policy: RepoPolicy,
): Promise<ReadProvenance> {
  const attestation = await readMelangeAttestation(bytes);
  const expected = `${target.name}-${target.version}.attestation`;
  if (attestation.entryName !== expected) {
    throw new AppError(
      'PROVENANCE_SUBJECT_MISMATCH',
      `the melange attestation holds ${attestation.entryName}; expected ${expected}`,
    );
  }
  return {
    format: 'melange-attestation',
    payload: attestation.statement,
    // melange's statement is unsigned; only an apk-style signature by a package key vouches for it.
    verify: () => {
      const check = verifySignatures(attestation.signedMember, attestation.signatures, policy.packageKeys);
      if (check.verifiedBy) return { verified: true, signer: { kind: 'apk-key', key: check.verifiedBy } };
      return {
        verified: false,
        reason:
          attestation.signatures.length === 0
            ? 'the melange attestation is unsigned'
            : `no signature verifies with the repository's package keys (${check.checks.map((c) => `${c.keyName}: ${c.verdict}`).join(', ')})`,
      };
    },
  };
}

const isConfigError = (err: unknown): boolean => err instanceof AppError && err.code === 'CONFIG_INVALID';

const DEFAULT_POLICY: ProvenancePolicyConfig = {
  mode: 'record',
  keys: [],
  identities: [],
  tlogThreshold: 1,
  ctlogThreshold: 1,
  timestampThreshold: 1,
  keyTlogThreshold: 0,
  keyTimestampThreshold: 0,
  requirePackageSignature: false,
  packageKeys: [],
};

export class ProvenancePolicies {
  private readonly byRepo = new Map<string, RepoPolicy>();
  private readonly fallback: RepoPolicy;

  constructor(policies: Record<string, ProvenancePolicyConfig>, configDir: string) {
    for (const [repo, config] of Object.entries(policies)) {
      if (repo !== '*') this.byRepo.set(repo, buildPolicy(config, configDir));
    }
    this.fallback = buildPolicy(policies['*'] ?? DEFAULT_POLICY, configDir);
  }

  private policyFor(repo: string): RepoPolicy {
    return this.byRepo.get(repo) ?? this.fallback;
  }

  modeOf(repo: string): ProvenanceMode {
    return this.policyFor(repo).mode;
  }

  /** The policy may demand the package's own apk signature by a publisher key (apk2 src/package.c). */
  checkPackageSignature(repo: string, apk: ApkPackage): void {
    const policy = this.policyFor(repo);
    if (!policy.requirePackageSignature) return;
    const result = verifySignatures(apk.controlMember, apk.signatures, policy.packageKeys);
    if (result.verifiedBy) return;
    const seen = result.checks.map((c) => `${c.algorithm}.${c.keyName}: ${c.verdict}`).join(', ');
    throw new AppError(
      'PACKAGE_SIGNATURE_UNVERIFIED',
      `${repo} requires packages signed by one of ${policy.packageKeys.map((k) => k.name).join(', ')}; ${
        seen ? `this package's signatures: ${seen}` : 'this package is unsigned'
      } (sign it with abuild-sign or melange --signing-key)`,
      { details: { checks: result.checks } },
    );
  }

  /**
   * Reads and checks provenance sent for a package. Malformed or about
   * another package: PROVENANCE_INVALID / PROVENANCE_SUBJECT_MISMATCH,
   * whatever the mode. A signature that does not verify is a result, not an error.
   */
  async evaluate(
    repo: string,
    bytes: Buffer,
    target: SubjectTarget & { name: string; version: string },
  ): Promise<PublisherProvenance> {
    const policy = this.policyFor(repo);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const read = isGzip(bytes) ? await readMelange(bytes, target, policy) : readBundle(bytes, policy);
    const statement = parseStatement(read.payload);
    const base = {
      format: read.format,
      policy: policy.mode,
      subjectDigest: bindSubject(statement, target),
      predicateType: statement.predicateType,
      predicate: summarizePredicate(statement.predicate),
    };
    if (policy.mode === 'off') {
      return {
        bytes,
        sha256,
        result: { ...base, verified: false, reason: 'not checked: the provenance policy is off' },
      };
    }
    // Signatures are checked only once the statement is known to be about this package.
    const verdict = read.verify();
    const result: ProvenanceResult = verdict.verified
      ? { ...base, verified: true, signer: verdict.signer }
      : { ...base, verified: false, reason: verdict.reason };
    return { bytes, sha256, result };
  }

  /** Under `require`, a publish needs provenance that verifies. */
  enforce(repo: string, provenance: PublisherProvenance | undefined): void {
    if (this.policyFor(repo).mode !== 'require') return;
    if (!provenance) {
      throw new AppError(
        'PROVENANCE_REQUIRED',
        `${repo} requires provenance: send a Sigstore bundle or melange .attest.tar.gz as multipart field 'provenance' with the package`,
      );
    }
    if (!provenance.result.verified) {
      throw new AppError(
        'PROVENANCE_UNVERIFIED',
        `the provenance does not verify under ${repo}'s policy: ${provenance.result.reason ?? 'unknown reason'}`,
        { details: { reason: provenance.result.reason } },
      );
    }
  }
}
