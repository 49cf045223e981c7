-- Security advisories (issue 16): per repository and source package (apk
-- origin), the document a security team keeps, one row per advisory with its
-- event history (JSON, as written), and its aliases for lookups by CVE/GHSA.
-- The feeds (security.json, OSV, OpenVEX) are built from these rows; each
-- repository's generation counts its advisory changes, so every replica knows
-- when a cached feed is stale.

CREATE TABLE advisories (
  id           INTEGER PRIMARY KEY,
  repo         TEXT NOT NULL,
  origin       TEXT NOT NULL,                 -- the source package the advisory is about
  advisory_id  TEXT NOT NULL,                 -- CGA-…, REEF-…, or another database's id
  aliases      TEXT NOT NULL,                 -- JSON array of ids (CVE, GHSA, GO)
  events       TEXT NOT NULL,                 -- JSON array of events, in document order
  position     INTEGER NOT NULL,              -- order in the package's document
  updated_at   INTEGER NOT NULL,
  UNIQUE (repo, advisory_id)
) STRICT;

CREATE INDEX advisories_by_origin ON advisories (repo, origin, position);

CREATE TABLE advisory_aliases (
  advisory  INTEGER NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
  alias     TEXT NOT NULL,
  PRIMARY KEY (advisory, alias)
) STRICT;

CREATE INDEX advisory_aliases_by_alias ON advisory_aliases (alias);

CREATE TABLE advisory_generations (
  repo        TEXT PRIMARY KEY,
  generation  INTEGER NOT NULL,
  changed_at  INTEGER NOT NULL               -- the feeds' Last-Modified
) STRICT;
