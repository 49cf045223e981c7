import { redactUrl, splitCredentials } from '../url-credentials.ts';
import { usageError } from './command.ts';

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

/** A server or repository URL ready for fetch, and the Authorization header to send with it. */
export interface ServerUrl {
  /** Without userinfo and without a trailing slash: safe to print. */
  url: string;
  authorization: string | undefined;
}

/**
 * `text` (named `what` in errors) as an http(s) URL. Credentials in it, as apk
 * takes them (`http://user:TOKEN@host/…`), are sent as HTTP Basic, as apk
 * sends them, and win over `token` (--token or REEF_TOKEN), sent as Bearer.
 */
export function parseServerUrl(text: string, token: string | undefined, what: string): ServerUrl {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw usageError(`${what} '${redactUrl(text).slice(0, 200)}' is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw usageError(`${what} must be http:// or https://, not ${parsed.protocol}`);
  }
  const { url, authorization } = splitCredentials(parsed);
  return {
    url: url.href.replace(/\/+$/, ''),
    authorization: authorization ?? (token ? `Bearer ${token}` : undefined),
  };
}
