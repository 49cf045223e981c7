import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../errors.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { fsyncDir, readdirIfExists, translateFsError } from './blob-store.ts';
import type { Database } from './database.ts';
import { KeyEncryption } from './key-encryption.ts';

/**
 * Where reef's private keys live: the index signing keys (RSA, named
 * `<name>.rsa.pub` as clients store them) and the attestation key (ECDSA,
 * `<name>.pub.pem`). Names are the public key's file name in both.
 *
 * The data folder keeps them as files (FileKeyStore, the embedded default,
 * copied by `reef backup`); replicas sharing PostgreSQL keep them in the
 * database, encrypted (DatabaseKeyStore), so a new replica signs alike with
 * nothing copied to it.
 */
export type KeyKind = 'index' | 'attestation';

export interface StoredKey {
  name: string;
  privatePem: Buffer;
}

export interface KeyStore {
  /** Where the keys are, for messages: a folder, or "the database". */
  readonly location: string;
  /** The keys that sign, sorted by name. */
  active(kind: KeyKind): Promise<StoredKey[]>;
  /** Names of keys taken out of signing, sorted. */
  retired(kind: KeyKind): Promise<string[]>;
  /** Public keys that verify what was signed before, by name: every key's, and stored public halves. */
  publicKeys(kind: KeyKind): Promise<Array<{ name: string; pem: Buffer; isPrivate: boolean }>>;
  /** Stores a new active key; its name must be new. */
  add(kind: KeyKind, name: string, privatePem: string, publicPem: string): Promise<void>;
  /**
   * Stores a first key: only when the kind has no key at all (active or
   * retired); false when it had one. Replicas starting together thus agree
   * on one first key.
   */
  addFirst(kind: KeyKind, name: string, privatePem: string, publicPem: string): Promise<boolean>;
  /** Takes an active key out of signing (it stays, retired). */
  retire(kind: KeyKind, name: string): Promise<void>;
  /** Makes a retired key active again: its private key. */
  restore(kind: KeyKind, name: string): Promise<Buffer>;
}

/**
 * One key whole, as `reef migrate-storage` and `reef backup` move it
 * between the two stores: its state, both halves, and when it was made.
 */
export interface KeyEntry {
  kind: KeyKind;
  name: string;
  state: 'active' | 'retired';
  privatePem: Buffer;
  /** The public half exactly as stored (clients compare the bytes they download). */
  publicPem: Buffer;
  createdAt: number;
  changedAt: number;
}

/** What a store holds, for a copy: whole keys, and public halves kept without their private one. */
export interface KeyInventory {
  keys: KeyEntry[];
  /** Public-key files with no private half beside them (paths), which only the file store can keep. */
  publicOnly: string[];
}

/** The public half of a private PEM, as `reef` writes public keys. */
function publicOf(privatePem: Buffer): Buffer {
  return Buffer.from(createPublicKey(createPrivateKey(privatePem)).export({ type: 'spki', format: 'pem' }));
}

/** The private key's file name for a key name: `x.rsa.pub` → `x.rsa`, `x.pub.pem` → `x.pem`. */
function privateFile(kind: KeyKind, name: string): string {
  return kind === 'index' ? name.replace(/\.pub$/, '') : name.replace(/\.pub\.pem$/, '.pem');
}

function nameOf(kind: KeyKind, file: string): string | undefined {
  if (kind === 'index') return file.endsWith('.rsa') ? `${file}.pub` : undefined;
  return file.endsWith('.pem') && !file.endsWith('.pub.pem') ? file.replace(/\.pem$/, '.pub.pem') : undefined;
}

/**
 * <data>/keys/<name>.rsa (0600) beside <name>.rsa.pub, retired ones in
 * keys/retired/; the attestation key in keys/attestation/<name>.pem and
 * <name>.pub.pem. A key loads only once its private half exists, which is
 * written last.
 */
export class FileKeyStore implements KeyStore {
  constructor(readonly dataDir: string) {}

  get location(): string {
    return join(this.dataDir, 'keys');
  }

