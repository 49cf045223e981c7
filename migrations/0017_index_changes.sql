-- What changed in each index since its last build, one row per generation,
-- written in the transaction that bumps the generation (a package added to
-- or removed from the index). The indexer applies them to the chunks of
-- the index it built last instead of reading every record again: a delta
-- build. Kept in the database, not in the memory of the process that made
-- the change, so any process (another replica, a server after a restart)
-- can build the delta. Rows up to an index's built_generation are deleted
-- once a build is recorded. A generation without its row (a change that
-- lists no record, such as a key rotation) makes the next build a full one.
CREATE TABLE index_changes (
  repo          TEXT NOT NULL,
  libc          TEXT NOT NULL,
  arch          TEXT NOT NULL,
  generation    INTEGER NOT NULL,
  op            TEXT NOT NULL CHECK (op IN ('add', 'remove')),
  package_id    INTEGER NOT NULL,                -- the package, gone when op is 'remove'
  package_arch  TEXT NOT NULL,                   -- its own arch (noarch ones are in every arch's index)
  record        TEXT NOT NULL,                   -- its index record as stored
  PRIMARY KEY (repo, libc, arch, generation)
) STRICT;
