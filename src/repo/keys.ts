import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IndexSigner } from '../apk/signature.ts';
import { publicKeyFingerprint } from '../apk/signature.ts';
import { AppError } from '../errors.ts';
import { fsyncDir, readdirIfExists, translateFsError } from '../store/blob-store.ts';
import { writeFileAtomic } from './atomic-file.ts';

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

/** The keys `retire` moved to keys/retired/, by key name. */
export async function listRetiredKeys(dataDir: string): Promise<string[]> {
  const files = await readdirIfExists(join(dataDir, 'keys', 'retired'));
  return files
    .filter((f) => f.endsWith('.rsa'))
    .sort()
    .map((f) => `${f}.pub`);
}

/**
 * The active keys, or a first key for a new data folder. A folder with no
 * active key whose indexes were signed before (a retired key, or an index
 * the database says some key signed) gets no new key: apk clients trust
 * only the keys they were given, so a new one would break every install.
 * The operator restores a key, or chooses a new one, with `reef key`.
 */
export async function loadOrCreateSigningKeys(
  dataDir: string,
  bits: number,
  /** Names of the keys that signed the indexes recorded in the database; asked only when no key loads. */
  signedBefore: () => Promise<string[]> = async () => [],
): Promise<{ keys: SigningKey[]; created: boolean }> {
  const keys = await loadSigningKeys(dataDir);
  if (keys.length > 0) return { keys, created: false };
  const retired = await listRetiredKeys(dataDir);
  const signers = await signedBefore();
  if (retired.length > 0 || signers.length > 0) throw noActiveKey(dataDir, retired, signers);
  return { keys: [await generateSigningKey(dataDir, bits)], created: true };
}

function noActiveKey(dataDir: string, retired: string[], signedBefore: string[]): AppError {
  const signers = [...new Set(signedBefore)].sort();
  const facts = [
    signers.length > 0 ? `the indexes were signed by ${signers.join(', ')}` : '',
    retired.length > 0 ? `retired keys: ${retired.join(', ')}` : '',
  ].filter(Boolean);
  const data = `--data ${dataDir}`;
  const restore =
    retired.length > 0
      ? `restore a retired key with 'reef key restore ${retired.length === 1 ? retired[0] : 'NAME'} ${data}', or `
      : 'restore keys/ from a backup, or ';
  return new AppError(
    'KEY_NONE_ACTIVE',
    `no active index signing key in ${join(dataDir, 'keys')} (${facts.join('; ')}); a new key would ` +
      `sign indexes no client trusts, so none is generated. To start, ${restore}generate a new key ` +
      `with 'reef key init ${data}' and give its public key to every client`,
    { details: { retired, signedBefore: signers } },
  );
}

/**
 * A first key for a data folder with no active key, which the server will
 * not make on its own once indexes were signed (loadOrCreateSigningKeys).
 * Clients must be given its public key. A folder with an active key keeps
 * it: a key is added beside others through the server (KeyRing.generate).
 */
export async function initSigningKey(dataDir: string, bits: number): Promise<SigningKey> {
  const active = await loadSigningKeys(dataDir);
  if (active.length > 0) {
    throw new AppError(
      'KEY_INVALID',
      `${join(dataDir, 'keys')} has an active key (${active.map((k) => k.keyName).join(', ')}); ` +
        "add another through the running server with 'reef key rotate'",
    );
  }
  return generateSigningKey(dataDir, bits);
}

