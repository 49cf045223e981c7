import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { readFileList } from '../../repo/file-list.ts';
import type { Services } from '../../repo/services.ts';
import { allow } from '../auth.ts';
import { decodeCursor, encodeCursor, parseQuery } from '../query.ts';
import { type PackageParams, readablePackage } from './repo-files.ts';

export const fileListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  after: z.string().min(1).max(100).optional(),
});

/** The position in the archive of a page's last entry. */
const fileCursor = z.tuple([z.number().int().min(0)]);

/** Which files a published package installs, in archive order, paged. */
export function registerPackageFileRoutes(app: FastifyInstance, services: Services): void {
  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/files',
    { config: { access: allow.read() } },
    async (request) => {
      const { pkg } = await readablePackage(services, request, request.params);
      const q = parseQuery(fileListQuery, request.query);
      const afterSeq = q.after === undefined ? undefined : decodeCursor(fileCursor, q.after)[0];
      const { total, page } = await readFileList(services, pkg, { limit: q.limit, afterSeq });
      return {
        files: page.files.map(({ seq: _, ...file }) => file),
        total,
        next: page.next === undefined ? null : encodeCursor([page.next]),
      };
    },
  );
}
