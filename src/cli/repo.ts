import { AppError } from '../errors.ts';
import { validateRepo } from '../repo/publish.ts';
import {
  asUsage,
  type CliContext,
  CliError,
  EXIT_CODES,
  formatTable,
  isoTime,
  parseCommand,
  runSubcommand,
  shortTime,
  usageError,
} from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { cliAuditor, withLocalData } from './local-data.ts';
import { dataOptions, listOptions, repoCreateOptions, repoOptions } from './options.ts';

/** The API's bounds: apk 2 reads S: as a 32-bit unsigned number. */
const MIN_UPLOAD = 1024;
const MAX_UPLOAD = 2 ** 32 - 1;

const USAGE = `usage: reef repo <create|list|set-visibility> [options]

Manages repositories directly in the data folder (the server may be running).
A repository also comes into being with its first published package (public).

  reef repo create NAME [--private] [--max-upload-bytes N]
      a new repository; private ones answer 401 to readers without a read token
  reef repo list [--json]
      repositories with their visibility, upload limit and indexes
  reef repo set-visibility NAME public|private

options:
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

export function runRepo(args: string[], ctx: CliContext): Promise<number> {
  return runSubcommand('repo', args, ctx, repoOptions, USAGE, {
    create: createRepo,
    list: listRepos,
    'set-visibility': setVisibility,
  });
}

function repoName(name: string | undefined): string {
  if (name === undefined) throw usageError('a repository NAME is required');
  asUsage(() => validateRepo(name, 'glibc'));
  return name;
}

function parseUploadLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= MIN_UPLOAD && n <= MAX_UPLOAD)) {
    throw usageError(`--max-upload-bytes must be a whole number from ${MIN_UPLOAD} to ${MAX_UPLOAD}`);
  }
  return n;
}

async function createRepo(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('repo', {
    args,
    options: repoCreateOptions,
    allowPositionals: true,
  });
  if (values.help) return help(ctx);
  if (positionals.length > 1) throw usageError(`unexpected argument '${positionals[1]}'`);
  const name = repoName(positionals[0]);
  const maxUploadBytes = parseUploadLimit(values['max-upload-bytes']);
  const config = configFromFlags(ctx, values);
  return withLocalData(config, ctx.stderr, async ({ database, store, audit }) => {
    const audited = cliAuditor(audit, 'repo.create', name);
    const settings = { private: values.private ?? false, maxUploadBytes };
    try {
      // One write transaction, taken before the read: the existence check and the insert see
      // the same database state.
      await database.transact(async () => {
        if (await store.getRepo(name)) {
          throw new CliError(
            `repository '${name}' already exists; change it with 'reef repo set-visibility'`,
            1,
            'REPO_EXISTS',
          );
        }
        await store.saveRepo(name, settings);
      });
    } catch (err) {
      await audited.rejected(err);
      throw err;
    }
    await audited.ok(name, settings);
    const limit = maxUploadBytes === undefined ? '' : `, uploads up to ${maxUploadBytes} bytes`;
    ctx.stdout.write(`created repository ${name} (${settings.private ? 'private' : 'public'}${limit})\n`);
    return 0;
  });
}

async function listRepos(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('repo', {
    args,
    options: listOptions,
    allowPositionals: true,
  });
  if (values.help) return help(ctx);
  if (positionals.length > 0) throw usageError(`unexpected argument '${positionals[0]}'`);
  const config = configFromFlags(ctx, values);
  const { repos, indexes } = await withLocalData(config, ctx.stderr, async ({ store }) => ({
    repos: await store.listRepos(),
    indexes: (await store.listIndexes()).filter((i) => i.sha256),
  }));
  const json = repos.map((r) => ({
    name: r.name,
    private: r.private,
    maxUploadBytes: r.maxUploadBytes ?? null,
    createdAt: isoTime(r.createdAt),
    indexes: indexes
      .filter((i) => i.repo === r.name)
      .map((i) => ({ libc: i.libc, arch: i.arch, packages: i.packageCount, builtAt: isoTime(i.builtAt) })),
  }));
  if (values.json) {
    ctx.stdout.write(`${JSON.stringify({ repos: json }, null, 2)}\n`);
    return 0;
  }
  if (json.length === 0) {
    ctx.stderr.write("no repositories (create one with 'reef repo create')\n");
    return 0;
  }
  const rows = json.map((r) => [
    r.name,
    r.private ? 'private' : 'public',
    r.maxUploadBytes === null ? 'default' : String(r.maxUploadBytes),
    shortTime(Date.parse(r.createdAt!)),
    r.indexes.map((i) => `${i.libc}/${i.arch}:${i.packages}`).join(' ') || '-',
  ]);
  ctx.stdout.write(`${formatTable(['NAME', 'VISIBILITY', 'MAX UPLOAD', 'CREATED', 'INDEXES'], rows)}\n`);
  return 0;
}

async function setVisibility(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('repo', {
    args,
    options: dataOptions,
    allowPositionals: true,
  });
  if (values.help) return help(ctx);
  const [rawName, visibility, extra] = positionals;
  if (extra !== undefined || (visibility !== 'public' && visibility !== 'private')) {
    throw usageError('usage: reef repo set-visibility NAME public|private');
  }
  const name = repoName(rawName);
  const config = configFromFlags(ctx, values);
  return withLocalData(config, ctx.stderr, async ({ database, store, audit }) => {
    const audited = cliAuditor(audit, 'repo.update', name);
    const isPrivate = visibility === 'private';
    try {
      await database.transact(async () => {
        if (!(await store.getRepo(name))) {
          throw new AppError(
            'REPO_NOT_FOUND',
            `no repository named '${name}' (create it with 'reef repo create')`,
          );
        }
        await store.saveRepo(name, { private: isPrivate });
      });
    } catch (err) {
      await audited.rejected(err);
      throw err;
    }
    await audited.ok(name, { private: isPrivate });
    ctx.stdout.write(`repository ${name} is now ${visibility}\n`);
    return 0;
  });
}

function help(ctx: CliContext): number {
  ctx.stdout.write(`${USAGE}\n`);
  return 0;
}
