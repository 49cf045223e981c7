-- Access control: per-repo upload limits and the audit log of every write.

ALTER TABLE repos ADD COLUMN max_upload_bytes INTEGER;

-- Tokens carry scopes as JSON strings "<repo|*>:<read|publish|delete|admin>".
-- The bootstrap token of version 1 stored ["admin"]; it means every scope.
UPDATE tokens SET scopes = '["*:admin"]' WHERE scopes = '["admin"]';

-- Append-only: reef never updates or deletes rows here.
CREATE TABLE audit_log (
  id           INTEGER PRIMARY KEY,
  at           INTEGER NOT NULL,                -- unix ms
  token_id     INTEGER,                         -- NULL: configured admin token or anonymous
  token_name   TEXT,
  action       TEXT NOT NULL,                   -- package.publish, package.delete, token.create, …
  target       TEXT NOT NULL,                   -- e.g. main/glibc/x86_64/hello-1.0-r0
  remote_addr  TEXT,
  result       TEXT NOT NULL,                   -- ok | rejected
  code         TEXT,                            -- error code when rejected
  detail       TEXT                             -- JSON, never secrets
) STRICT;

CREATE INDEX audit_log_by_time ON audit_log (at);
