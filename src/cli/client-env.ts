/**
 * The publisher's settings from the environment. Only config.ts reads
 * process.env for the server; for the client side of the CLI, main.ts passes
 * process.env in once (as CliContext.env) and this is the one function that
 * looks into it.
 */
export interface ClientEnv {
  /** REEF_URL: the server to talk to. */
  url: string;
  /** REEF_TOKEN: preferred to --token, which other users can see in the process list. */
  token: string | undefined;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export function readClientEnv(env: Record<string, string | undefined>): ClientEnv {
  return {
    url: env.REEF_URL || DEFAULT_URL,
    token: env.REEF_TOKEN || undefined,
  };
}
