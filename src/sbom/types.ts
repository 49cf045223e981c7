/** SBOM formats reef reads and writes (issue 5): SPDX 2.3 and CycloneDX 1.5/1.6 JSON. */
export type SbomFormat = 'spdx' | 'cyclonedx';

export interface SbomComponent {
  name: string;
  version?: string;
  purl?: string;
  /** SPDX licence expression. */
  license?: string;
  supplier?: string;
  /** Algorithm spelled as SPDX does: SHA1, SHA256, … */
  checksums: Array<{ algorithm: string; value: string }>;
}

export interface ParsedSbom {
  format: SbomFormat;
  specVersion: string;
  document: Record<string, unknown>;
  /** What the document says it is about. */
  describes: Array<{ name: string; version: string | undefined }>;
  components: SbomComponent[];
  relationships: Array<{ from: string; type: string; to: string }>;
}

export type Json = Record<string, unknown>;
