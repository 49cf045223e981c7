import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IndexSigner } from '../apk/signature.ts';
import { publicKeyFingerprint } from '../apk/signature.ts';
import { AppError } from '../errors.ts';
import { FileKeyStore, type KeyStore, type StoredKey } from '../store/key-store.ts';

/**
 * Index signing keys live in <data>/keys as `<keyname>.rsa` (PKCS#8 PEM, 0600)
 * beside `<keyname>.rsa.pub`; the key name clients store in /etc/apk/keys is
 * `<name>-<fingerprint>.rsa.pub` (apko pkg/apk/apk/index.go: apko wants the suffix).
 */

export interface SigningKey {
  /** The public key's file name, e.g. `reef-1a2b3c4d.rsa.pub`. */
  keyName: string;
  privateKey: KeyObject;
  publicPem: string;
}

const generate = promisify(generateKeyPair);
const KEY_NAME_RE = /^[A-Za-z0-9@._+-]+\.rsa\.pub$/;

export function isKeyName(name: string): boolean {
  return KEY_NAME_RE.test(name) && !name.includes('..');
}

/** The keys that sign indexes now, parsed. */
export async function loadSigningKeys(store: KeyStore): Promise<SigningKey[]> {
  const keys: SigningKey[] = [];
  for (const { name, privatePem } of await store.active('index')) {
    try {
      const privateKey = createPrivateKey(privatePem);
      const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
      keys.push({ keyName: name, privateKey, publicPem });
    } catch (err) {
      throw new AppError(
        'KEY_INVALID',
        `signing key ${name} in ${store.location} cannot be read as a PEM private key`,
        {
          cause: err,
        },
      );
    }
  }
  return keys;
}

