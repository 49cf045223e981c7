import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Services } from '../../repo/services.ts';
import type { Authenticator } from '../auth.ts';
import { decodeCursor, encodeCursor, parseQuery } from '../query.ts';
import { packageJson } from './packages.ts';
import { searchQuery } from './ui.ts';

/** The web interface's search parameters, paged. */
export const apiSearchQuery = searchQuery.extend({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  after: z.string().min(1).max(1000).optional(),
});

/** [tier, name, id] of the last package of the previous page (PackageStore.searchPage). */
const searchCursor = z.tuple([z.number().int().min(0).max(3), z.string().max(1000), z.number().int().min(1)]);

/**
 * The search of the web interface as JSON (README, "Web interface"): the
 * packages the caller may read whose name, description or provides contain
 * `q`, ranked as the page ranks them, a page at a time.
 */
export function registerSearchRoutes(app: FastifyInstance, services: Services, auth: Authenticator): void {
  app.get('/api/v1/search', async (request) => {
    const q = parseQuery(apiSearchQuery, request.query);
    const after = q.after === undefined ? undefined : decodeCursor(searchCursor, q.after);
    const repos = auth.readableRepos(request).filter((r) => q.repo === undefined || r === q.repo);
    const page = services.store.searchPage(
      q.q.trim(),
      repos,
      { libc: q.libc, arch: q.arch },
      { limit: q.limit, after: after && { tier: after[0], name: after[1], id: after[2] } },
    );
    return {
      packages: page.packages.map((p) => packageJson(p, request, services)),
      next: page.next ? encodeCursor([page.next.tier, page.next.name, page.next.id]) : null,
    };
  });
}
