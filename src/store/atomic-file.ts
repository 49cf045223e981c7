import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, translateFsError } from './blob-store.ts';

/** Writes a file so readers see the old or the new content, never a torn one: temp, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await writeNamedAtomic(
    dirname(path),
    `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`,
    data,
    () => basename(path),
    mode,
  );
}

/**
 * As writeFileAtomic, into `dir` through the temporary file `tmpName`, under
 * the name `nameOf` gives; it runs while the kernel writes the bytes (one
 * write call for all of them), so a name derived from the content (an
 * index's SHA-256) costs no time of its own. Returns the name.
 */
export async function writeNamedAtomic(
  dir: string,
  tmpName: string,
  data: string | Uint8Array,
  nameOf: () => string,
  mode = 0o644,
): Promise<string> {
  const tmp = join(dir, tmpName);
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(tmp, 'wx', mode);
    let name: string;
    try {
      const written = (async () => {
        for (let at = 0; at < bytes.length; )
          at += (await fh.write(bytes, at, bytes.length - at, at)).bytesWritten;
        await fh.sync();
      })();
      try {
        name = nameOf();
      } finally {
        await written;
      }
    } finally {
      await fh.close();
    }
    await rename(tmp, join(dir, name));
    await fsyncDir(dir);
    return name;
  } catch (err) {
    await rm(tmp, { force: true });
    throw translateFsError(err);
  }
}
