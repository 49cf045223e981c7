import type { KeyObject } from 'node:crypto';
import { type Bundle, bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { type Signer, toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { AppError } from '../errors.ts';
import { IN_TOTO_PAYLOAD_TYPE } from './publish-statement.ts';

/**
 * Verifies a publisher's Sigstore bundle against the signers a repo trusts:
 * public keys, and keyless identities (certificate SAN + OIDC issuer) under a
 * Sigstore trusted root. Everything runs offline: the trusted root is a file,
 * and Rekor/CT/TSA evidence is checked from what the bundle carries.
 */

export interface IdentityRule {
  /** The certificate's SAN exactly (e.g. a GitHub workflow URI at a ref). */
  subjectAlternativeName?: string;
  /** Or a regular expression the whole SAN must match; reef anchors it. */
  subjectAlternativeNameRegex?: string;
  /** The OIDC issuer, exactly (Fulcio's issuer extension). */
  issuer: string;
}

export interface Thresholds {
  /** Verified transparency-log entries required. */
  tlog: number;
  /** Verified signed certificate timestamps (CT log) required; keyless only. */
  ctlog: number;
  /** Verified timestamps (Rekor integrated time or RFC 3161) required. */
  timestamp: number;
}

export interface SignerPolicy {
  keys: Array<{ name: string; key: KeyObject }>;
  identities: IdentityRule[];
  /** Needed for identities, and for key bundles that carry Rekor or TSA evidence. */
  trustedRoot: TrustedRoot | undefined;
  /** For keyless identities. Never below 1 timestamp: the chain is only checked against one. */
  identityThresholds: Thresholds;
  /** For key-signed bundles; ctlog does not apply. */
  keyThresholds: Omit<Thresholds, 'ctlog'>;
}

export type SignerIdentity =
  | { kind: 'key'; key: string }
  | {
      kind: 'identity';
      subjectAlternativeName: string;
      issuer: string;
      /** Fulcio's source-repository extensions, when the certificate has them. */
      sourceRepository?: string;
      sourceCommit?: string;
    };

export type SignatureVerdict =
  | { verified: true; signer: SignerIdentity }
  | { verified: false; reason: string };

/** The largest bundle reef reads: real ones are 5-20 KB. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;

const EMPTY_ROOT = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [],
  certificateAuthorities: [],
  ctlogs: [],
  timestampAuthorities: [],
};

/** A parsed bundle whose content is a DSSE envelope carrying an in-toto statement. */
export interface DsseBundle {
  bundle: Bundle;
  payload: Buffer;
}

/** Parses a Sigstore bundle (v0.1-v0.3); throws PROVENANCE_INVALID saying what is wrong. */
export function parseDsseBundle(bytes: Buffer): DsseBundle {
  if (bytes.length > MAX_BUNDLE_BYTES) {
    throw new AppError(
      'PROVENANCE_TOO_LARGE',
      `the provenance bundle is larger than ${MAX_BUNDLE_BYTES} bytes`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new AppError(
      'PROVENANCE_INVALID',
      'the provenance is not JSON; send a Sigstore bundle (.sigstore.json) or a melange .attest.tar.gz',
    );
  }
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (err) {
    throw new AppError(
      'PROVENANCE_INVALID',
      `the provenance is not a Sigstore bundle (${(err as Error).message}); legacy cosign bundles are not accepted, use --new-bundle-format`,
      { cause: err },
    );
  }
  if (bundle.content.$case !== 'dsseEnvelope') {
    throw new AppError(
      'PROVENANCE_INVALID',
      'the bundle signs a message, not an attestation; send a DSSE bundle holding an in-toto statement (cosign attest-blob, actions/attest-build-provenance)',
    );
  }
  const envelope = bundle.content.dsseEnvelope;
  // SECURITY: the verifier checks only the envelope signature; the payload type is ours to check.
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new AppError(
      'PROVENANCE_INVALID',
      `the DSSE payload type is '${envelope.payloadType.slice(0, 100)}'; expected ${IN_TOTO_PAYLOAD_TYPE}`,
    );
  }
  return { bundle, payload: envelope.payload };
}

/** Reads a trusted_root.json (protobuf JSON); throws CONFIG_INVALID naming the file. */
export function parseTrustedRoot(json: unknown, origin: string): TrustedRoot {
  try {
    const root = TrustedRoot.fromJSON(json);
    // fromJSON is lenient; a root with no authority at all is a mistake, not a policy.
    if (root.certificateAuthorities.length + root.tlogs.length + root.timestampAuthorities.length === 0) {
      throw new Error('it lists no certificate authority, transparency log or timestamp authority');
    }
    return root;
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      `trusted root ${origin} is not a Sigstore trusted_root.json: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * SECURITY: @sigstore/verify matches the SAN with an unanchored regex
 * (sigstore-js packages/verify/src/policy.ts).
 */
export function sanPattern(rule: IdentityRule): string {
  if (rule.subjectAlternativeName !== undefined) return `^${escapeRegex(rule.subjectAlternativeName)}$`;
  return `^(?:${rule.subjectAlternativeNameRegex ?? ''})$`;
}

const describeRule = (rule: IdentityRule): string =>
  `${rule.subjectAlternativeName ?? `/${rule.subjectAlternativeNameRegex}/`} from ${rule.issuer}`;

// Fulcio v2 extensions, DER UTF8String values: the OID policy of sigstore-js
// (packages/verify/src/policy.ts) compares raw bytes, so they are decoded here.
const OID_SOURCE_REPOSITORY_URI = '1.3.6.1.4.1.57264.1.12';
const OID_SOURCE_REPOSITORY_DIGEST = '1.3.6.1.4.1.57264.1.13';

function derUtf8(value: Buffer): string | undefined {
  if (value[0] !== 0x0c || value.length < 2) return undefined;
  let len = value[1]!;
  let offset = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 2 || value.length < 2 + n) return undefined;
    len = n === 1 ? value[2]! : value.readUInt16BE(2);
    offset = 2 + n;
  }
  if (offset + len !== value.length) return undefined;
  return value.subarray(offset).toString('utf8');
}

function certificateExtension(signer: Signer, oid: string): string | undefined {
  const found = signer.identity?.oids?.find((o) => o.oid?.id.join('.') === oid);
  return found ? derUtf8(Buffer.from(found.value)) : undefined;
}

/** Built once per policy; `verify` may run for every upload. */
export class BundleVerifier {
  private readonly keyVerifiers: Array<{ name: string; verifier: Verifier }>;
  private readonly identityVerifier: Verifier | undefined;

  constructor(private readonly policy: SignerPolicy) {
    const root = policy.trustedRoot ?? TrustedRoot.fromJSON(EMPTY_ROOT);
    this.keyVerifiers = policy.keys.map(({ name, key }) => {
      // SECURITY: the bundle's key hint is attacker-controlled; always answer with the configured key.
      const material = toTrustMaterial(root, () => ({ publicKey: key, validFor: () => true }));
      // A key policy must not be satisfiable by any certificate the root's CAs issued (gotcha 6).
      material.certificateAuthorities = [];
      return {
        name,
        verifier: new Verifier(material, {
          tlogThreshold: policy.keyThresholds.tlog,
          ctlogThreshold: 0,
          timestampThreshold: policy.keyThresholds.timestamp,
        }),
      };
    });
    this.identityVerifier =
      policy.identities.length > 0 && policy.trustedRoot
        ? new Verifier(toTrustMaterial(policy.trustedRoot), {
            tlogThreshold: policy.identityThresholds.tlog,
            ctlogThreshold: policy.identityThresholds.ctlog,
            timestampThreshold: policy.identityThresholds.timestamp,
          })
        : undefined;
  }

  get hasSigners(): boolean {
    return this.keyVerifiers.length > 0 || this.identityVerifier !== undefined;
  }

  /** `artifact` is needed only for message-signature bundles; DSSE carries its payload. */
  verify(bundle: Bundle, artifact?: Buffer): SignatureVerdict {
    if (!this.hasSigners)
      return {
        verified: false,
        reason: 'the repository trusts no signer (no keys or identities in its provenance policy)',
      };
    const entity = toSignedEntity(bundle, artifact);
    const material = bundle.verificationMaterial.content.$case;
    const reasons: string[] = [];
    if (material === 'publicKey') {
      if (this.keyVerifiers.length === 0)
        reasons.push('the bundle is signed with a key, and the policy trusts no key');
      for (const { name, verifier } of this.keyVerifiers) {
        try {
          verifier.verify(entity);
          return { verified: true, signer: { kind: 'key', key: name } };
        } catch (err) {
          reasons.push(`key ${name}: ${errorText(err)}`);
        }
      }
    } else {
      if (!this.identityVerifier)
        reasons.push('the bundle is signed by a certificate, and the policy trusts no identity');
      for (const rule of this.identityVerifier ? this.policy.identities : []) {
        try {
          const signer = this.identityVerifier!.verify(entity, {
            subjectAlternativeName: sanPattern(rule),
            extensions: { issuer: rule.issuer },
          });
          const identity: SignerIdentity = {
            kind: 'identity',
            subjectAlternativeName: signer.identity?.subjectAlternativeName ?? '',
            issuer: signer.identity?.extensions?.issuer ?? rule.issuer,
          };
          const repository = certificateExtension(signer, OID_SOURCE_REPOSITORY_URI);
          const commit = certificateExtension(signer, OID_SOURCE_REPOSITORY_DIGEST);
          if (repository) identity.sourceRepository = repository;
          if (commit) identity.sourceCommit = commit;
          return { verified: true, signer: identity };
        } catch (err) {
          reasons.push(`identity ${describeRule(rule)}: ${errorText(err)}`);
        }
      }
    }
    return { verified: false, reason: reasons.join('; ') };
  }
}

/** @sigstore/verify errors carry a code; anything else (a TypeError on odd input) still fails closed. */
function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const message = (e.message ?? String(err)).slice(0, 300);
  return e.code ? `${e.code}: ${message}` : message;
}
