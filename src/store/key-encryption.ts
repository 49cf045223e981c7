import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AppError } from '../errors.ts';

/**
 * Private keys kept in a shared database are encrypted at rest with a key the
 * database never sees: AES-256-GCM, a fresh 96-bit nonce per key, and the
 * key's kind and name as associated data, so a ciphertext copied onto another
 * row does not decrypt. A database dump or backup alone signs nothing.
 *
 * The key encryption key comes from REEF_KEY_ENCRYPTION_KEY_FILE (preferred:
 * a mounted secret is not in the process environment, which `ps e`, crash
 * reports and container inspection show) or REEF_KEY_ENCRYPTION_KEY: 32
 * bytes as 64 hex digits or base64.
 */
export class KeyEncryption {
  private constructor(private readonly key: Buffer) {}

  /** Parses 64 hex digits or base64 of exactly 32 bytes. */
  static parse(text: string, source: string): KeyEncryption {
    const trimmed = text.trim();
    const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed)
      ? Buffer.from(trimmed, 'hex')
      : /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)
        ? Buffer.from(trimmed, 'base64')
        : Buffer.alloc(0);
    if (bytes.length !== 32) {
      throw new AppError(
        'CONFIG_INVALID',
        `invalid configuration ${source}: give 32 random bytes as 64 hex digits or base64 (e.g. the output of 'openssl rand -hex 32')`,
      );
    }
    return new KeyEncryption(bytes);
  }

  /** From REEF_KEY_ENCRYPTION_KEY_FILE or REEF_KEY_ENCRYPTION_KEY; undefined when neither is set. */
  static fromSettings(settings: {
    keyEncryptionKey?: string | undefined;
    keyEncryptionKeyFile?: string | undefined;
  }): KeyEncryption | undefined {
    if (settings.keyEncryptionKey && settings.keyEncryptionKeyFile) {
      throw new AppError(
        'CONFIG_INVALID',
        'invalid configuration: set REEF_KEY_ENCRYPTION_KEY_FILE or REEF_KEY_ENCRYPTION_KEY, not both',
      );
    }
    if (settings.keyEncryptionKeyFile) {
      let text: string;
      try {
        text = readFileSync(settings.keyEncryptionKeyFile, 'utf8');
      } catch (err) {
        throw new AppError(
          'CONFIG_INVALID',
          `invalid configuration REEF_KEY_ENCRYPTION_KEY_FILE: cannot read ${settings.keyEncryptionKeyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          { cause: err },
        );
      }
      return KeyEncryption.parse(text, 'REEF_KEY_ENCRYPTION_KEY_FILE');
    }
    if (settings.keyEncryptionKey)
      return KeyEncryption.parse(settings.keyEncryptionKey, 'REEF_KEY_ENCRYPTION_KEY');
    return undefined;
  }

  /** A short, non-secret name for this key: which key encrypted a row, without revealing it. */
  get id(): string {
    return createHash('sha256')
      .update('reef key encryption key id\0')
      .update(this.key)
      .digest('hex')
      .slice(0, 16);
  }

  /** `v1` | nonce (12) | tag (16) | ciphertext. */
  encrypt(plaintext: Buffer, context: string): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([VERSION, nonce, cipher.getAuthTag(), body]);
  }

  decrypt(sealed: Buffer, context: string): Buffer {
    try {
      if (!sealed.subarray(0, VERSION.length).equals(VERSION)) throw new Error('unknown format');
      const nonce = sealed.subarray(VERSION.length, VERSION.length + 12);
      const tag = sealed.subarray(VERSION.length + 12, VERSION.length + 28);
      const decipher = createDecipheriv('aes-256-gcm', this.key, nonce);
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed.subarray(VERSION.length + 28)), decipher.final()]);
    } catch (err) {
      throw new AppError(
        'KEY_ENCRYPTION_KEY_WRONG',
        `the stored private key ${context} does not decrypt with this key encryption key (id ${this.id}): ` +
          'start reef with the REEF_KEY_ENCRYPTION_KEY(_FILE) the keys were stored with',
        { cause: err },
      );
    }
  }
}

const VERSION = Buffer.from('v1', 'ascii');
