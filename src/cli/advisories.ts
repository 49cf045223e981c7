import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { validateRepo } from '../repo/publish.ts';
import { parseServerUrl, readClientEnv } from './client-env.ts';
import { asUsage, type CliContext, CliError, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { advisoriesOptions } from './options.ts';

const USAGE = `usage: reef advisories import DIR --repo REPO [options]

Imports a Wolfi advisories repository into REPO: every <package>.advisories.yaml
in DIR (advisory schema version 2) replaces that package's advisories on the
server. The server checks every file first and writes all or none; a bad file
is named with the field to fix. Packages without a file keep theirs. Needs a
token with REPO:advise.

options:
  --repo REPO     the repository the advisories belong to
  --url URL       the server (REEF_URL; default http://127.0.0.1:8080)
  --token TOKEN   (REEF_TOKEN)
  -h, --help

${EXIT_CODES}`;

const FILE_RE = /\.advisories\.ya?ml$/;

export async function runAdvisories(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('advisories', {
    args,
    options: advisoriesOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [action, dir, ...extra] = positionals;
  if (action !== 'import') throw usageError(action === undefined ? USAGE : `unknown action '${action}'`);
  if (!dir) throw usageError('reef advisories import needs the folder of .advisories.yaml files');
  if (extra.length > 0) throw usageError(`unexpected argument '${extra[0]}'`);
  const repo = values.repo;
  if (!repo) throw usageError('--repo is required');
  asUsage(() => validateRepo(repo, 'glibc'));
  const env = readClientEnv(ctx.env);
  const server = parseServerUrl(values.url ?? env.url, values.token ?? env.token, '--url / REEF_URL');
  if (!server.authorization) throw usageError('no token: set REEF_TOKEN (or pass --token)');

  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw usageError(`${dir}: no such folder`);
  const names = (await readdir(dir)).filter((n) => FILE_RE.test(n)).sort();
  if (names.length === 0) throw usageError(`${dir} holds no <package>.advisories.yaml file`);
  const files = await Promise.all(
    names.map(async (file) => ({ file, content: await readFile(join(dir, file), 'utf8') })),
  );
  const res = await fetch(`${server.url}/api/v1/repos/${encodeURIComponent(repo)}/advisories/import`, {
    method: 'POST',
    headers: { authorization: server.authorization, 'content-type': 'application/json' },
    body: JSON.stringify({ files }),
  });
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
    throw new CliError(
      `import refused, nothing written: ${message}`,
      1,
      typeof body.code === 'string' ? body.code : undefined,
    );
  }
  ctx.stdout.write(
    `imported ${body.files} files into ${repo}: ${body.added} advisories added, ${body.changed} changed, ${body.removed} removed\n`,
  );
  return 0;
}
