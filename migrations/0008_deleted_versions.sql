-- A deleted package's name, version and arch stay reserved to its bytes
-- (design invariant 4): once a file has been served, a cache or CDN may hold
-- it as immutable, so the same URL must never serve other bytes. Publishing
-- the identical file again (an undo) is allowed; other bytes get a 409.
-- One row per slot; a second delete of the same bytes finds it there.

CREATE TABLE deleted_versions (
  repo        TEXT NOT NULL,
  libc        TEXT NOT NULL,
  arch        TEXT NOT NULL,
  name        TEXT NOT NULL,
  version     TEXT NOT NULL,
  sha256      TEXT NOT NULL,             -- the bytes this slot is reserved to
  checksum    TEXT NOT NULL,             -- C: as it was served
  deleted_at  INTEGER NOT NULL,          -- unix ms of the first delete
  PRIMARY KEY (repo, libc, name, arch, version)
) STRICT;

-- A publish looks up every version of a name in the arches it shares an
-- index with (noarch shares all), to compare them as apk does.
CREATE INDEX packages_by_name ON packages (repo, libc, name);
