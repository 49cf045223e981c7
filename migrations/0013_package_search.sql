-- Package search (README, "Web interface"; GET /api/v1/search): a full-text
-- index of published packages' names, descriptions and provides, so a search
-- reads the packages that match instead of scanning every row with LIKE.
--
-- The trigram tokenizer (sqlite.org/fts5.html, "The Trigram Tokenizer")
-- keeps the meaning search had with LIKE: any substring of 3 or more
-- characters, case-insensitive. A word tokenizer (unicode61) would split
-- `so:libcrypto.so.3` into `so`, `libcrypto`, `so`, `3` and `py3-requests`
-- into `py3`, `requests`, so `crypto` or `3-req` would find nothing. Shorter
-- text cannot be looked up in a trigram index; the store searches names
-- only for it, through package_search_rows_by_name below.
--
-- The index is contentless (it keeps no copy of the text, only what finds
-- it; contentless_delete lets a row be deleted by rowid). What ranking and
-- filtering need of each match, its name, repo, libc and arch, is in
-- package_search_rows, a narrow table read by rowid: reading these from the
-- index's own content table, or from the wide packages rows, cost more than
-- the match itself for a term that tens of thousands of packages contain.
CREATE VIRTUAL TABLE package_search USING fts5(
  name, description, provides,
  content = '', contentless_delete = 1,
  tokenize = 'trigram'
);

CREATE TABLE package_search_rows (
  id    INTEGER PRIMARY KEY,             -- packages.id, and the package_search rowid
  name  TEXT NOT NULL,
  repo  TEXT NOT NULL,
  libc  TEXT NOT NULL,
  arch  TEXT NOT NULL
) STRICT;

-- Names by prefix, case-insensitive (LIKE 'x%' uses it: sqlite.org/optoverview.html,
-- "The LIKE optimization"), with the filter columns: searches of 1 or 2
-- characters, and listings without text.
CREATE INDEX package_search_rows_by_name ON package_search_rows (name COLLATE NOCASE, repo, libc, arch);

INSERT INTO package_search (rowid, name, description, provides)
  SELECT id, name, description, provides FROM packages WHERE published_at IS NOT NULL;
INSERT INTO package_search_rows (id, name, repo, libc, arch)
  SELECT id, name, repo, libc, arch FROM packages WHERE published_at IS NOT NULL;

-- Kept in step by triggers, in the transaction of the write itself: a
-- package becomes findable when an index listing it goes live (published_at
-- set) and stops being findable when it is deleted. Triggers see every writer
-- of packages, the store's methods as well as a restore or a seeded database,
-- so no code path can forget the index.
CREATE TRIGGER package_search_insert AFTER INSERT ON packages
WHEN new.published_at IS NOT NULL BEGIN
  INSERT INTO package_search (rowid, name, description, provides)
    VALUES (new.id, new.name, new.description, new.provides);
  INSERT INTO package_search_rows (id, name, repo, libc, arch)
    VALUES (new.id, new.name, new.repo, new.libc, new.arch);
END;

-- One trigger, so the old row always goes before the new one comes in.
CREATE TRIGGER package_search_update AFTER UPDATE OF published_at, name, description, provides, repo, libc, arch
ON packages BEGIN
  DELETE FROM package_search WHERE rowid = old.id AND old.published_at IS NOT NULL;
  DELETE FROM package_search_rows WHERE id = old.id;
  INSERT INTO package_search (rowid, name, description, provides)
    SELECT new.id, new.name, new.description, new.provides WHERE new.published_at IS NOT NULL;
  INSERT INTO package_search_rows (id, name, repo, libc, arch)
    SELECT new.id, new.name, new.repo, new.libc, new.arch WHERE new.published_at IS NOT NULL;
END;

CREATE TRIGGER package_search_delete AFTER DELETE ON packages
WHEN old.published_at IS NOT NULL BEGIN
  DELETE FROM package_search WHERE rowid = old.id;
  DELETE FROM package_search_rows WHERE id = old.id;
END;
