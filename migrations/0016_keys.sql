-- Index signing keys and the attestation key, kept in the database when
-- several reef replicas share one (PostgreSQL): each finds them there, with
-- nothing copied between machines. Private halves are encrypted by reef with
-- AES-256-GCM under a key the database never sees (REEF_KEY_ENCRYPTION_KEY);
-- encryption_key_id names that key without revealing it. A name is the
-- public key's file name, as clients store it.
--
-- The embedded default keeps its keys as files in the data folder: there
-- this table stays empty until `reef migrate-storage` moves them here.
CREATE TABLE keys (
  kind TEXT NOT NULL CHECK (kind IN ('index', 'attestation')),
  name TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
  public_pem TEXT NOT NULL,
  private_key BLOB NOT NULL,
  encryption_key_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  changed_at INTEGER NOT NULL,
  PRIMARY KEY (kind, name)
) STRICT;
