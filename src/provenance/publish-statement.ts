import { createPublicKey, type KeyObject, sign } from 'node:crypto';
import { bundleToJSON } from '@sigstore/bundle';
import { DSSEBundleBuilder, type Signer } from '@sigstore/sign';

/**
 * reef's own record of a publish (issue 6): an in-toto Statement v1 whose
 * subject is the .apk (its SHA-256) and whose predicate says who published
 * what, where and when, signed with reef's attestation key (ECDSA P-256) as
 * a Sigstore bundle (DSSE). Key-signed, no Fulcio or Rekor: it verifies offline.
 */

export const IN_TOTO_STATEMENT = 'https://in-toto.io/Statement/v1';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const PUBLISH_PREDICATE = 'https://reef.dev/attestation/publish/v1';

export interface PublishRecord {
  filename: string;
  sha256: string;
  repo: string;
  libc: string;
  arch: string;
  name: string;
  version: string;
  /** Index `C:` and datahash, so the record also binds what apk checks. */
  checksum: string;
  datahash: string;
  publishedBy: { tokenId: number | null; tokenName: string };
  publishedAt: Date;
  origin: string;
  commit: string;
  url: string;
  sbom: { sha256: string; source: string; format: string };
  /** The publisher's provenance, once reef verifies it (issue 6); null: none sent. */
  publisherProvenance: Record<string, unknown> | null;
}

export function publishStatement(r: PublishRecord): Record<string, unknown> {
  return {
    _type: IN_TOTO_STATEMENT,
    subject: [{ name: r.filename, digest: { sha256: r.sha256 } }],
    predicateType: PUBLISH_PREDICATE,
    predicate: {
      repository: { repo: r.repo, libc: r.libc, arch: r.arch },
      package: { name: r.name, version: r.version, checksum: r.checksum, datahash: r.datahash },
      publishedBy: r.publishedBy,
      publishedAt: r.publishedAt.toISOString(),
      source: { origin: r.origin, commit: r.commit, url: r.url },
      sbom: r.sbom,
      publisherProvenance: r.publisherProvenance,
    },
  };
}

export interface AttestationKey {
  /** File name under /keys/, e.g. `reef-attestation-1a2b3c4d.pem`. */
  keyName: string;
  privateKey: KeyObject;
  publicPem: string;
}

/** A Sigstore bundle (v0.3, DSSE) of the statement, signed by `key`. */
export async function signStatement(
  statement: Record<string, unknown>,
  key: AttestationKey,
): Promise<Buffer> {
  const signer: Signer = {
    sign: async (data) => ({
      // ECDSA P-256 over SHA-256 of the DSSE pre-authentication encoding, DER signature.
      signature: sign('sha256', data, key.privateKey),
      key: { $case: 'publicKey', publicKey: key.publicPem, hint: key.keyName },
    }),
  };
  const bundle = await new DSSEBundleBuilder({ signer, witnesses: [] }).create({
    data: Buffer.from(JSON.stringify(statement)),
    type: IN_TOTO_PAYLOAD_TYPE,
  });
  return Buffer.from(`${JSON.stringify(bundleToJSON(bundle), null, 2)}\n`);
}

export function publicPemOf(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
}
