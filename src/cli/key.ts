import { initSigningKey, isKeyName, restoreSigningKey } from '../repo/keys.ts';
import { FileKeyStore, openKeyStore } from '../store/key-store.ts';
import { openDatabase } from '../store/open-database.ts';
import { parseServerUrl, readClientEnv } from './client-env.ts';
import { type CliContext, CliError, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { configFromFlags } from './config-flags.ts';
import { keyOptions } from './options.ts';

const USAGE = `usage: reef key <list|generate|rotate|retire NAME> [--url URL] [--token TOKEN]
       reef key <init|restore NAME> [--data DIR]

Manages the keys that sign the indexes of a running server, through its
admin API (needs a token with *:admin). Rotation is two steps:
  reef key rotate          a new key signs alongside the current ones; every
                           index is re-signed at once. Ship the new public key
                           (GET /keys/NAME) to your clients.
  reef key retire OLD      the old key stops signing; every index is re-signed
                           without it. The last key cannot be retired.
'generate' is the same as 'rotate'.

A server whose data folder has no active key, but whose indexes were signed
before, does not start (a new key would sign indexes no client trusts).
These two work on that data folder, without a server:
  reef key restore NAME    moves a retired key (keys/retired/) back into use
  reef key init            generates a new key; give clients its public key

options:
  --url URL       REEF_URL    the server (http://127.0.0.1:8080)
  --token TOKEN   REEF_TOKEN  an admin token (prefer the variable)
  --data DIR      REEF_DATA_DIR  the data folder of init and restore (./data)
  -h, --help

${EXIT_CODES}`;

export async function runKey(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('key', { args, options: keyOptions, allowPositionals: true });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [action, name, ...extra] = positionals;
  if (extra.length > 0) throw usageError(`unexpected argument '${extra[0]}'`);
  if (action === 'init' || action === 'restore') return runOffline(action, name, values, ctx);
  if (values.data !== undefined)
    throw usageError(`'reef key ${action ?? ''}' talks to a server; --data is for init and restore`);
  const env = readClientEnv(ctx.env);
  const { url, authorization } = parseServerUrl(
    values.url ?? env.url,
    values.token ?? env.token,
    '--url / REEF_URL',
  );
  if (!authorization) throw usageError('reef key needs an admin token: set REEF_TOKEN or pass --token');
  const call = async (method: string, path: string) => {
    const res = await fetch(`${url}${path}`, { method, headers: { authorization } });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
      throw new CliError(message, 1, typeof body.code === 'string' ? body.code : undefined);
    }
    return body;
  };
  switch (action) {
    case 'list': {
      const body = (await call('GET', '/api/v1/keys')) as { keys: Array<{ name: string }> };
      for (const k of body.keys) ctx.stdout.write(`${k.name}\n`);
      return 0;
    }
    case 'generate':
    case 'rotate': {
      if (name !== undefined) throw usageError(`'reef key ${action}' takes no name`);
      const body = (await call('POST', '/api/v1/keys')) as { name: string; resigned: number };
      ctx.stdout.write(`${body.name}\n`);
      ctx.stderr.write(
        `new key ${body.name} signs alongside the others; ${body.resigned} indexes re-signed\n`,
      );
      return 0;
    }
    case 'retire': {
      if (!name) throw usageError('reef key retire needs the key name');
      const body = (await call('POST', `/api/v1/keys/${encodeURIComponent(name)}/retire`)) as {
        resigned: number;
      };
      ctx.stderr.write(`retired ${name}; ${body.resigned} indexes re-signed without it\n`);
      return 0;
    }
    default:
      throw usageError(
        action
          ? `unknown key action '${action}'`
          : 'reef key needs an action: list, rotate, retire, init or restore',
      );
  }
}

/** init and restore: on the data folder of a server that does not run for want of a key. */
async function runOffline(
  action: 'init' | 'restore',
  name: string | undefined,
  values: { data?: string; url?: string; token?: string },
  ctx: CliContext,
): Promise<number> {
  if (values.url !== undefined || values.token !== undefined) {
    throw usageError(`'reef key ${action}' works on the data folder (--data), not through a server`);
  }
  const config = configFromFlags(ctx, values);
  if (action === 'init' && name !== undefined) throw usageError("'reef key init' takes no name");
  if (action === 'restore') {
    if (!name) throw usageError('reef key restore needs the key name');
    if (!isKeyName(name)) throw usageError(`'${name}' is not a key name (NAME.rsa.pub)`, 'KEY_INVALID');
  }
  // The data folder's key files need no database; replicas keep their keys in theirs.
  const database = config.databaseUrl ? (await openDatabase(config)).database : undefined;
  try {
    const store = database ? openKeyStore(config, database) : new FileKeyStore(config.dataDir);
    if (action === 'init') {
      const key = await initSigningKey(store, config.keyBits);
      ctx.stdout.write(`${key.keyName}\n`);
      ctx.stderr.write(
        `new key ${key.keyName} in ${store.location}; give clients its public key (GET /keys/${key.keyName})\n`,
      );
      return 0;
    }
    const key = await restoreSigningKey(store, name!);
    ctx.stderr.write(`restored ${key.keyName}; it signs the indexes from the server's next start\n`);
    return 0;
  } finally {
    await database?.close();
  }
}
