import type { FastifyRequest } from 'fastify';
import type { Services } from '../repo/services.ts';

/** The server's public base URL: REEF_PUBLIC_URL, else the request's own. */
export function baseUrl(request: FastifyRequest, services: Services): string {
  return services.config.publicUrl?.replace(/\/$/, '') ?? `${request.protocol}://${request.host}`;
}
