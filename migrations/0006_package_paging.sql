-- Paging through packages by id (the package list API, issue 7): with these,
-- a page is an index range scan instead of a sort of every row of the index
-- or repository, which at 100,000 packages took ~180 ms per page.

CREATE INDEX packages_by_index_id ON packages (repo, libc, arch, id);
CREATE INDEX packages_by_repo_id ON packages (repo, id);
