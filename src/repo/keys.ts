import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdir, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IndexSigner } from '../apk/signature.ts';
import { publicKeyFingerprint } from '../apk/signature.ts';
import { AppError } from '../errors.ts';
import { fsyncDir } from '../store/blob-store.ts';
import { writeFileAtomic } from './atomic-file.ts';

/**
 * Index signing keys live in <data>/keys as `<keyname>.rsa` (PKCS#8 PEM, 0600)
 * beside `<keyname>.rsa.pub`; the key name clients store in /etc/apk/keys is
 * `<name>-<fingerprint>.rsa.pub` (apk-format.md §3.4: apko wants the suffix).
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

export async function loadSigningKeys(dataDir: string): Promise<SigningKey[]> {
  const dir = join(dataDir, 'keys');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys: SigningKey[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.rsa')).sort()) {
    const keyName = `${file}.pub`;
    try {
      const privateKey = createPrivateKey(await readFile(join(dir, file)));
      const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
      keys.push({ keyName, privateKey, publicPem });
    } catch (err) {
      throw new AppError(
        'KEY_INVALID',
        `signing key ${join(dir, file)} cannot be read as a PEM private key`,
        {
          cause: err,
        },
      );
    }
  }
  return keys;
}

/** Generates an RSA key named `<prefix>-<fingerprint>.rsa.pub` into the data folder. */
export async function generateSigningKey(
  dataDir: string,
  bits: number,
  prefix = 'reef',
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generate('rsa', { modulusLength: bits });
  const keyName = `${prefix}-${publicKeyFingerprint(publicKey)}.rsa.pub`;
  const base = join(dataDir, 'keys', keyName.replace(/\.pub$/, ''));
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await writeFileAtomic(`${base}.pub`, publicPem, 0o644);
  // The private key is written last: a key is only loaded once both halves exist.
  await writeFileAtomic(base, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  return { keyName, privateKey, publicPem };
}

export async function loadOrCreateSigningKeys(
  dataDir: string,
  bits: number,
): Promise<{ keys: SigningKey[]; created: boolean }> {
  const keys = await loadSigningKeys(dataDir);
  if (keys.length > 0) return { keys, created: false };
  return { keys: [await generateSigningKey(dataDir, bits)], created: true };
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
 * at once must not both find a second key and leave none. No other process
 * removes keys (`reef key retire` goes through this server), so no lock
 * across processes is needed for it.
 */
export class KeyRing {
  private keys: SigningKey[];
  /** The change in progress; the next one starts after it settles. */
  private changing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
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
      const key = await generateSigningKey(this.dataDir, this.bits, prefix);
      this.keys = await loadSigningKeys(this.dataDir);
      return key;
    });
  }

  retire(keyName: string): Promise<void> {
    return this.change(async () => {
      // The keys on disk, not those in memory: a key added by another process counts too.
      const keys = await loadSigningKeys(this.dataDir);
      if (!keys.some((k) => k.keyName === keyName)) {
        throw new AppError('KEY_NOT_FOUND', `no active signing key named ${keyName}`);
      }
      if (keys.length === 1) {
        throw new AppError(
          'KEY_INVALID',
          `${keyName} is the only signing key; generate its successor before retiring it`,
        );
      }
      const dir = join(this.dataDir, 'keys');
      const retired = join(dir, 'retired');
      await mkdir(retired, { recursive: true, mode: 0o700 });
      const base = keyName.replace(/\.pub$/, '');
      // The private key goes first: from then on the key no longer loads as a signer.
      await rename(join(dir, base), join(retired, base));
      await rename(join(dir, `${base}.pub`), join(retired, `${base}.pub`));
      await fsyncDir(dir);
      await fsyncDir(retired);
      this.keys = await loadSigningKeys(this.dataDir);
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
 */
export async function loadOrCreateAttestationKey(
  dataDir: string,
): Promise<{ keyName: string; privateKey: KeyObject; publicPem: string }> {
  const dir = join(dataDir, 'keys', 'attestation');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = (await readdir(dir)).filter((f) => f.endsWith('.pem') && !f.endsWith('.pub.pem')).sort();
  if (existing.length > 0) {
    const file = existing[0]!;
    try {
      const privateKey = createPrivateKey(await readFile(join(dir, file)));
      const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
      return { keyName: file.replace(/\.pem$/, '.pub.pem'), privateKey, publicPem };
    } catch (err) {
      throw new AppError('KEY_INVALID', `attestation key ${join(dir, file)} cannot be read`, { cause: err });
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const base = `reef-attestation-${publicKeyFingerprint(publicKey)}`;
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await writeFileAtomic(join(dir, `${base}.pub.pem`), publicPem, 0o644);
  await writeFileAtomic(
    join(dir, `${base}.pem`),
    privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    0o600,
  );
  return { keyName: `${base}.pub.pem`, privateKey, publicPem };
}
