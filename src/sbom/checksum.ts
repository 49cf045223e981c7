/**
 * Checksum algorithm names: SPDX 2.3 §7.10 spells them `SHA256`, CycloneDX
 * (`hash-alg`) `SHA-256`. SPDX knows five that CycloneDX cannot hold (SHA224,
 * MD2, MD4, MD6, ADLER32); conversions carry those in a property instead.
 */

const SPDX_TO_CDX: Record<string, string> = {
  MD5: 'MD5',
  SHA1: 'SHA-1',
  SHA256: 'SHA-256',
  SHA384: 'SHA-384',
  SHA512: 'SHA-512',
  'SHA3-256': 'SHA3-256',
  'SHA3-384': 'SHA3-384',
  'SHA3-512': 'SHA3-512',
  'BLAKE2b-256': 'BLAKE2b-256',
  'BLAKE2b-384': 'BLAKE2b-384',
  'BLAKE2b-512': 'BLAKE2b-512',
  BLAKE3: 'BLAKE3',
};

const CDX_TO_SPDX: Record<string, string> = Object.fromEntries(
  Object.entries(SPDX_TO_CDX).map(([spdx, cdx]) => [cdx, spdx]),
);

/** The CycloneDX name of an SPDX algorithm, or undefined when CycloneDX has none. */
export function cdxHashAlgorithm(spdxAlgorithm: string): string | undefined {
  return SPDX_TO_CDX[spdxAlgorithm];
}

/** The SPDX name of a CycloneDX algorithm (every CycloneDX 1.6 algorithm has one). */
export function spdxChecksumAlgorithm(cdxAlgorithm: string): string | undefined {
  return CDX_TO_SPDX[cdxAlgorithm];
}