async function newSigningKey(bits: number, prefix: string): Promise<SigningKey & { privatePem: string }> {
  const { privateKey, publicKey } = await generate('rsa', { modulusLength: bits });
  return {
    keyName: `${prefix}-${publicKeyFingerprint(publicKey)}.rsa.pub`,
    privateKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Generates an RSA key named `<prefix>-<fingerprint>.rsa.pub` into the key store. */
export async function generateSigningKey(
  store: KeyStore,
  bits: number,
  prefix = 'reef',
): Promise<SigningKey> {
  const { privatePem, ...key } = await newSigningKey(bits, prefix);
  await store.add('index', key.keyName, privatePem, key.publicPem);
  return key;
}

/**
 * The active keys, or a first key for a new installation. One with no
 * active key whose indexes were signed before (a retired key, or an index
 * the database says some key signed) gets no new key: apk clients trust
 * only the keys they were given, so a new one would break every install.
 * The operator restores a key, or chooses a new one, with `reef key`.
 */
export async function loadOrCreateSigningKeys(
  store: KeyStore,
  bits: number,
  /** Names of the keys that signed the indexes recorded in the database; asked only when no key loads. */
  signedBefore: () => string[] | Promise<string[]> = () => [],
): Promise<{ keys: SigningKey[]; created: boolean }> {
  const keys = await loadSigningKeys(store);
  if (keys.length > 0) return { keys, created: false };
  const retired = await store.retired('index');
  const signers = await signedBefore();
  if (retired.length > 0 || signers.length > 0) throw noActiveKey(store, retired, signers);
  const { privatePem, ...key } = await newSigningKey(bits, 'reef');
  if (await store.addFirst('index', key.keyName, privatePem, key.publicPem))
    return { keys: [key], created: true };
  // Another replica starting at the same moment made the first key: sign with it.
  return loadOrCreateSigningKeys(store, bits, signedBefore);
}

function noActiveKey(store: KeyStore, retired: string[], signedBefore: string[]): AppError {
  const signers = [...new Set(signedBefore)].sort();
  const facts = [
    signers.length > 0 ? `the indexes were signed by ${signers.join(', ')}` : '',
    retired.length > 0 ? `retired keys: ${retired.join(', ')}` : '',
  ].filter(Boolean);
  const data = store instanceof FileKeyStore ? ` --data ${store.dataDir}` : '';
  const restore =
    retired.length > 0
      ? `restore a retired key with 'reef key restore ${retired.length === 1 ? retired[0] : 'NAME'}${data}', or `
      : store instanceof FileKeyStore
        ? 'restore keys/ from a backup, or '
        : 'restore the keys table from a backup, or ';
  return new AppError(
    'KEY_NONE_ACTIVE',
    `no active index signing key in ${store.location} (${facts.join('; ')}); a new key would ` +
      `sign indexes no client trusts, so none is generated. To start, ${restore}generate a new key ` +
      `with 'reef key init${data}' and give its public key to every client`,
    { details: { retired, signedBefore: signers } },
  );
}

/**
 * A first key for an installation with no active key, which the server will
 * not make on its own once indexes were signed (loadOrCreateSigningKeys).
 * Clients must be given its public key. One with an active key keeps it: a
 * key is added beside others through the server (KeyRing.generate).
 */
export async function initSigningKey(store: KeyStore, bits: number): Promise<SigningKey> {
  const active = await loadSigningKeys(store);
  if (active.length > 0) {
    throw new AppError(
      'KEY_INVALID',
      `${store.location} has an active key (${active.map((k) => k.keyName).join(', ')}); ` +
        "add another through the running server with 'reef key rotate'",
    );
  }
  return generateSigningKey(store, bits);
}

/** Makes a retired key active again; a server signs with it from its next start. */
export async function restoreSigningKey(store: KeyStore, keyName: string): Promise<SigningKey> {
  // SECURITY: the name becomes a path; only a key file name, never a path, gets that far.
  if (!isKeyName(keyName)) throw new AppError('KEY_INVALID', `'${keyName}' is not a key name (NAME.rsa.pub)`);
  const pem = await store.restore('index', keyName);
  try {
    const privateKey = createPrivateKey(pem);
    const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    return { keyName, privateKey, publicPem };
  } catch (err) {
    throw new AppError('KEY_INVALID', `restored key ${keyName} cannot be read as a PEM private key`, {
      cause: err,
    });
  }
}

export function toIndexSigners(keys: SigningKey[], sha1: boolean): IndexSigner[] {
  return keys.map((k) => ({
    keyName: k.keyName,
    privateKey: k.privateKey,
    algorithms: sha1 ? ['RSA256', 'RSA'] : ['RSA256'],
  }));
}

/**
 * The set of keys that sign indexes. Rotation: `generate` adds a key that
 * signs alongside the others; `retire` moves a key to keys/retired/, after
 * which it signs nothing. The caller re-signs every index after a change.
 *
 * Changes run one at a time, each checking the keys on disk: two retirements
 * at once must not both find a second key and leave none. Other processes
 * on the data folder only ever add keys (`reef key init`, `restore`; `reef
 * key retire` goes through this server), and adding cannot break "the last
 * active key stays", so no lock across processes is needed for it.
 */
export class KeyRing {
  private keys: SigningKey[];
  /** The change in progress; the next one starts after it settles. */
  private changing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: KeyStore,
    initial: SigningKey[],
    private readonly bits: number,
    private readonly sha1: boolean,
  ) {
    this.keys = initial;
  }

  get active(): SigningKey[] {
    return this.keys;
  }

  signers(): IndexSigner[] {
    return toIndexSigners(this.keys, this.sha1);
  }

  find(keyName: string): SigningKey | undefined {
    return this.keys.find((k) => k.keyName === keyName);
  }

  generate(prefix = 'reef'): Promise<SigningKey> {
    return this.change(async () => {
      const key = await generateSigningKey(this.store, this.bits, prefix);
      this.keys = await loadSigningKeys(this.store);
      return key;
    });
  }

  retire(keyName: string): Promise<void> {
    return this.change(async () => {
      // The stored keys, not those in memory: a key added by another process counts too.
      const keys = await loadSigningKeys(this.store);
      if (!keys.some((k) => k.keyName === keyName)) {
        throw new AppError('KEY_NOT_FOUND', `no active signing key named ${keyName}`);
      }
      if (keys.length === 1) {
        throw new AppError(
          'KEY_INVALID',
          `${keyName} is the only signing key; generate its successor before retiring it`,
        );
      }
      await this.store.retire('index', keyName);
      this.keys = await loadSigningKeys(this.store);
    });
  }

  /** Runs a change once every change before it has settled. */
  private change<T>(run: () => Promise<T>): Promise<T> {
    const result = this.changing.then(run);
    this.changing = result.catch(() => {});
    return result;
  }
}

/**
 * reef's attestation key (ECDSA P-256), generated at first start like the
 * index key: keys/attestation/<name>.pem (private, 0600) and <name>.pub.pem.
 * Its public half is served as /keys/<name>.pub.pem.
 *
 * reef has one attestation key and no command that rotates it: it signs with
 * the first private key (by name) in the folder. A folder whose attestations
 * were signed before gets no new key: every one of them would stop verifying
 * (clients check them against the key they hold) while the server went on as
 * if nothing were wrong. The operator restores keys/attestation/ instead.
 */
export async function loadOrCreateAttestationKey(
  store: KeyStore,
  /**
   * The keys that signed the attestations the database holds
   * (PackageStore.attestationKeyNames, a scan of the table): asked only when no key loads.
   */
  attestedByKeys: () => string[] | Promise<string[]> = () => [],
): Promise<{ keyName: string; privateKey: KeyObject; publicPem: string }> {
  const existing = await store.active('attestation');
  if (existing.length > 0) return parseAttestationKey(store, existing[0]!);
  const attestedBy = await attestedByKeys();
  if (attestedBy.length > 0) {
    const where = store instanceof FileKeyStore ? join(store.location, 'attestation') : store.location;
    throw new AppError(
      'KEY_ATTESTATION_MISSING',
      `no attestation key in ${where}, yet the database holds attestations signed by ` +
        `${attestedBy.join(', ')}; a new key would leave every one of them unverifiable, so none ` +
        `is generated. Restore ${where} (the private key ${attestedBy[0]!.replace(/\.pub\.pem$/, '.pem')}) ` +
        'from a backup',
      { details: { dir: where, attestedBy } },
    );
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyName = `reef-attestation-${publicKeyFingerprint(publicKey)}.pub.pem`;
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  if (!(await store.addFirst('attestation', keyName, privatePem, publicPem))) {
    // Another replica starting at the same moment made the key: use that one.
    return loadOrCreateAttestationKey(store, attestedByKeys);
  }
  return { keyName, privateKey, publicPem };
}

function parseAttestationKey(
  store: KeyStore,
  stored: StoredKey,
): { keyName: string; privateKey: KeyObject; publicPem: string } {
  try {
    const privateKey = createPrivateKey(stored.privatePem);
    const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    return { keyName: stored.name, privateKey, publicPem };
  } catch (err) {
    throw new AppError('KEY_INVALID', `attestation key ${stored.name} in ${store.location} cannot be read`, {
      cause: err,
    });
  }
}

/**
 * Every attestation public key, by the name attestations record
 * (`<name>.pub.pem`): the stored public keys, and the public halves of the
 * private ones. A public file alone keeps an earlier key's attestations
 * verifiable after the key that signs was replaced by hand. Keys that do not
 * parse are left out: the attestations they should verify show it.
 */
export async function loadAttestationPublicKeys(
  store: KeyStore,
): Promise<Array<{ name: string; key: KeyObject }>> {
  const keys = new Map<string, KeyObject>();
  for (const { name, pem, isPrivate } of await store.publicKeys('attestation')) {
    try {
      const key = isPrivate ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
      if (!keys.has(name)) keys.set(name, key);
    } catch {
      // unreadable: verifies nothing
    }
  }
  return [...keys].map(([name, key]) => ({ name, key }));
}
