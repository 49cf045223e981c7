import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { AppError } from '../errors.ts';

/**
 * apk signatures: RSA PKCS#1 v1.5 over raw gzip-member bytes, stored as tar
 * entries named `.SIGN.<ALG>.<keyname>` (apk2 src/package.c, abuild
 * abuild-sign.in). The client finds the key by exact file name in
 * /etc/apk/keys.
 */

export type SignatureAlgorithm = 'RSA' | 'RSA256' | 'RSA512' | 'DSA';

/** Digest of each algorithm; DSA is obsolete and not verified by reef. */
const DIGESTS: Record<string, 'sha1' | 'sha256' | 'sha512' | undefined> = {
  RSA: 'sha1',
  RSA256: 'sha256',
  RSA512: 'sha512',
};

export interface PublicKeyEntry {
  /** File name as apk looks it up, e.g. `reef-1a2b3c4d.rsa.pub`. */
  name: string;
  key: KeyObject;
}

export interface SignatureEntry {
  algorithm: string;
  keyName: string;
  signature: Buffer;
}

export type SignatureVerdict = 'verified' | 'bad-signature' | 'no-key' | 'unsupported-algorithm';

export interface SignatureCheck {
  algorithm: string;
  keyName: string;
  verdict: SignatureVerdict;
}

export interface VerificationResult {
  /** Name of the first key that verified a signature, if any. */
  verifiedBy: string | undefined;
  checks: SignatureCheck[];
}

export function parseSignatureName(entryName: string): { algorithm: string; keyName: string } {
  const rest = entryName.slice('.SIGN.'.length);
  const dot = rest.indexOf('.');
  if (!entryName.startsWith('.SIGN.') || dot <= 0 || dot === rest.length - 1) {
    throw new AppError(
      'APK_SIGNATURE_MEMBER_INVALID',
      `signature entry '${entryName.slice(0, 200)}' is not .SIGN.<ALG>.<key>`,
    );
  }
  return { algorithm: rest.slice(0, dot), keyName: rest.slice(dot + 1) };
}

export function signatureEntryName(algorithm: SignatureAlgorithm, keyName: string): string {
  return `.SIGN.${algorithm}.${keyName}`;
}

/** Loads a PEM public key (SubjectPublicKeyInfo, as in /etc/apk/keys). */
export function loadPublicKey(name: string, pem: string | Buffer): PublicKeyEntry {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`key type ${key.asymmetricKeyType} is not RSA`);
    return { name, key };
  } catch (err) {
    throw new AppError('KEY_INVALID', `public key '${name}' is not a PEM RSA public key`, { cause: err });
  }
}

/**
 * Checks every signature against the keys of the same name, the way apk
 * looks keys up; reports each signature's verdict and the first key that verified.
 */
export function verifySignatures(
  signedBytes: Buffer,
  signatures: SignatureEntry[],
  keys: PublicKeyEntry[],
): VerificationResult {
  const checks: SignatureCheck[] = [];
  let verifiedBy: string | undefined;
  for (const sig of signatures) {
    const digest = DIGESTS[sig.algorithm];
    const key = keys.find((k) => k.name === sig.keyName);
    let verdict: SignatureVerdict;
    if (!digest) verdict = 'unsupported-algorithm';
    else if (!key) verdict = 'no-key';
    else verdict = verify(digest, signedBytes, key.key, sig.signature) ? 'verified' : 'bad-signature';
    if (verdict === 'verified') verifiedBy ??= sig.keyName;
    checks.push({ algorithm: sig.algorithm, keyName: sig.keyName, verdict });
  }
  return { verifiedBy, checks };
}

/** One signing key and the algorithms it signs with, first one first in the index. */
export interface IndexSigner {
  keyName: string;
  privateKey: KeyObject;
  algorithms: Array<'RSA256' | 'RSA' | 'RSA512'>;
}

export function signBytes(bytes: Buffer, signers: IndexSigner[]): SignatureEntry[] {
  const out: SignatureEntry[] = [];
  for (const signer of signers) {
    for (const algorithm of signer.algorithms) {
      out.push({
        algorithm,
        keyName: signer.keyName,
        signature: sign(DIGESTS[algorithm]!, bytes, signer.privateKey),
      });
    }
  }
  return out;
}

/** Short fingerprint for key file names: the first 8 hex digits of SHA-256 over the DER public key. */
export function publicKeyFingerprint(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 8);
}
