-- Vulnerability data auditors upload (issue 16): OSV records as sent, the ids
-- each is known by (its own, aliases, upstream), and the packages its
-- affected entries name, by versionless purl (SBOM components are found by
-- it) or, for apk distributions, by ecosystem and source package name.

CREATE TABLE vulnerabilities (
  id           TEXT PRIMARY KEY,
  modified     TEXT NOT NULL,
  withdrawn    TEXT,
  record       TEXT NOT NULL,                 -- the OSV JSON as sent
  uploaded_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE vulnerability_names (
  name     TEXT NOT NULL,                     -- the record's id, an alias or an upstream id
  vuln_id  TEXT NOT NULL REFERENCES vulnerabilities(id) ON DELETE CASCADE,
  PRIMARY KEY (name, vuln_id)
) STRICT;

CREATE INDEX vulnerability_names_by_vuln ON vulnerability_names (vuln_id);

CREATE TABLE vulnerability_packages (
  vuln_id    TEXT NOT NULL REFERENCES vulnerabilities(id) ON DELETE CASCADE,
  affected   INTEGER NOT NULL,                -- index in the record's affected[]
  purl_key   TEXT,                            -- pkg:<type>/<namespace>/<name>, no version
  apk_name   TEXT,                            -- for apk ecosystems: the source package
  ecosystem  TEXT NOT NULL,
  PRIMARY KEY (vuln_id, affected)
) STRICT;

CREATE INDEX vulnerability_packages_by_purl ON vulnerability_packages (purl_key) WHERE purl_key IS NOT NULL;
CREATE INDEX vulnerability_packages_by_apk ON vulnerability_packages (apk_name) WHERE apk_name IS NOT NULL;

-- apk records name source packages: packages are found by origin.
CREATE INDEX packages_by_origin ON packages (origin, id);
