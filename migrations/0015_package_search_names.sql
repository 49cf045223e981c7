-- Package names alone in a trigram index of their own, so that search finds
-- the packages whose name contains the text (its first three tiers: README,
-- "Web interface") by reading only name trigrams. package_search's column
-- filter (`name : "…"`) gives the same rows but reads the whole doclist of
-- each trigram, every column's: for a word in half the descriptions
-- ("library" at 100,000 packages) 11 ms to find no name, against 0.1 ms here
-- (BENCHMARKS.md, "Package search"). Search then walks the other matches,
-- newest first, and stops at the page's end; excluding these names from that
-- walk costs what the names match, not what the text matches.
--
-- Same tokenizer and case folding as package_search, so both indexes agree
-- on which names contain the text. Contentless, as package_search is.
CREATE VIRTUAL TABLE package_search_names USING fts5(
  name,
  content = '', contentless_delete = 1,
  tokenize = 'trigram'
);

INSERT INTO package_search_names (rowid, name) SELECT id, name FROM package_search_rows;

-- Kept in step with package_search_rows, which the triggers of migration 0013
-- keep in step with packages (published only): every change there is a
-- delete, an insert or both, in the same transaction.
CREATE TRIGGER package_search_names_insert AFTER INSERT ON package_search_rows BEGIN
  INSERT INTO package_search_names (rowid, name) VALUES (new.id, new.name);
END;

CREATE TRIGGER package_search_names_delete AFTER DELETE ON package_search_rows BEGIN
  DELETE FROM package_search_names WHERE rowid = old.id;
END;
