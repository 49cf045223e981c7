-- reef schema, version 1. Plain forward-only SQL; applied in a transaction.

CREATE TABLE repos (
  name        TEXT PRIMARY KEY,
  private     INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL
) STRICT;

-- One row per published package. Everything an index record needs is here,
-- so an index is rendered from one query without opening any .apk.
CREATE TABLE packages (
  id                 INTEGER PRIMARY KEY,
  repo               TEXT NOT NULL REFERENCES repos(name),
  libc               TEXT NOT NULL CHECK (libc IN ('glibc', 'musl')),
  arch               TEXT NOT NULL,
  name               TEXT NOT NULL,
  version            TEXT NOT NULL,
  filename           TEXT NOT NULL,            -- <name>-<version>.apk
  sha256             TEXT NOT NULL,            -- whole file; the blob key
  size               INTEGER NOT NULL,         -- S:
  checksum           TEXT NOT NULL,            -- C: (Q1…)
  datahash           TEXT NOT NULL,
  installed_size     INTEGER NOT NULL,         -- I:
  description        TEXT NOT NULL,
  url                TEXT NOT NULL,
  license            TEXT NOT NULL,
  origin             TEXT NOT NULL,
  maintainer         TEXT NOT NULL,
  builddate          INTEGER,
  commit_id          TEXT NOT NULL,
  provider_priority  INTEGER,
  depends            TEXT NOT NULL,            -- space separated, as in D:
  provides           TEXT NOT NULL,
  install_if         TEXT NOT NULL,
  index_record       TEXT NOT NULL,            -- the APKINDEX record, rendered once at upload (A: as uploaded)
  pkginfo            TEXT NOT NULL,            -- JSON: every .PKGINFO line as [key, value]
  signatures         TEXT NOT NULL,            -- JSON: [{algorithm, keyName}]
  uploaded_at        INTEGER NOT NULL,         -- unix ms
  published_at       INTEGER,                  -- set once an index listing it is live
  UNIQUE (repo, libc, arch, name, version)
) STRICT;

CREATE INDEX packages_by_index ON packages (repo, libc, arch, name);
CREATE INDEX packages_by_file ON packages (repo, libc, filename);
CREATE INDEX packages_by_sha256 ON packages (sha256);

-- The live index of each (repo, libc, arch). Every change to its packages
-- bumps `generation` in the same transaction; a build records the generation
-- it was rendered from. generation > built_generation means the index must be
-- rebuilt, which is how a restart after a crash knows what to redo.
-- The file is data/indexes/<repo>/<libc>/<arch>/<sha256>.tar.gz, so the row
-- and the bytes served can never disagree.
CREATE TABLE indexes (
  repo              TEXT NOT NULL,
  libc              TEXT NOT NULL,
  arch              TEXT NOT NULL,
  sha256            TEXT,
  size              INTEGER,
  package_count     INTEGER NOT NULL DEFAULT 0,
  signed_by         TEXT,                       -- key names, comma separated
  built_at          INTEGER,
  generation        INTEGER NOT NULL DEFAULT 1,
  built_generation  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (repo, libc, arch)
) STRICT;

CREATE TABLE tokens (
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL,
  hash          TEXT NOT NULL UNIQUE,           -- SHA-256 hex of the token
  scopes        TEXT NOT NULL,                  -- JSON
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER,
  revoked_at    INTEGER,
  last_used_at  INTEGER
) STRICT;
