/** SBOM formats reef reads and writes (issue 5): SPDX 2.3 and CycloneDX 1.5/1.6 JSON. */
export type SbomFormat = 'spdx' | 'cyclonedx';

/** One package or file an SBOM lists: the rows the auditor API indexes. */
export interface SbomComponent {
  name: string;
  version?: string;
  purl?: string;
  /** SPDX licence expression. */
  license?: string;
  supplier?: string;
  /** Algorithm spelled as SPDX does (SHA1, SHA256, SHA3-256, …); value as lowercase hex. */
  checksums: Array<{ algorithm: string; value: string }>;
}

export interface ParsedSbom {
  format: SbomFormat;
  /** `2.3` / `2.2` for SPDX, `1.5` / `1.6` for CycloneDX. */
  specVersion: string;
  /** The validated document, as parsed. */
  document: Record<string, unknown>;
  /** What the document says it is about. */
  describes: Array<{ name: string; version: string | undefined }>;
  components: SbomComponent[];
  /** SPDX relationships; for CycloneDX, dependencies (DEPENDS_ON) and nesting (CONTAINS). */
  relationships: Array<{ from: string; type: string; to: string }>;
}

/**
 * What reef keeps of a parsed SBOM once its document is stored: what a
 * parse in the worker sends back, and what reading a generated one yields.
 */
export type SbomSummary = Pick<ParsedSbom, 'format' | 'specVersion' | 'describes' | 'components'>;

export type Json = Record<string, unknown>;
