import type { Config } from '../config.ts';
import { buildApp } from '../http/app.ts';
import { createLogger } from '../log.ts';
import { createServices } from '../repo/services.ts';
import { type CliContext, EXIT_CODES, parseCommand } from './command.ts';
import { configFromFlags, SERVER_OPTIONS_USAGE } from './config-flags.ts';
import { serverOptions } from './options.ts';

const USAGE = `usage: reef serve [options]

Runs the repository server until SIGINT or SIGTERM.

${SERVER_OPTIONS_USAGE}

${EXIT_CODES}`;

export async function runServe(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommand('serve', { args, options: serverOptions, allowPositionals: true });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  return serve(configFromFlags(ctx, values), ctx);
}

async function serve(config: Config, ctx: CliContext): Promise<number> {
  const log = createLogger(config.logLevel);
  const services = await createServices(config, log);
  const app = await buildApp(services, log);
  const address = await app.listen({ host: config.host, port: config.port });
  const base = config.publicUrl?.replace(/\/$/, '') ?? address;
  const key = services.signingKeys[0]!.keyName;
  const lines = [
    '',
    `reef is serving ${config.dataDir} at ${address}`,
    '',
    'Point apk at a repository (add the key, then the repository line):',
    `  wget -O /etc/apk/keys/${key} ${base}/keys/${key}`,
    `  echo "${base}/<repo>/<glibc|musl>" >> /etc/apk/repositories`,
    '',
    'Publish a package:',
    `  curl -fsS -H "Authorization: Bearer $REEF_TOKEN" --data-binary @hello-1.0-r0.apk ${base}/api/v1/repos/<repo>/<glibc|musl>/packages`,
  ];
  if (services.generatedAdminToken) {
    lines.push(
      '',
      'An admin token was generated. It is shown only this once; keep it safe:',
      `  REEF_TOKEN=${services.generatedAdminToken}`,
    );
  }
  // The banner goes to stderr, away from the JSON log lines on stdout.
  ctx.stderr.write(`${lines.join('\n')}\n\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    await app.close();
    await services.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  return new Promise<number>(() => {});
}