  private dir(kind: KeyKind): string {
    return kind === 'index' ? join(this.dataDir, 'keys') : join(this.dataDir, 'keys', 'attestation');
  }

  async active(kind: KeyKind): Promise<StoredKey[]> {
    const dir = this.dir(kind);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const keys: StoredKey[] = [];
    for (const file of (await readdir(dir)).sort()) {
      const name = nameOf(kind, file);
      if (name) keys.push({ name, privatePem: await readFile(join(dir, file)) });
    }
    return keys;
  }

  async retired(kind: KeyKind): Promise<string[]> {
    if (kind !== 'index') return [];
    const files = await readdirIfExists(join(this.dir(kind), 'retired'));
    return files
      .map((f) => nameOf(kind, f))
      .filter((n): n is string => n !== undefined)
      .sort();
  }

  async publicKeys(kind: KeyKind): Promise<Array<{ name: string; pem: Buffer; isPrivate: boolean }>> {
    const dir = this.dir(kind);
    const out: Array<{ name: string; pem: Buffer; isPrivate: boolean }> = [];
    for (const file of (await readdirIfExists(dir)).sort()) {
      const privateName = nameOf(kind, file);
      const isPublic = kind === 'index' ? file.endsWith('.rsa.pub') : file.endsWith('.pub.pem');
      if (!privateName && !isPublic) continue;
      try {
        out.push({
          name: privateName ?? file,
          pem: await readFile(join(dir, file)),
          isPrivate: !!privateName,
        });
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  async addFirst(kind: KeyKind, name: string, privatePem: string, publicPem: string): Promise<boolean> {
    // One server per data folder: no other process adds a first key meanwhile.
    if ((await this.active(kind)).length > 0 || (await this.retired(kind)).length > 0) return false;
    await this.add(kind, name, privatePem, publicPem);
    return true;
  }

  async add(kind: KeyKind, name: string, privatePem: string, publicPem: string): Promise<void> {
    const dir = this.dir(kind);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const exists = await stat(join(dir, privateFile(kind, name))).then(
      () => true,
      () => false,
    );
    if (exists) throw new AppError('KEY_INVALID', `a key named ${name} exists already`);
    await writeFileAtomic(join(dir, name), publicPem, 0o644);
    // The private key is written last: a key is only loaded once both halves exist.
    await writeFileAtomic(join(dir, privateFile(kind, name)), privatePem, 0o600);
  }

  /** Every key in the folder, retired ones too, and the public keys lying there without a private half. */
  async inventory(): Promise<KeyInventory> {
    const keys: KeyEntry[] = [];
    const publicOnly: string[] = [];
    const folders: Array<[KeyKind, string, 'active' | 'retired']> = [
      ['index', this.dir('index'), 'active'],
      ['index', join(this.dir('index'), 'retired'), 'retired'],
      ['attestation', this.dir('attestation'), 'active'],
    ];
    for (const [kind, dir, state] of folders) {
      const files = (await readdirIfExists(dir)).sort();
      for (const file of files) {
        const name = nameOf(kind, file);
        if (name) {
          const privatePem = await readFile(join(dir, file));
          const { mtimeMs } = await stat(join(dir, file));
          const publicPem = files.includes(name) ? await readFile(join(dir, name)) : publicOf(privatePem);
          const at = Math.round(mtimeMs);
          keys.push({ kind, name, state, privatePem, publicPem, createdAt: at, changedAt: at });
        } else {
          const isPublic = kind === 'index' ? file.endsWith('.rsa.pub') : file.endsWith('.pub.pem');
          if (isPublic && !files.includes(privateFile(kind, file))) publicOnly.push(join(dir, file));
        }
      }
    }
    return { keys, publicOnly };
  }

  /** Stores a key as `entry` says, retired ones in keys/retired/; its name must be new. */
  async put(entry: KeyEntry): Promise<void> {
    if (entry.kind !== 'index' && entry.state === 'retired') {
      throw new AppError(
        'KEY_INVALID',
        `a retired ${entry.kind} key (${entry.name}) has no place in ${this.location}`,
      );
    }
    await this.add(
      entry.kind,
      entry.name,
      entry.privatePem.toString('utf8'),
      entry.publicPem.toString('utf8'),
    );
    if (entry.state === 'retired') await this.retire(entry.kind, entry.name);
  }

  async retire(kind: KeyKind, name: string): Promise<void> {
    const dir = this.dir(kind);
    const retired = join(dir, 'retired');
    const base = privateFile(kind, name);
    try {
      await mkdir(retired, { recursive: true, mode: 0o700 });
      // The private key goes first: from then on the key no longer loads as a signer.
      await rename(join(dir, base), join(retired, base));
      await rename(join(dir, name), join(retired, name));
      await fsyncDir(dir);
      await fsyncDir(retired);
    } catch (err) {
      throw translateFsError(err);
    }
  }

  async restore(kind: KeyKind, name: string): Promise<Buffer> {
    const dir = this.dir(kind);
    const retired = join(dir, 'retired');
    const base = privateFile(kind, name);
    let pem: Buffer;
    try {
      pem = await readFile(join(retired, base));
    } catch (err) {
      throw new AppError('KEY_NOT_FOUND', `no retired key named ${name} in ${retired}`, { cause: err });
    }
    let publicPem: string;
    try {
      publicPem = createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }).toString();
    } catch (err) {
      throw new AppError('KEY_INVALID', `retired key ${name} cannot be read as a PEM private key`, {
        cause: err,
      });
    }
    // The public half from the private one (the retired copy may be gone); the private key goes
    // last, as in add: a key is only loaded once both halves exist.
    await writeFileAtomic(join(dir, name), publicPem, 0o644);
    await rename(join(retired, base), join(dir, base));
    await fsyncDir(dir);
    await rm(join(retired, name), { force: true });
    await fsyncDir(retired);
    return pem;
  }
}

interface KeyRow {
  name: string;
  state: 'active' | 'retired';
  public_pem: string;
  private_key: Buffer | Uint8Array;
}

/**
 * The `keys` table, private halves encrypted with the key encryption key
 * (key-encryption.ts). Every replica reads the same rows, so a key added or
 * retired on one signs (or stops signing) on all from their next read.
 */
export class DatabaseKeyStore implements KeyStore {
  readonly location = 'the database (table keys)';

