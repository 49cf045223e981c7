import { AppError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { validateRepo } from '../repo/publish.ts';
import { createServices } from '../repo/services.ts';
import { asUsage, type CliContext, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { configFromFlags, DATA_OPTION_USAGE } from './config-flags.ts';
import { cliAuditor } from './local-data.ts';
import { dataOptions } from './options.ts';

const USAGE = `usage: reef reindex [REPO] [options]

Rebuilds and re-signs the indexes of REPO (every libc and arch), or of every
repository, from the database, and prints each index rebuilt. The same
database state gives byte-identical indexes. It may run next to the server,
but best when no publish is in flight: the server's index writer and this one
do not coordinate, and a package published meanwhile may drop out of the index
until its next rebuild.

options:
${DATA_OPTION_USAGE}
  -h, --help

${EXIT_CODES}`;

export async function runReindex(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('reindex', {
    args,
    options: dataOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length > 1) throw usageError(`unexpected argument '${positionals[1]}'`);
  const repo = positionals[0];
  if (repo !== undefined) asUsage(() => validateRepo(repo, 'glibc'));
  const config = configFromFlags(ctx, values);
  // Progress goes to the user as text; only warnings of the services' own log are worth showing.
  // A maintenance command must not mint an admin token behind the operator's back.
  const services = await createServices(config, createLogger('warn', ctx.stderr), {
    bootstrapAdminToken: false,
  });
  try {
    if (services.generatedKey) {
      ctx.stderr.write(`generated an index signing key: ${services.signingKeys[0]!.keyName}\n`);
    }
    const audited = cliAuditor(services.audit, 'index.rebuild', repo ?? '*');
    const keys = (await services.store.listIndexes())
      .filter((i) => repo === undefined || i.repo === repo)
      .map(({ repo, libc, arch }) => ({ repo, libc, arch }));
    try {
      if (repo !== undefined && keys.length === 0 && !(await services.store.getRepo(repo))) {
        throw new AppError('REPO_NOT_FOUND', `no repository named '${repo}'`);
      }
      await services.indexer.rebuild(keys);
    } catch (err) {
      await audited.rejected(err);
      throw err;
    }
    await audited.ok(repo ?? '*', { indexes: keys.map((k) => `${k.repo}/${k.libc}/${k.arch}`) });
    if (keys.length === 0) {
      ctx.stderr.write(`nothing to rebuild: ${repo ?? 'no repository'} has no index yet\n`);
      return 0;
    }
    for (const key of keys) {
      const index = await services.store.getIndex(key);
      const id = `${key.repo}/${key.libc}/${key.arch}`;
      ctx.stdout.write(
        index?.sha256
          ? `rebuilt ${id}: ${index.packageCount} package${index.packageCount === 1 ? '' : 's'}, signed by ${index.signedBy}\n`
          : `removed ${id}: no packages left\n`,
      );
    }
    return 0;
  } finally {
    await services.close();
  }
}
