-- ../0016_keys.sql for PostgreSQL: BYTEA for the encrypted private key,
-- BIGINT for unix-ms times, byte-order text (see 0015_baseline.sql).
CREATE TABLE keys (
  kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('index', 'attestation')),
  name TEXT COLLATE "C" NOT NULL,
  state TEXT COLLATE "C" NOT NULL CHECK (state IN ('active', 'retired')),
  public_pem TEXT NOT NULL,
  private_key BYTEA NOT NULL,
  encryption_key_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  changed_at BIGINT NOT NULL,
  PRIMARY KEY (kind, name)
);
