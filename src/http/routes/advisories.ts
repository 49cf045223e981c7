import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { PACKAGE_NAME_RE, toDocumentJson } from '../../advisory/document.ts';
import { AppError } from '../../errors.ts';
import { type AdvisoryChange, type Feed, jsonFeed, MAX_IMPORT_FILES } from '../../repo/advisories.ts';
import { validateRepo } from '../../repo/publish.ts';
import type { Services } from '../../repo/services.ts';
import { allow, callerToken } from '../auth.ts';
import { baseUrl } from '../base-url.ts';
import { parseBody, parseQuery } from '../query.ts';
import { sendBytes } from '../send-file.ts';
import { auditor } from './packages.ts';

/** A package's advisory document: 1 MiB (ADVISORY_LIMITS) plus JSON's overhead. */
const DOCUMENT_BODY_LIMIT = 2 * 1024 * 1024;
/** A whole advisories repository in one import (Wolfi's: ~15 MB of YAML). */
const IMPORT_BODY_LIMIT = 256 * 1024 * 1024;

/** A page of packages with advisories: `after` is the `next` of the page before (a package name). */
export const advisoryListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: z.string().max(128).optional(),
});

/** An import: each file's name (for messages) and text. */
export const importBody = z.strictObject({
  files: z
    .array(z.strictObject({ file: z.string().min(1).max(512), content: z.string() }))
    .min(1)
    .max(MAX_IMPORT_FILES),
});

/** A Sigstore bundle v0.3's media type. */
const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

function checkPackage(repo: string, name: string): void {
  validateRepo(repo, 'glibc');
  if (!PACKAGE_NAME_RE.test(name)) {
    throw new AppError('ADVISORY_INVALID', `'${name.slice(0, 80)}' is not an apk package name`, {
      details: { field: 'package' },
    });
  }
}

/** What the audit log keeps of a write: the ids it touched. */
const changeDetail = (c: AdvisoryChange) => ({ added: c.added, changed: c.changed, removed: c.removed });

/**
 * Security advisories (README, "Security advisories"): a security team writes them per source
 * package (`<repo>:advise`), and scanners read the feeds built from them.
 */
