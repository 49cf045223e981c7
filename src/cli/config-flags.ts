import { type Config, loadConfig } from '../config.ts';
import type { CliContext } from './command.ts';

export const SERVER_OPTIONS_USAGE = `options (each also an environment variable):
  --host ADDR          REEF_HOST        listen address (127.0.0.1)
  --port N             REEF_PORT        listen port, 0 = any free port (8080)
  --data DIR           REEF_DATA_DIR    data folder (./data)
  --public-url URL     REEF_PUBLIC_URL  base URL used in hints
  --log-level LEVEL    REEF_LOG_LEVEL   pino level (info)
  -h, --help`;

export const DATA_OPTION_USAGE = '  --data DIR           REEF_DATA_DIR    data folder (./data)';

export function configFromFlags(
  ctx: CliContext,
  values: { host?: string; port?: string; data?: string; 'public-url'?: string; 'log-level'?: string },
): Config {
  return loadConfig(ctx.env, {
    host: values.host,
    port: values.port,
    dataDir: values.data,
    publicUrl: values['public-url'],
    logLevel: values['log-level'],
  });
}
