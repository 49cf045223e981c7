-- The entries of each package's data tar: what the package installs, shown on
-- its page and served by GET /api/v1/packages/…/files.
--
-- One row per entry, in archive order, rather than one compressed list per
-- package: a page of the list is then a range read by (package, position), so
-- serving the largest package (tens of thousands of entries, up to the
-- parser's 500,000) never inflates the whole list into memory, and a delete
-- removes the rows by cascade (through the primary key's index, which
-- starts with the package id). A row is the package id and position as
-- varints, the path and a few small integers: only what a reader needs is
-- kept, not uid, gid, mtime or the SHA-1. (A WITHOUT ROWID table would save
-- the index's copy of the key, but would break whatever reads every table
-- by rowid.)

CREATE TABLE package_files (
  package_id   INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  seq          INTEGER NOT NULL,              -- 0-based position in the data tar
  path         TEXT NOT NULL,                 -- the entry's name as the archive spells it
  type         TEXT NOT NULL CHECK (type IN ('file', 'directory', 'symlink', 'hardlink', 'chardev', 'blockdev', 'fifo')),
  mode         INTEGER NOT NULL,              -- permission bits from the tar header
  size         INTEGER NOT NULL,              -- bytes of a regular file; 0 otherwise
  link_target  TEXT,                          -- symlinks and hard links only
  PRIMARY KEY (package_id, seq)
) STRICT;

-- A row here means the package's list was recorded (empty lists included):
-- packages published before this migration have none until the list is read
-- from their stored .apk. `entries` is the list's length, so a page can say
-- how long the whole list is without counting it.
CREATE TABLE package_file_lists (
  package_id   INTEGER PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
  entries      INTEGER NOT NULL,
  recorded_at  INTEGER NOT NULL               -- unix ms
) STRICT;
