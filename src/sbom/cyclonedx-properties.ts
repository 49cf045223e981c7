/**
 * CycloneDX `properties` reef writes to carry SPDX facts CycloneDX has no
 * field for, so that SPDX → CycloneDX → SPDX gives the facts back. Names are
 * namespaced `spdx:` as the CycloneDX property taxonomy asks of extensions.
 */
export const CDX_PROPERTY = {
  /** `spdx:relationship:<TYPE>` on the source component (or metadata, for the document); value: target bom-ref. */
  relationship: 'spdx:relationship:',
  /** An SPDX purpose CycloneDX's component type cannot hold exactly (SOURCE, INSTALL, ARCHIVE, …). */
  purpose: 'spdx:primaryPackagePurpose',
  /** `spdx:checksum:<ALG>` for SPDX algorithms CycloneDX lacks (SHA224, MD2, MD4, MD6, ADLER32). */
  checksum: 'spdx:checksum:',
  /** `spdx:externalRef:<CATEGORY>:<type>` for references other than the purl and CPE. */
  externalRef: 'spdx:externalRef:',
  /** The verbatim SPDX supplier / originator when a Person: or a contact would be lost. */
  supplier: 'spdx:supplier',
  originator: 'spdx:originator',
  /** The concluded licence when the declared one took the single expression slot. */
  licenseConcluded: 'spdx:licenseConcluded',
  /** `spdx:extractedLicense:<LicenseRef-id>` on metadata; value: the extracted text. */
  extractedLicense: 'spdx:extractedLicense:',
  /** An SPDX creationInfo creator, on metadata. */
  creator: 'spdx:creator',
} as const;
