import { CLIENT_COMMANDS } from './client-commands.ts';
import { EXIT_CODES } from './command.ts';
import { listCommands, runCli } from './run.ts';

/**
 * The publisher's client alone (publish, verify), bundled with its
 * dependencies into one file that reef serves at /client/reef.mjs: CI gets
 * it with curl and runs it on any Node, without a checkout of reef.
 */
const USAGE = `usage: node reef.mjs <command> [options]

commands:
${listCommands(CLIENT_COMMANDS)}

Run 'node reef.mjs <command> --help' for its options. REEF_URL and REEF_TOKEN
name the server and the token.

${EXIT_CODES}`;

runCli(CLIENT_COMMANDS, USAGE);
