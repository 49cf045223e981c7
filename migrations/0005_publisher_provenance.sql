-- The publisher's provenance for a package (issue 6): the document as sent
-- (a Sigstore bundle or a melange .attest.tar.gz), stored as a blob, and the
-- result of checking it under the repository's policy.

CREATE TABLE publisher_provenance (
  package_id  INTEGER PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
  sha256      TEXT NOT NULL,                    -- the document's blob
  size        INTEGER NOT NULL,
  format      TEXT NOT NULL CHECK (format IN ('sigstore-bundle', 'melange-attestation')),
  verified    INTEGER NOT NULL CHECK (verified IN (0, 1)),
  result      TEXT NOT NULL,                    -- JSON: signer, subject digest, predicate summary, reason
  created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX publisher_provenance_by_sha256 ON publisher_provenance (sha256);
