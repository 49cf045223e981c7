-- The names each package depends on and provides, one row per name, so the
-- package page can resolve a dependency to the packages that satisfy it (by
-- name or through `provides`, as apk does) and list reverse dependencies with
-- an index lookup instead of scanning every package's `depends` text.
--
-- `name` is the bare dependency name: no leading `!`, no operator or version
-- (apk-tools src/package.c apk_dep_parse: the name ends at the first of
-- `<`, `=`, `>`, `~`). Conflicts (`!name`) are not dependencies and are not
-- recorded. The stored `depends`/`provides` tokens were validated at upload,
-- so they hold no spaces and split exactly as below.

CREATE TABLE package_relations (
  name        TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('depends', 'provides')),
  package_id  INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  PRIMARY KEY (name, kind, package_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX package_relations_by_package ON package_relations (package_id);

WITH RECURSIVE split(package_id, kind, rest, token) AS (
  SELECT id, 'depends', depends || ' ', NULL FROM packages
  UNION ALL
  SELECT id, 'provides', provides || ' ', NULL FROM packages
  UNION ALL
  SELECT package_id, kind, substr(rest, instr(rest, ' ') + 1), substr(rest, 1, instr(rest, ' ') - 1)
  FROM split WHERE rest <> ''
),
tokens(package_id, kind, token) AS (
  SELECT package_id, kind, token FROM split
  WHERE token IS NOT NULL AND token <> '' AND substr(token, 1, 1) <> '!'
)
INSERT OR IGNORE INTO package_relations (name, kind, package_id)
SELECT substr(token, 1, min(
         CASE instr(token, '<') WHEN 0 THEN length(token) ELSE instr(token, '<') - 1 END,
         CASE instr(token, '=') WHEN 0 THEN length(token) ELSE instr(token, '=') - 1 END,
         CASE instr(token, '>') WHEN 0 THEN length(token) ELSE instr(token, '>') - 1 END,
         CASE instr(token, '~') WHEN 0 THEN length(token) ELSE instr(token, '~') - 1 END)),
       kind, package_id
FROM tokens;
