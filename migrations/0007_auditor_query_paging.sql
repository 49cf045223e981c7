-- The auditor's licence query at 1,000,000 packages (issue 7): the distinct
-- licences are found by a skip scan of this index (one seek per licence, not
-- a read of every package), and a page of packages with a matching licence is
-- a range of it in (license, id) order, the order of the query's cursor.
-- Partial: only published packages are ever asked for.
-- Component queries need no new index: components_by_name and
-- components_by_purl are ordered by (name | purl, package_id, rowid), which is
-- the order of their pages.

CREATE INDEX packages_by_license ON packages (license, id) WHERE published_at IS NOT NULL;
