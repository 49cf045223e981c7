import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../config.ts';
import { AppError } from '../errors.ts';
import { buildApp } from '../http/app.ts';
import { createLogger } from '../log.ts';
import { createServices } from '../repo/services.ts';
import { migrate, openDb } from '../store/db.ts';

const USAGE = `usage: reef <command> [options]

commands:
  serve     run the repository server
  migrate   apply database migrations and exit

options (each also an environment variable, see README):
  --host ADDR          REEF_HOST        listen address (127.0.0.1)
  --port N             REEF_PORT        listen port, 0 = any free port (8080)
  --data DIR           REEF_DATA_DIR    data folder (./data)
  --public-url URL     REEF_PUBLIC_URL  base URL used in hints
  --log-level LEVEL    REEF_LOG_LEVEL   pino level (info)
  -h, --help

exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      'public-url': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const flags: Partial<Record<keyof Config, unknown>> = {
    host: values.host,
    port: values.port,
    dataDir: values.data,
    publicUrl: values['public-url'],
    logLevel: values['log-level'],
  };
  const config = loadConfig(process.env, flags);
  switch (command) {
    case 'serve':
      return serve(config);
    case 'migrate': {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(config.dataDir, { recursive: true });
      const db = openDb(`${config.dataDir}/reef.db`);
      const result = migrate(db);
      db.close();
      console.log(`schema version ${result.version}; applied: ${result.applied.join(', ') || 'nothing'}`);
      return 0;
    }
    default:
      console.error(`reef: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

async function serve(config: Config): Promise<number> {
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
  process.stderr.write(`${lines.join('\n')}\n\n`);

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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof AppError) {
      console.error(`reef: ${err.message}`);
      process.exit(err.code === 'CONFIG_INVALID' ? 2 : 1);
    }
    console.error(err);
    process.exit(1);
  },
);