  constructor(
    private readonly database: Database,
    private readonly encryption: KeyEncryption,
  ) {}

  private context(kind: KeyKind, name: string): string {
    return `${kind}:${name}`;
  }

  async active(kind: KeyKind): Promise<StoredKey[]> {
    const rows = await this.database.all<KeyRow>(
      "SELECT name, state, public_pem, private_key FROM keys WHERE kind = ? AND state = 'active' ORDER BY name",
      [kind],
    );
    return rows.map((r) => ({
      name: r.name,
      privatePem: this.encryption.decrypt(Buffer.from(r.private_key), this.context(kind, r.name)),
    }));
  }

  async retired(kind: KeyKind): Promise<string[]> {
    const rows = await this.database.all<{ name: string }>(
      "SELECT name FROM keys WHERE kind = ? AND state = 'retired' ORDER BY name",
      [kind],
    );
    return rows.map((r) => r.name);
  }

  async publicKeys(kind: KeyKind): Promise<Array<{ name: string; pem: Buffer; isPrivate: boolean }>> {
    const rows = await this.database.all<{ name: string; public_pem: string }>(
      'SELECT name, public_pem FROM keys WHERE kind = ? ORDER BY name',
      [kind],
    );
    return rows.map((r) => ({ name: r.name, pem: Buffer.from(r.public_pem), isPrivate: false }));
  }

