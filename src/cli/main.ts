import { EXIT_CODES } from './command.ts';
import { COMMANDS } from './commands.ts';
import { listCommands, runCli } from './run.ts';

const USAGE = `usage: reef <command> [options]

commands:
${listCommands(COMMANDS)}

Run 'reef <command> --help' for its options. Settings come from flags, then
environment variables (REEF_DATA_DIR, REEF_PORT, … for the server and the data
folder; REEF_URL and REEF_TOKEN for publish), then REEF_CONFIG (a JSON file).

${EXIT_CODES}`;

runCli(COMMANDS, USAGE);
