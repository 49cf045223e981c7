import { AppError } from '../errors.ts';
import { unsupportedNode } from '../runtime.ts';
import { redactUrl } from '../url-credentials.ts';
import {
  type CliContext,
  CliError,
  type Command,
  EXIT_OUTPUT_CLOSED,
  type OptionSpec,
  splitWord,
} from './command.ts';

/**
 * Runs a command line against a table of commands: what `reef` (main.ts)
 * and the standalone publisher client (client.ts) share.
 */

/** One line per command for a usage text. */
export function listCommands(commands: Command[]): string {
  return commands.map((c) => `  ${c.name.padEnd(10)}${c.summary}`).join('\n');
}

export async function dispatch(
  commands: Command[],
  usage: string,
  argv: string[],
  ctx: CliContext,
): Promise<number> {
  // Every option of every command: what tells `reef --data d serve` that `d` is a value, not the command.
  const allOptions: OptionSpec = Object.assign({}, ...commands.map((c) => c.options));
  const { word, rest } = splitWord(argv, allOptions);
  if (word === undefined) {
    if (argv.includes('--help') || argv.includes('-h')) {
      ctx.stdout.write(`${usage}\n`);
      return 0;
    }
    ctx.stderr.write(`${usage}\n`);
    return 2;
  }
  const command = commands.find((c) => c.name === word);
  if (!command) {
    ctx.stderr.write(`reef: unknown command '${word}'\n\n${usage}\n`);
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

/** The process's command line, run: the one place the CLI touches process.argv and process.env. */
export function runCli(commands: Command[], usage: string): void {
  // Before any command loads: on an older Node, better-sqlite3 crashes rather than fails.
  const unsupported = unsupportedNode();
  if (unsupported) {
    process.stderr.write(`reef: ${unsupported}\n`);
    process.exit(2);
  }
  // `reef … | head`: once the reader is gone, nothing more can be said; end at once and
  // quietly, with the status a program killed by SIGPIPE reports, as coreutils do in a pipe.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(EXIT_OUTPUT_CLOSED);
    });
  }
  // process.env is handed to the commands, which pass it to loadConfig (server
  // settings) or readClientEnv (REEF_URL, REEF_TOKEN).
  const ctx: CliContext = { env: process.env, stdout: process.stdout, stderr: process.stderr };
  dispatch(commands, usage, process.argv.slice(2), ctx).then(exit, (err: unknown) =>
    exit(reportError(err, ctx)),
  );
}
