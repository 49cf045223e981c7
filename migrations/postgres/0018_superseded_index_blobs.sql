-- ../0018_superseded_index_blobs.sql for PostgreSQL: BIGINT unix-ms times,
-- byte-order text (see 0015_baseline.sql).
CREATE TABLE superseded_index_blobs (
  sha256         TEXT COLLATE "C" PRIMARY KEY,
  superseded_at  BIGINT NOT NULL,
  deleting       INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1))
);
