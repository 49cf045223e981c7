import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode, type ErrorKind } from '../errors.ts';

/** The one place where an error kind becomes an HTTP status. */
const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  unprocessable: 422,
  too_large: 413,
  not_found: 404,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** Codes whose status differs from their kind's. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  STORAGE_FULL: 507,
  RANGE_NOT_SATISFIABLE: 416,
  REQUEST_HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
};

export function statusOf(err: AppError): number {
  return STATUS_BY_CODE[err.code] ?? STATUS[err.kind];
}

export interface ErrorBody {
  code: ErrorCode | string;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * A route's own answer to a body over its limit (route `config.tooLarge`): a
 * document attached on its own is too large as that document, not as an upload.
 */
export interface TooLargeConfig {
  tooLarge?: { code: ErrorCode; what: string; maxBytes: number };
}

declare module 'fastify' {
  interface FastifyContextConfig extends TooLargeConfig {}
}

/** Fastify's own errors (bad JSON, body limits, …) mapped onto reef codes. */
function fromFastify(err: FastifyError, request: FastifyRequest): AppError | undefined {
  const status = err.statusCode ?? 500;
  if (status === 413) {
    const own = request.routeOptions.config?.tooLarge;
    if (own) return new AppError(own.code, `the ${own.what} is larger than ${own.maxBytes} bytes`);
    return new AppError('PUBLISH_TOO_LARGE', err.message);
  }
  if (status === 404) return new AppError('NOT_FOUND', err.message);
  if (status >= 400 && status < 500) return new AppError('BAD_REQUEST', err.message);
  return undefined;
}

export function errorHandler(
  err: FastifyError | AppError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const { status, body } = errorResponse(err, request, reply);
  reply.code(status).send(body);
}

/**
 * The status and body an error answers with, logged, its headers set on
 * `reply`; the caller sends the body (as JSON, or as a page of the web
 * interface).
 */
export function errorResponse(
  err: FastifyError | AppError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): { status: number; body: ErrorBody } {
  const appErr = err instanceof AppError ? err : fromFastify(err as FastifyError, request);
  if (!appErr || appErr.kind === 'internal') {
    // 5xx bodies say nothing of internals; the log has the details.
    request.log.error({ err }, 'request failed');
    return { status: 500, body: { code: 'INTERNAL', message: 'internal server error' } };
  }
  const status = statusOf(appErr);
  if (status >= 500) request.log.error({ err: appErr }, 'request failed');
  else request.log.info({ code: appErr.code, msg: appErr.message }, 'request rejected');
  if (status === 401) reply.header('WWW-Authenticate', 'Basic realm="reef"');
  const retryAfter = appErr.details?.retryAfterSeconds;
  if ((status === 503 || status === 429) && typeof retryAfter === 'number') {
    reply.header('Retry-After', String(retryAfter));
  }
  const body: ErrorBody = { code: appErr.code, message: appErr.message };
  if (appErr.details) body.details = appErr.details;
  return { status, body };
}

/**
 * Answers what Node's HTTP parser refuses before fastify routes anything
 * (headers over the limit, a request that trickles past its timeout,
 * malformed HTTP) in reef's error format, like every other status; then
 * closes the connection, as Node's own answer does.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError(
          'REQUEST_HEADERS_TOO_LARGE',
          'the request headers (or the URL) exceed the size the server reads',
        )
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('REQUEST_TIMEOUT', 'the request did not arrive in time')
        : new AppError('BAD_REQUEST', 'the request is not valid HTTP/1.1');
  const status = statusOf(error);
  const body = JSON.stringify({ code: error.code, message: error.message } satisfies ErrorBody);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
