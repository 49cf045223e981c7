import { AppError } from '../errors.ts';
import { redactUrl } from '../url-credentials.ts';
import {
  type CliContext,
  CliError,
  type Command,
  EXIT_CODES,
  EXIT_OUTPUT_CLOSED,
  type OptionSpec,
  splitWord,
} from './command.ts';
import {
  dataOptions,
  fsckOptions,
  keyOptions,
  publishOptions,
  repoOptions,
  serverOptions,
  tokenOptions,
  verifyOptions,
} from './options.ts';

const COMMANDS: Command[] = [
  {
    name: 'serve',
    summary: 'run the repository server',
    options: serverOptions,
    load: async () => (await import('./serve.ts')).runServe,
  },
  {
    name: 'migrate',
    summary: 'apply database migrations and exit',
    options: serverOptions,
    load: async () => (await import('./migrate.ts')).runMigrate,
  },
  {
    name: 'token',
    summary: 'create, list and revoke API tokens (on the data folder)',
    options: tokenOptions,
    load: async () => (await import('./token.ts')).runToken,
  },
  {
    name: 'repo',
    summary: 'create and list repositories, set their visibility (on the data folder)',
    options: repoOptions,
    load: async () => (await import('./repo.ts')).runRepo,
  },
  {
    name: 'reindex',
    summary: 'rebuild the signed indexes of one repository or all (on the data folder)',
    options: dataOptions,
    load: async () => (await import('./reindex.ts')).runReindex,
  },
  {
    name: 'key',
    summary: 'list, rotate, retire signing keys (through the server); init, restore (on the data folder)',
    options: keyOptions,
    load: async () => (await import('./key.ts')).runKey,
  },
  {
    name: 'backup',
    summary: 'copy the data folder consistently while the server runs',
    options: dataOptions,
    load: async () => (await import('./backup.ts')).runBackup,
  },
  {
    name: 'fsck',
    summary: 'verify every blob and index against the database (on the data folder)',
    options: fsckOptions,
    load: async () => (await import('./fsck.ts')).runFsck,
  },
  {
    name: 'verify',
    summary: "check a package's index, checksums, SBOM, attestation and provenance, offline after download",
    options: verifyOptions,
    load: async () => (await import('./verify.ts')).runVerify,
  },
  {
    name: 'publish',
    summary: 'upload .apk files to a reef server',
    options: publishOptions,
    load: async () => (await import('./publish.ts')).runPublish,
  },
];

const USAGE = `usage: reef <command> [options]

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)}${c.summary}`).join('\n')}

Run 'reef <command> --help' for its options. Settings come from flags, then
environment variables (REEF_DATA_DIR, REEF_PORT, … for the server and the data
folder; REEF_URL and REEF_TOKEN for publish), then REEF_CONFIG (a JSON file).

${EXIT_CODES}`;

/** Every option of every command: what tells `reef --data d serve` that `d` is a value, not the command. */
const ALL_OPTIONS: OptionSpec = Object.assign({}, ...COMMANDS.map((c) => c.options));

export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const { word, rest } = splitWord(argv, ALL_OPTIONS);
  if (word === undefined) {
    if (argv.includes('--help') || argv.includes('-h')) {
      ctx.stdout.write(`${USAGE}\n`);
      return 0;
    }
    ctx.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const command = COMMANDS.find((c) => c.name === word);
  if (!command) {
    ctx.stderr.write(`reef: unknown command '${word}'\n\n${USAGE}\n`);
    return 2;
  }
  const run = await command.load();
  return run(rest, ctx);
}

/**
 * The exit code for a failure, after telling the user what went wrong. A
 * foreign error may quote a URL with its credentials (fetch does): every
 * report has its URLs' userinfo redacted.
 */
export function reportError(err: unknown, ctx: CliContext): number {
  const say = (text: string) => ctx.stderr.write(`reef: ${redactUrl(text)}\n`);
  if (err instanceof CliError) {
    say(`${err.code ? `${err.code}: ` : ''}${err.message}`);
    return err.exitCode;
  }
  if (err instanceof AppError) {
    if (err.code === 'CONFIG_INVALID') {
      say(err.message);
      return 2;
    }
    say(`${err.code}: ${err.message}`);
    return 1;
  }
  say(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 1;
}

/** Exits once what was written to stdout and stderr is out (a pipe may still hold some). */
function exit(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

// `reef … | head`: once the reader is gone, nothing more can be said; end at once and
// quietly, with the status a program killed by SIGPIPE reports, as coreutils do in a pipe.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(EXIT_OUTPUT_CLOSED);
  });
}

// The one place the CLI touches process.env: it is handed to the commands, which
// pass it to loadConfig (server settings) or readClientEnv (REEF_URL, REEF_TOKEN).
const ctx: CliContext = { env: process.env, stdout: process.stdout, stderr: process.stderr };
main(process.argv.slice(2), ctx).then(exit, (err: unknown) => exit(reportError(err, ctx)));