/** Moves a retired key back into keys/; a server signs with it from its next start. */
export async function restoreSigningKey(dataDir: string, keyName: string): Promise<SigningKey> {
  // SECURITY: the name becomes a path; only a key file name, never a path, gets that far.
  if (!isKeyName(keyName)) throw new AppError('KEY_INVALID', `'${keyName}' is not a key name (NAME.rsa.pub)`);
  const dir = join(dataDir, 'keys');
  const retired = join(dir, 'retired');
  const base = keyName.replace(/\.pub$/, '');
  let pem: Buffer;
  try {
    pem = await readFile(join(retired, base));
  } catch (err) {
    throw new AppError('KEY_NOT_FOUND', `no retired key named ${keyName} in ${retired}`, { cause: err });
  }
  let privateKey: KeyObject;
  let publicPem: string;
  try {
    privateKey = createPrivateKey(pem);
    publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  } catch (err) {
    throw new AppError('KEY_INVALID', `retired key ${keyName} cannot be read as a PEM private key`, {
      cause: err,
    });
  }
  // The public half from the private one (the retired copy may be gone); the private key goes
  // last, as in generateSigningKey: a key is only loaded once both halves exist.
  await writeFileAtomic(join(dir, `${base}.pub`), publicPem, 0o644);
  await rename(join(retired, base), join(dir, base));
  await fsyncDir(dir);
  await rm(join(retired, `${base}.pub`), { force: true });
  await fsyncDir(retired);
  return { keyName, privateKey, publicPem };
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
      const base = keyName.replace(/\.pub$/, '');
      try {
        await mkdir(retired, { recursive: true, mode: 0o700 });
        // The private key goes first: from then on the key no longer loads as a signer.
        await rename(join(dir, base), join(retired, base));
        await rename(join(dir, `${base}.pub`), join(retired, `${base}.pub`));
        await fsyncDir(dir);
        await fsyncDir(retired);
      } catch (err) {
        throw translateFsError(err);
      }
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
 *
 * reef has one attestation key and no command that rotates it: it signs with
 * the first private key (by name) in the folder. A folder whose attestations
 * were signed before gets no new key: every one of them would stop verifying
 * (clients check them against the key they hold) while the server went on as
 * if nothing were wrong. The operator restores keys/attestation/ instead.
 */
export async function loadOrCreateAttestationKey(
  dataDir: string,
  /**
   * The keys that signed the attestations the database holds
   * (PackageStore.attestationKeyNames, a scan of the table): asked only when no key loads.
   */
  attestedByKeys: () => Promise<string[]> = async () => [],
): Promise<{ keyName: string; privateKey: KeyObject; publicPem: string }> {
  const dir = join(dataDir, 'keys', 'attestation');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = (await readdir(dir)).filter(isAttestationPrivateKey).sort();
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
  const attestedBy = await attestedByKeys();
  if (attestedBy.length > 0) {
    throw new AppError(
      'KEY_ATTESTATION_MISSING',
      `no attestation key in ${dir}, yet the database holds attestations signed by ` +
        `${attestedBy.join(', ')}; a new key would leave every one of them unverifiable, so none ` +
        `is generated. Restore ${dir} (the private key ${attestedBy[0]!.replace(/\.pub\.pem$/, '.pem')}) ` +
        'from a backup of the data folder',
      { details: { dir, attestedBy } },
    );
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

const isAttestationPrivateKey = (file: string) => file.endsWith('.pem') && !file.endsWith('.pub.pem');

/**
 * Every attestation public key in keys/attestation/, by the name attestations
 * record (`<name>.pub.pem`): the public files, and the public halves of the
 * private ones. A public file alone keeps an earlier key's attestations
 * verifiable after the key that signs was replaced by hand. Files that do not
 * parse are left out: the attestations they should verify show it.
 */
export async function loadAttestationPublicKeys(
  dataDir: string,
): Promise<Array<{ name: string; key: KeyObject }>> {
  const dir = join(dataDir, 'keys', 'attestation');
  const files = await readdirIfExists(dir);
  const keys = new Map<string, KeyObject>();
  for (const file of files.filter((f) => f.endsWith('.pem')).sort()) {
    try {
      const pem = await readFile(join(dir, file));
      const isPrivate = isAttestationPrivateKey(file);
      const key = isPrivate ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
      const name = isPrivate ? file.replace(/\.pem$/, '.pub.pem') : file;
      if (!keys.has(name)) keys.set(name, key);
    } catch {
      // unreadable: verifies nothing
    }
  }
  return [...keys].map(([name, key]) => ({ name, key }));
}
