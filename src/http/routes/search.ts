import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Services } from '../../repo/services.ts';
import type { SearchCursor } from '../../store/package-store.ts';
import { type Authenticator, allow } from '../auth.ts';
import { decodeCursor, encodeCursor, parseQuery } from '../query.ts';
import { packageJson } from './packages.ts';
import { searchQuery } from './ui.ts';

/** The web interface's search parameters, paged. */
export const apiSearchQuery = searchQuery.extend({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  after: z.string().min(1).max(1000).optional(),
});

/**
 * Where the previous page ended (PackageStore.searchPage): [tier, name, id] of
 * its last package in tiers 0 to 2 (names containing the text), [3, id] in
 * tier 3 (the rest, newest first).
 */
const searchCursor = z.union([
  z.tuple([z.number().int().min(0).max(2), z.string().max(1000), z.number().int().min(1)]),
  z.tuple([z.literal(3), z.number().int().min(1)]),
]);

/** The cursor as the client holds it. */
function cursorKey(cursor: SearchCursor): [number, string, number] | [3, number] {
  return cursor.tier === 3 ? [3, cursor.id] : [cursor.tier, cursor.name, cursor.id];
}

/**
 * The search of the web interface as JSON (README, "Web interface"): the
 * packages the caller may read whose name, description or provides contain
 * `q`, ranked as the page ranks them, a page at a time.
 */
export function registerSearchRoutes(app: FastifyInstance, services: Services, auth: Authenticator): void {
  app.get('/api/v1/search', { config: { access: allow.optional } }, async (request) => {
    const q = parseQuery(apiSearchQuery, request.query);
    const key = q.after === undefined ? undefined : decodeCursor(searchCursor, q.after);
    const after: SearchCursor | undefined =
      key === undefined
        ? undefined
        : key.length === 2
          ? { tier: 3, id: key[1] }
          : { tier: key[0] as 0 | 1 | 2, name: key[1], id: key[2] };
    const repos = (await auth.readableRepos(request)).filter((r) => q.repo === undefined || r === q.repo);
    const page = await services.store.searchPage(
      q.q.trim(),
      repos,
      { libc: q.libc, arch: q.arch },
      { limit: q.limit, after },
    );
    return {
      packages: await Promise.all(page.packages.map((p) => packageJson(p, request, services))),
      next: page.next ? encodeCursor(cursorKey(page.next)) : null,
    };
  });
}
