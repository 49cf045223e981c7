-- ../0017_index_changes.sql for PostgreSQL: BIGINT generations and ids,
-- byte-order text (see 0015_baseline.sql).
CREATE TABLE index_changes (
  repo          TEXT COLLATE "C" NOT NULL,
  libc          TEXT COLLATE "C" NOT NULL,
  arch          TEXT COLLATE "C" NOT NULL,
  generation    BIGINT NOT NULL,
  op            TEXT COLLATE "C" NOT NULL CHECK (op IN ('add', 'remove')),
  package_id    BIGINT NOT NULL,
  package_arch  TEXT COLLATE "C" NOT NULL,
  record        TEXT NOT NULL,
  PRIMARY KEY (repo, libc, arch, generation)
);
