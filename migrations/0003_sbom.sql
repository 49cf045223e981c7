-- SBOMs (issue 5): one per package, stored as a blob and never altered;
-- conversions to the other format are derived when served.

CREATE TABLE sboms (
  package_id    INTEGER PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
  source        TEXT NOT NULL CHECK (source IN ('embedded', 'uploaded', 'generated')),
  format        TEXT NOT NULL CHECK (format IN ('spdx', 'cyclonedx')),
  spec_version  TEXT NOT NULL,
  sha256        TEXT NOT NULL,                  -- the blob
  size          INTEGER NOT NULL,
  created_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX sboms_by_sha256 ON sboms (sha256);

-- Every component of every SBOM, for the auditor queries.
CREATE TABLE components (
  id          INTEGER PRIMARY KEY,
  package_id  INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  version     TEXT,
  purl        TEXT,
  license     TEXT,
  supplier    TEXT,
  checksums   TEXT NOT NULL                     -- JSON [{algorithm, value}]
) STRICT;

CREATE INDEX components_by_name ON components (name, package_id);
CREATE INDEX components_by_purl ON components (purl, package_id);
CREATE INDEX components_by_package ON components (package_id);
