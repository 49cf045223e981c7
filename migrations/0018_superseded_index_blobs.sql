-- Index blobs that no index row may name any more, or not yet: each index
-- blob a build writes (listed here before it is written, so a build that
-- dies or loses to a newer one leaves a row to collect it by), and the
-- previous index of each recorded build (listed in the transaction that
-- records the new one). A replica may have read the old row a moment ago
-- and still be streaming the old blob, so a blob is deleted only once its
-- row is older than a grace period, and only when no index, package, SBOM
-- or attestation row names the same bytes. `deleting` marks a blob whose
-- deletion has begun: a build that wants those bytes again waits for it
-- to end and writes them anew.
CREATE TABLE superseded_index_blobs (
  sha256         TEXT PRIMARY KEY,
  superseded_at  INTEGER NOT NULL,               -- unix ms
  deleting       INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1))
) STRICT;