  async add(kind: KeyKind, name: string, privatePem: string, publicPem: string): Promise<void> {
    const sealed = this.encryption.encrypt(Buffer.from(privatePem), this.context(kind, name));
    const now = Date.now();
    const added = await this.database.run(
      `INSERT INTO keys (kind, name, state, public_pem, private_key, encryption_key_id, created_at, changed_at)
       VALUES (?, ?, 'active', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [kind, name, publicPem, sealed, this.encryption.id, now, now],
    );
    if (added === 0) throw new AppError('KEY_INVALID', `a key named ${name} exists already`);
  }

  async addFirst(kind: KeyKind, name: string, privatePem: string, publicPem: string): Promise<boolean> {
    return this.database.transact(async () => {
      // Two replicas' first starts: the second waits here, then finds the first's key.
      await this.database.lockForTransaction(`keys:first:${kind}`);
      if (await this.database.get('SELECT 1 FROM keys WHERE kind = ?', [kind])) return false;
      await this.add(kind, name, privatePem, publicPem);
      return true;
    });
  }

  /** Every row, decrypted: what a copy into the file store or another key encryption key needs. */
  async inventory(): Promise<KeyInventory> {
    const rows = await this.database.all<KeyRow & { kind: KeyKind; created_at: number; changed_at: number }>(
      'SELECT kind, name, state, public_pem, private_key, created_at, changed_at FROM keys ORDER BY kind, name',
    );
    const keys = rows.map((r) => ({
      kind: r.kind,
      name: r.name,
      state: r.state,
      privatePem: this.encryption.decrypt(Buffer.from(r.private_key), this.context(r.kind, r.name)),
      publicPem: Buffer.from(r.public_pem),
      createdAt: Number(r.created_at),
      changedAt: Number(r.changed_at),
    }));
    return { keys, publicOnly: [] };
  }

  /** Stores a key as `entry` says, encrypted; its name must be new. */
  async put(entry: KeyEntry): Promise<void> {
    const sealed = this.encryption.encrypt(entry.privatePem, this.context(entry.kind, entry.name));
    const added = await this.database.run(
      `INSERT INTO keys (kind, name, state, public_pem, private_key, encryption_key_id, created_at, changed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [
        entry.kind,
        entry.name,
        entry.state,
        entry.publicPem.toString('utf8'),
        sealed,
        this.encryption.id,
        entry.createdAt,
        entry.changedAt,
      ],
    );
    if (added === 0) throw new AppError('KEY_INVALID', `a key named ${entry.name} exists already`);
  }

  async retire(kind: KeyKind, name: string): Promise<void> {
    const changed = await this.database.run(
      "UPDATE keys SET state = 'retired', changed_at = ? WHERE kind = ? AND name = ? AND state = 'active'",
      [Date.now(), kind, name],
    );
    if (changed === 0) throw new AppError('KEY_NOT_FOUND', `no active signing key named ${name}`);
  }

  async restore(kind: KeyKind, name: string): Promise<Buffer> {
    return this.database.transact(async () => {
      const row = await this.database.get<KeyRow>(
        "SELECT name, state, public_pem, private_key FROM keys WHERE kind = ? AND name = ? AND state = 'retired'",
        [kind, name],
      );
      if (!row) throw new AppError('KEY_NOT_FOUND', `no retired key named ${name} in ${this.location}`);
      const pem = this.encryption.decrypt(Buffer.from(row.private_key), this.context(kind, name));
      await this.database.run(
        "UPDATE keys SET state = 'active', changed_at = ? WHERE kind = ? AND name = ?",
        [Date.now(), kind, name],
      );
      return pem;
    });
  }
}

/**
 * The key store a configuration names: the data folder's files, or with
 * REEF_DATABASE_URL the database, which then needs the key encryption key.
 */
export function openKeyStore(
  config: {
    dataDir: string;
    databaseUrl?: string | undefined;
    keyEncryptionKey?: string | undefined;
    keyEncryptionKeyFile?: string | undefined;
  },
  database: Database,
): KeyStore {
  if (!config.databaseUrl) return new FileKeyStore(config.dataDir);
  const encryption = KeyEncryption.fromSettings(config);
  if (!encryption) {
    throw new AppError(
      'CONFIG_INVALID',
      'invalid configuration: with REEF_DATABASE_URL the signing keys live in the database, encrypted; ' +
        "set REEF_KEY_ENCRYPTION_KEY_FILE (or REEF_KEY_ENCRYPTION_KEY) to 32 random bytes ('openssl rand -hex 32'), " +
        'the same on every replica',
    );
  }
  return new DatabaseKeyStore(database, encryption);
}
