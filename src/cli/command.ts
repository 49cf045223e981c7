import { type ParseArgsConfig, parseArgs } from 'node:util';
import { AppError, isAppError } from '../errors.ts';

/** What every command gets: the environment (passed in once, by main.ts) and where to write. */
export interface CliContext {
  env: Record<string, string | undefined>;
  stdout: Output;
  stderr: Output;
}

export interface Output {
  write(text: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export type RunCommand = (args: string[], ctx: CliContext) => Promise<number>;

export interface Command {
  name: string;
  summary: string;
  /** Every option the command (and its subcommands) accepts; main uses them to find the command word. */
  options: OptionSpec;
  /** The command's module is loaded only when it runs: `serve` alone needs fastify. */
  load(): Promise<RunCommand>;
}

export const EXIT_CODES =
  'exit codes: 0 ok, 1 runtime failure or rejection, 2 bad usage or configuration,\n' +
  '  141 the output was closed early (e.g. by head; 128 + SIGPIPE, as coreutils report)';

/**
 * The reader of stdout went away (EPIPE). Node ignores SIGPIPE, so reef exits
 * itself, with the status the shell shows for a program SIGPIPE ended: the
 * command did not finish, and `set -o pipefail` sees that.
 */
export const EXIT_OUTPUT_CLOSED = 141;

/** A failure the CLI reports itself: exit 2 for bad usage, 1 otherwise; `code` when one applies. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string, code?: string): CliError {
  return new CliError(message, 2, code);
}

/** parseArgs (strict by default) with its errors (unknown option, missing value) turned into exit-2 usage errors. */
export function parseCommand<T extends ParseArgsConfig>(
  command: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    if (String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      throw usageError(`${(err as Error).message}\nrun 'reef ${command} --help' for usage`);
    }
    throw err;
  }
}

/**
 * Splits off the first positional word (a command or subcommand) wherever it
 * stands, so `reef --data d serve` and `reef serve --data d` both work: the
 * option spec tells which flags take a value.
 */
export function splitWord(args: string[], options: OptionSpec): { word: string | undefined; rest: string[] } {
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional' || t.kind === 'option-terminator');
  if (first?.kind !== 'positional') return { word: undefined, rest: args };
  return { word: first.value, rest: args.filter((_, i) => i !== first.index) };
}

/** Validation done by the services (kind `invalid`) is, from the command line, bad usage. */
export function asUsage<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (isAppError(err) && err.kind === 'invalid') throw usageError(err.message, err.code);
    throw err;
  }
}

/** The code a failure is audited and reported under. */
export function codeOf(err: unknown): string {
  if (err instanceof AppError) return err.code;
  if (err instanceof CliError && err.code) return err.code;
  return 'INTERNAL';
}

/** Left-aligned columns, for the human listings. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function isoTime(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** A time for people: ISO 8601 to the second, in UTC. */
export function shortTime(ms: number | undefined, none = '-'): string {
  return ms === undefined ? none : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * `reef <command> <subcommand> …`: runs the named subcommand with the rest of
 * the arguments; prints the usage for --help, and refuses a missing or unknown one.
 */
export function runSubcommand(
  command: string,
  args: string[],
  ctx: CliContext,
  options: OptionSpec,
  usage: string,
  subcommands: Record<string, RunCommand>,
): Promise<number> {
  const { word, rest } = splitWord(args, options);
  const names = Object.keys(subcommands);
  if (word === undefined) {
    if (args.includes('--help') || args.includes('-h')) {
      ctx.stdout.write(`${usage}\n`);
      return Promise.resolve(0);
    }
    throw usageError(`reef ${command} needs a subcommand: ${names.join(', ')}\n\n${usage}`);
  }
  const run = subcommands[word];
  if (!run) throw usageError(`unknown subcommand '${command} ${word}'\n\n${usage}`);
  return run(rest, ctx);
}
