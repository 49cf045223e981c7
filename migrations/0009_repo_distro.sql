-- The vendor a repository's packages belong to, for the purls in the SBOMs
-- reef generates (pkg:apk/<distro_id>/<name>@<version>?arch=…&distro=…).
-- The purl spec's apk type takes the vendor (alpine, wolfi, …) as namespace;
-- the distro qualifier is written as Syft writes it: <id>-<version>, or <id>
-- alone for a rolling distribution. NULL: the repository's own name, as
-- before. Stored SBOMs keep the purls they were generated with.

ALTER TABLE repos ADD COLUMN distro_id TEXT;
ALTER TABLE repos ADD COLUMN distro_version TEXT;
