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
-- only for it, through packages_by_search_name below.
--
-- repo, libc and arch ride along UNINDEXED: the filters are applied to the
-- index's own rows, without reading each match's (wide) packages row.
CREATE VIRTUAL TABLE package_search USING fts5(
  name, description, provides,
  repo UNINDEXED, libc UNINDEXED, arch UNINDEXED,
  tokenize = 'trigram'
);

INSERT INTO package_search (rowid, name, description, provides, repo, libc, arch)
  SELECT id, name, description, provides, repo, libc, arch FROM packages WHERE published_at IS NOT NULL;

-- Kept in step by triggers, in the transaction of the write itself: a
-- package becomes findable when an index listing it goes live (published_at
-- set) and stops being findable when it is deleted. Triggers see every writer
-- of packages, the store's methods as well as a restore or a seeded database,
-- so no code path can forget the index.
CREATE TRIGGER package_search_insert AFTER INSERT ON packages
WHEN new.published_at IS NOT NULL BEGIN
  INSERT INTO package_search (rowid, name, description, provides, repo, libc, arch)
    VALUES (new.id, new.name, new.description, new.provides, new.repo, new.libc, new.arch);
END;

-- One trigger, so the old row always goes before the new one comes in.
CREATE TRIGGER package_search_update AFTER UPDATE OF published_at, name, description, provides, repo, libc, arch
ON packages BEGIN
  DELETE FROM package_search WHERE rowid = old.id AND old.published_at IS NOT NULL;
  INSERT INTO package_search (rowid, name, description, provides, repo, libc, arch)
    SELECT new.id, new.name, new.description, new.provides, new.repo, new.libc, new.arch
    WHERE new.published_at IS NOT NULL;
END;

CREATE TRIGGER package_search_delete AFTER DELETE ON packages
WHEN old.published_at IS NOT NULL BEGIN
  DELETE FROM package_search WHERE rowid = old.id;
END;

-- Names by prefix, case-insensitive (LIKE 'x%' uses it: sqlite.org/optoverview.html,
-- "The LIKE optimization"), with the filter columns, for searches of 1 or 2
-- characters and listings without text.
CREATE INDEX packages_by_search_name ON packages (name COLLATE NOCASE, repo, libc, arch)
  WHERE published_at IS NOT NULL;
