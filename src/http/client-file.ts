import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * The standalone publisher client, as `npm run build` writes it. Two levels
 * up is the project root both from src/http/ (tsx) and from dist/cli/ (the
 * bundle), as for migrations/.
 */
export const CLIENT_FILE = fileURLToPath(new URL('../../dist/client/reef.mjs', import.meta.url));

export interface ClientFile {
  bytes: Buffer;
  sha256: string;
  mtimeMs: number;
}

/** The built client, read again only when the file changed (a rebuild); undefined when not built. */
export function clientFileReader(path = CLIENT_FILE): () => Promise<ClientFile | undefined> {
  let cached: ClientFile | undefined;
  return async () => {
    const info = await stat(path).catch(() => undefined);
    if (!info) return undefined;
    if (cached?.mtimeMs !== info.mtimeMs || cached.bytes.length !== info.size) {
      const bytes = await readFile(path);
      cached = { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), mtimeMs: info.mtimeMs };
    }
    return cached;
  };
}
