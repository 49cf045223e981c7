import { type TokenRecord, validateScopes } from '../repo/tokens.ts';
import {
  asUsage,
  type CliContext,
  EXIT_CODES,
  formatTable,
  isoTime,
  parseCommand,
  runSubcommand,
  shortTime,
  usageError,
} from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { parseDuration } from './duration.ts';
import { cliAuditor, withLocalData } from './local-data.ts';
import { dataOptions, listOptions, tokenCreateOptions, tokenOptions } from './options.ts';

const USAGE = `usage: reef token <create|list|revoke> [options]

Manages API tokens directly in the data folder (the server may be running).

  reef token create --name NAME --scope SCOPE [--scope SCOPE…] [--expires 30d|12h|15m|3600s]
      prints the new token on stdout, once; it is stored only as a hash
      SCOPE is <repo|*>:<read|publish|delete|advise|admin>, e.g. main:publish or *:admin
  reef token list [--json]
      every token with its scopes and state; never the token text
  reef token revoke ID
      the token stops working at once

options:
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

export function runToken(args: string[], ctx: CliContext): Promise<number> {
  return runSubcommand('token', args, ctx, tokenOptions, USAGE, {
    create: createToken,
    list: listTokens,
    revoke: revokeToken,
  });
}

async function createToken(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('token', {
    args,
    options: tokenCreateOptions,
    allowPositionals: true,
  });
  if (values.help) return help(ctx);
  if (positionals.length > 0) throw usageError(`unexpected argument '${positionals[0]}'`);
  const name = values.name?.trim();
  if (!name || name.length > 200) throw usageError('--name is required (1-200 characters)');
  const scopes = values.scope ?? [];
  if (scopes.length === 0) throw usageError('at least one --scope is required, e.g. --scope main:publish');
  const lifetime = values.expires === undefined ? undefined : parseDuration(values.expires);
  const config = configFromFlags(ctx, values);
  return withLocalData(config, ctx.stderr, async ({ tokens, audit }) => {
    const audited = cliAuditor(audit, 'token.create', name);
    let created: Awaited<ReturnType<typeof tokens.create>>;
    try {
      const expiresAt = lifetime === undefined ? undefined : Date.now() + lifetime;
      // A malformed scope is the command line's mistake (usage); create() checks it again.
      asUsage(() => validateScopes(scopes));
      created = await tokens.create(name, scopes, expiresAt);
    } catch (err) {
      await audited.rejected(err);
      throw err;
    }
    const { record, token } = created;
    await audited.ok(`token/${record.id}`, { name, scopes });
    ctx.stdout.write(`${token}\n`);
    ctx.stderr.write(
      `created token ${record.id} '${name}' (${scopes.join(' ')}), expires ${shortTime(record.expiresAt, 'never')}.\n` +
        'It is shown only this once; keep it safe.\n',
    );
    return 0;
  });
}

function tokenState(t: TokenRecord, now: number): 'active' | 'revoked' | 'expired' {
  if (t.revokedAt !== undefined) return 'revoked';
  if (t.expiresAt !== undefined && t.expiresAt <= now) return 'expired';
  return 'active';
}

async function listTokens(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('token', {
    args,
    options: listOptions,
    allowPositionals: true,
  });
  if (values.help) return help(ctx);
  if (positionals.length > 0) throw usageError(`unexpected argument '${positionals[0]}'`);
  const config = configFromFlags(ctx, values);
  const records = await withLocalData(config, ctx.stderr, ({ tokens }) => tokens.list());
  const now = Date.now();
  if (values.json) {
    // The same fields as GET /api/v1/tokens, plus the state; a TokenRecord holds no hash.
    const json = records.map((t) => ({
      id: t.id,
      name: t.name,
      scopes: t.scopes,
      state: tokenState(t, now),
      createdAt: isoTime(t.createdAt),
      expiresAt: isoTime(t.expiresAt),
      revokedAt: isoTime(t.revokedAt),
      lastUsedAt: isoTime(t.lastUsedAt),
    }));
    ctx.stdout.write(`${JSON.stringify({ tokens: json }, null, 2)}\n`);
    return 0;
  }
  if (records.length === 0) {
    ctx.stderr.write("no tokens (create one with 'reef token create')\n");
    return 0;
  }
  const rows = records.map((t) => [
    String(t.id),
    t.name,
    t.scopes.join(','),
    tokenState(t, now),
    shortTime(t.createdAt),
    shortTime(t.expiresAt, 'never'),
    shortTime(t.lastUsedAt, 'never'),
  ]);
  ctx.stdout.write(
    `${formatTable(['ID', 'NAME', 'SCOPES', 'STATE', 'CREATED', 'EXPIRES', 'LAST USED'], rows)}\n`,
  );
  return 0;
}

async function revokeToken(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('token', {
    args,
    options: dataOptions,
    allowPositionals: true,
  });
  if (values.help) return help(ctx);
  if (positionals.length !== 1 || !/^[1-9]\d{0,15}$/.test(positionals[0]!)) {
    throw usageError('usage: reef token revoke ID (the number shown by reef token list)');
  }
  const id = Number(positionals[0]);
  const config = configFromFlags(ctx, values);
  return withLocalData(config, ctx.stderr, async ({ tokens, audit }) => {
    const audited = cliAuditor(audit, 'token.revoke', `token/${id}`);
    const before = await tokens.get(id);
    try {
      await tokens.revoke(id);
    } catch (err) {
      await audited.rejected(err);
      throw err;
    }
    if (before?.revokedAt !== undefined) {
      ctx.stdout.write(`token ${id} '${before.name}' was already revoked\n`);
      return 0;
    }
    await audited.ok();
    ctx.stdout.write(`revoked token ${id} '${before?.name ?? ''}'\n`);
    return 0;
  });
}

function help(ctx: CliContext): number {
  ctx.stdout.write(`${USAGE}\n`);
  return 0;
}
