import { mkdirSync } from 'node:fs';
import { migrate, openDb } from '../store/db.ts';
import { type CliContext, EXIT_CODES, parseCommand } from './command.ts';
import { configFromFlags, SERVER_OPTIONS_USAGE } from './config-flags.ts';
import { serverOptions } from './options.ts';

const USAGE = `usage: reef migrate [options]

Applies the database migrations to the data folder and exits.

${SERVER_OPTIONS_USAGE}

${EXIT_CODES}`;

export async function runMigrate(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommand('migrate', { args, options: serverOptions, allowPositionals: true });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const config = configFromFlags(ctx, values);
  mkdirSync(config.dataDir, { recursive: true });
  const db = openDb(`${config.dataDir}/reef.db`);
  try {
    const result = migrate(db);
    ctx.stdout.write(
      `schema version ${result.version}; applied: ${result.applied.join(', ') || 'nothing'}\n`,
    );
  } finally {
    db.close();
  }
  return 0;
}