export function registerAdvisoryRoutes(app: FastifyInstance, services: Services): void {
  const { advisories } = services;

  /** Feeds and what is built from them: strong ETag, 304, and caches revalidate (they change). */
  const sendFeed = async (
    request: FastifyRequest,
    reply: FastifyReply,
    repo: string,
    body: Feed,
    contentType = 'application/json',
  ) =>
    sendBytes(request, reply, {
      sha256: body.sha256,
      lastModified: body.changedAt,
      cacheControl: `${(await services.store.getRepo(repo))?.private ? 'private' : 'public'}, no-cache`,
      contentType,
      bytes: body.bytes,
    });

  for (const file of ['security.json', 'security.json.sigstore.json']) {
    app.route<{ Params: { repo: string; libc: string } }>({
      // HEAD routed explicitly, as for the other files: the same headers as GET, its length included.
      method: ['GET', 'HEAD'],
      url: `/:repo/:libc/${file}`,
      exposeHeadRoute: false,
      config: { access: allow.read() },
      handler: async (request, reply) => {
        const { repo, libc } = request.params;
        const base = baseUrl(request, services);
        const feed = await advisories.secdb(repo, libc, base);
        if (file === 'security.json') return sendFeed(request, reply, repo, feed);
        // The feed as served now, signed: what a mirror keeps to prove what reef said, and when.
        const bundle = await advisories.signedFeed(feed, {
          name: 'security.json',
          url: `${base}/${repo}/${libc}/security.json`,
          repo,
          libc,
        });
        const signed = { ...feed, bytes: bundle, sha256: createHash('sha256').update(bundle).digest('hex') };
        return sendFeed(request, reply, repo, signed, SIGSTORE_BUNDLE);
      },
    });
  }

  app.get<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo/advisories',
    { config: { access: allow.read() } },
    async (request) => {
      const { repo } = request.params;
      const { limit, after } = parseQuery(advisoryListQuery, request.query);
      const packages = await advisories.listPackages(repo, limit, after ?? '');
      return { packages, next: packages.length === limit ? packages.at(-1)!.package : null };
    },
  );

  app.get<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo/osv.json',
    { config: { access: allow.read() } },
    async (request, reply) => {
      const { repo } = request.params;
      return sendFeed(request, reply, repo, await advisories.osv(repo));
    },
  );

  app.get<{ Params: { repo: string; file: string } }>(
    '/api/v1/repos/:repo/osv/:file',
    { config: { access: allow.read() } },
    async (request, reply) => {
      const { repo, file } = request.params;
      const all = await advisories.osv(repo);
      if (file === 'all.json') {
        // The feed index, as Chainguard's: every id with its modified time.
        const index = all.records.map((r) => ({ id: r.id, modified: r.modified }));
        return sendFeed(request, reply, repo, jsonFeed(index, all));
      }
      const id = file.endsWith('.json') ? file.slice(0, -5) : undefined;
      const record = id === undefined ? undefined : all.records.find((r) => r.id === id);
      if (!record) throw new AppError('ADVISORY_NOT_FOUND', `${repo} has no advisory ${file.slice(0, 120)}`);
      return sendFeed(request, reply, repo, jsonFeed(record, all));
    },
  );

  app.get<{ Params: { repo: string; name: string } }>(
    '/api/v1/repos/:repo/advisories/:name',
    { config: { access: allow.read() } },
    async (request) => {
      const { repo, name } = request.params;
      checkPackage(repo, name);
      return toDocumentJson(await advisories.get(repo, name));
    },
  );

  app.register(async (scope) => {
    // A document as YAML (as Wolfi keeps them) or JSON.
    scope.addContentTypeParser(
      ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'],
      { parseAs: 'string', bodyLimit: DOCUMENT_BODY_LIMIT },
      (_request, body, done) => done(null, body),
    );
    scope.put<{ Params: { repo: string; name: string } }>(
      '/api/v1/repos/:repo/advisories/:name',
      { bodyLimit: DOCUMENT_BODY_LIMIT, config: { access: allow.scope('advise') } },
      async (request, reply) => {
        const { repo, name } = request.params;
        const token = callerToken(request);
        const audit = auditor(services, request, token, 'advisory.write', `${repo}/${name}`);
        try {
          checkPackage(repo, name);
          if (request.body === undefined || request.body === null) {
            throw new AppError(
              'ADVISORY_INVALID',
              'send the package advisory document (YAML or JSON) as the body',
            );
          }
          const change = await advisories.put(repo, name, request.body);
          await audit.ok(`${repo}/${name}`, changeDetail(change));
          return reply
            .code(200)
            .send({ ...change, document: toDocumentJson(await advisories.get(repo, name)) });
        } catch (err) {
          await audit.rejected(err);
          throw err;
        }
      },
    );
  });

  app.post<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo/advisories/import',
    { bodyLimit: IMPORT_BODY_LIMIT, config: { access: allow.scope('advise') } },
    async (request) => {
      const { repo } = request.params;
      const token = callerToken(request);
      const audit = auditor(services, request, token, 'advisory.import', repo);
      try {
        validateRepo(repo, 'glibc');
        const { files } = parseBody(importBody, request.body);
        const changes = await advisories.import(repo, files);
        // One line per package that changed, as a single write would record it.
        for (const c of changes) {
          if (c.added.length + c.changed.length + c.removed.length > 0) {
            await services.audit.record({
              token,
              action: 'advisory.write',
              target: `${repo}/${c.package}`,
              remoteAddr: request.ip,
              result: 'ok',
              detail: { ...changeDetail(c), import: true },
            });
          }
        }
        const summary = {
          files: files.length,
          packages: changes.length,
          added: changes.reduce((n, c) => n + c.added.length, 0),
          changed: changes.reduce((n, c) => n + c.changed.length, 0),
          removed: changes.reduce((n, c) => n + c.removed.length, 0),
        };
        await audit.ok(repo, summary);
        return summary;
      } catch (err) {
        await audit.rejected(err);
        throw err;
      }
    },
  );
}
