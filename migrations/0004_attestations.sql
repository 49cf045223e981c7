-- reef's signed record of each publish (issue 6): a Sigstore bundle stored as a blob.

CREATE TABLE attestations (
  package_id  INTEGER PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
  sha256      TEXT NOT NULL,                    -- the bundle's blob
  size        INTEGER NOT NULL,
  key_name    TEXT NOT NULL,                    -- the attestation key that signed it
  created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX attestations_by_sha256 ON attestations (sha256);
