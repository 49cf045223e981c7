import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Services } from '../../repo/services.ts';
import { type Authenticator, allow, callerToken } from '../auth.ts';
import { decodeCursor, encodeCursor, parseQuery } from '../query.ts';
import { auditor } from './packages.ts';
import { type PackageParams, readablePackage } from './repo-files.ts';

/** An upload of OSV records: osv.dev's per-ecosystem exports run to tens of MB. */
const UPLOAD_BODY_LIMIT = 128 * 1024 * 1024;

export const vulnerabilityQuery = z.object({
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  after: z.string().min(1).max(4000).optional(),
});

const matchCursor = z.strictObject({
  query: z.number().int().min(0),
  component: z
    .strictObject({
      key: z.string().max(2000),
      packageId: z.number().int().min(0),
      id: z.number().int().min(0),
    })
    .optional(),
  packageId: z.number().int().min(0).optional(),
});

const offsetCursor = z.strictObject({ offset: z.number().int().min(0) });

/**
 * Which packages a vulnerability affects (README, "Which packages does a
 * vulnerability affect?"): auditors upload OSV
 * records (`*:advise`), and ask by id or alias, or per package.
 */
export function registerVulnerabilityRoutes(
  app: FastifyInstance,
  services: Services,
  auth: Authenticator,
): void {
  const { vulnerabilities } = services;

  app.post(
    '/api/v1/vulnerabilities',
    { bodyLimit: UPLOAD_BODY_LIMIT, config: { access: allow.scope('advise', '*') } },
    async (request) => {
      const token = callerToken(request);
      const audit = auditor(services, request, token, 'vulnerability.upload', 'osv');
      try {
        const result = await vulnerabilities.upload(request.body);
        await audit.ok('osv', result);
        return result;
      } catch (err) {
        await audit.rejected(err);
        throw err;
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/vulnerabilities/:id',
    { config: { access: allow.optional } },
    async (request) => {
      const q = parseQuery(vulnerabilityQuery, request.query);
      const after = q.after === undefined ? undefined : decodeCursor(matchCursor, q.after);
      const page = await vulnerabilities.affectedBy(request.params.id, await auth.readableRepos(request), {
        limit: q.limit,
        after,
      });
      return { id: request.params.id, ...page, next: page.next ? encodeCursor(page.next) : null };
    },
  );

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/vulnerabilities',
    { config: { access: allow.read() } },
    async (request) => {
      const { pkg } = await readablePackage(services, request, request.params);
      const q = parseQuery(vulnerabilityQuery, request.query);
      // One list, matches first: a page is a slice of it, `after` the position it ends at.
      const after = q.after === undefined ? 0 : decodeCursor(offsetCursor, q.after).offset;
      const found = await vulnerabilities.forPackage(pkg);
      const all = [
        ...found.matches.map((m) => ({ kind: 'match' as const, m })),
        ...found.notEvaluated.map((m) => ({ kind: 'not' as const, m })),
      ];
      const page = all.slice(after, after + q.limit);
      return {
        matches: page.filter((e) => e.kind === 'match').map((e) => e.m),
        notEvaluated: page.filter((e) => e.kind === 'not').map((e) => e.m),
        next: after + q.limit < all.length ? encodeCursor({ offset: after + q.limit }) : null,
      };
    },
  );
}
