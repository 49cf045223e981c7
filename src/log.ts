import pino, { type DestinationStream, type Logger } from 'pino';
import { redactUrl } from './url-credentials.ts';

export type { Logger };

/** Paths that may carry secrets; pino replaces them before anything is written. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'adminToken',
];

/**
 * Paths that hold a URL: logged with its userinfo redacted. A client may send
 * an absolute request target (`GET http://user:TOKEN@host/… HTTP/1.1`), and
 * fastify logs the target as the request's url.
 */
const URL_PATHS = ['req.url', 'url'];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [...REDACT_PATHS, ...URL_PATHS],
        censor: (value: unknown, path: string[]) =>
          path.at(-1) === 'url' && typeof value === 'string' ? redactUrl(value) : '[redacted]',
      },
    },
    destination,
  );
}
