import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import { validateRepo } from '../../repo/publish.ts';
import type { Services } from '../../repo/services.ts';
import type { TokenRecord } from '../../repo/tokens.ts';
import { allow, callerToken } from '../auth.ts';
import { parseBody, parseQuery } from '../query.ts';
import { auditor } from './packages.ts';

export const createTokenBody = z.object({
  name: z.string().min(1).max(200),
  scopes: z.array(z.string()).min(1).max(100),
  /** Lifetime in seconds; omitted = no expiry. */
  expiresIn: z
    .number()
    .int()
    .min(60)
    .max(10 * 365 * 86400)
    .optional(),
});

/** os-release ID and VERSION_ID values (os-release(5)): lower-case letters, digits, `.`, `_`, `-`. */
const OS_RELEASE_VALUE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export const repoSettingsBody = z.object({
  private: z.boolean().optional(),
  maxUploadBytes: z
    .number()
    .int()
    .min(1024)
    .max(2 ** 32 - 1)
    .nullable()
    .optional(),
  distro: z
    .object({
      id: z.string().regex(OS_RELEASE_VALUE, 'an os-release ID: a-z, 0-9, `.`, `_`, `-`'),
      version: z
        .string()
        .regex(OS_RELEASE_VALUE, 'an os-release VERSION_ID: a-z, 0-9, `.`, `_`, `-`')
        .optional(),
    })
    .strict()
    .nullable()
    .optional(),
});

export const auditQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().min(1).optional(),
});

/** A page of deleted versions: `after` is the `next` of the page before (`<name>/<version>/<arch>`). */
export const deletedQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: z
    .string()
    .regex(/^[^/]+\/[^/]+\/[^/]+$/, 'the `next` value of the previous page')
    .optional(),
});

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

function tokenJson(t: TokenRecord) {
  return {
    id: t.id,
    name: t.name,
    scopes: t.scopes,
    createdAt: iso(t.createdAt),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
    lastUsedAt: iso(t.lastUsedAt),
  };
}

/** Operator API: tokens, repository settings and the audit log. Every write is audited. */
export function registerAdminRoutes(app: FastifyInstance, services: Services): void {
  app.post('/api/v1/tokens', { config: { access: allow.scope('admin', '*') } }, async (request, reply) => {
    const token = callerToken(request);
    const body = parseBody(createTokenBody, request.body);
    const audit = auditor(services, request, token, 'token.create', body.name);
    try {
      const expiresAt = body.expiresIn === undefined ? undefined : Date.now() + body.expiresIn * 1000;
      const created = await services.tokens.create(body.name, body.scopes, expiresAt);
      await audit.ok(`token/${created.record.id}`, { name: body.name, scopes: body.scopes });
      // The only time the token is shown.
      return reply.code(201).send({ ...tokenJson(created.record), token: created.token });
    } catch (err) {
      await audit.rejected(err);
      throw err;
    }
  });

  app.get('/api/v1/tokens', { config: { access: allow.scope('admin', '*') } }, async () => {
    return { tokens: (await services.tokens.list()).map(tokenJson) };
  });

  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    { config: { access: allow.scope('admin', '*') } },
    async (request, reply) => {
      const token = callerToken(request);
      const audit = auditor(services, request, token, 'token.revoke', `token/${request.params.id}`);
      try {
        if (!/^[1-9][0-9]{0,15}$/.test(request.params.id)) {
          throw new AppError('BAD_REQUEST', `token id '${request.params.id.slice(0, 40)}' is not a number`);
        }
        await services.tokens.revoke(Number(request.params.id));
        await audit.ok();
      } catch (err) {
        await audit.rejected(err);
        throw err;
      }
      return reply.code(204).send();
    },
  );

  app.put<{ Params: { repo: string } }>(
    '/api/v1/repos/:repo',
    { config: { access: allow.scope('admin') } },
    async (request) => {
      const { repo } = request.params;
      const token = callerToken(request);
      const audit = auditor(services, request, token, 'repo.update', repo);
      try {
        validateRepo(repo, 'glibc');
        const body = parseBody(repoSettingsBody, request.body);
        const saved = await services.store.saveRepo(repo, body);
        await audit.ok(repo, body);
        return {
          name: saved.name,
          private: saved.private,
          maxUploadBytes: saved.maxUploadBytes ?? null,
          distro: saved.distro ?? null,
        };
      } catch (err) {
        await audit.rejected(err);
        throw err;
      }
    },
  );

  app.get<{ Params: { repo: string; libc: string } }>(
    '/api/v1/repos/:repo/:libc/deleted',
    { config: { access: allow.scope('admin') } },
    async (request) => {
      const { repo, libc } = request.params;
      validateRepo(repo, libc);
      const q = parseQuery(deletedQuery, request.query);
      const [name, version, arch] = q.after?.split('/') ?? [];
      const page = await services.store.listDeletedVersions(
        repo,
        libc,
        q.limit,
        q.after ? { name: name!, version: version!, arch: arch! } : undefined,
      );
      const last = page.at(-1);
      return {
        deleted: page.map((d) => ({
          name: d.name,
          version: d.version,
          arch: d.arch,
          sha256: d.sha256,
          checksum: d.checksum,
          deletedAt: new Date(d.deletedAt).toISOString(),
        })),
        next: page.length === q.limit && last ? `${last.name}/${last.version}/${last.arch}` : null,
      };
    },
  );

  app.get('/api/v1/keys', { config: { access: allow.scope('admin', '*') } }, async () => {
    return { keys: services.keyRing.active.map((k) => ({ name: k.keyName, publicKey: k.publicPem })) };
  });

  // Rotation, step 1: a new key that signs alongside the current ones; every index is re-signed.
  app.post('/api/v1/keys', { config: { access: allow.scope('admin', '*') } }, async (request, reply) => {
    const token = callerToken(request);
    const audit = auditor(services, request, token, 'key.generate', 'keys');
    try {
      const key = await services.keyRing.generate();
      const indexes = await services.indexer.rebuildAll();
      await audit.ok(`key/${key.keyName}`, { resigned: indexes.length });
      return reply.code(201).send({ name: key.keyName, publicKey: key.publicPem, resigned: indexes.length });
    } catch (err) {
      await audit.rejected(err);
      throw err;
    }
  });

  // Rotation, step 2: the old key stops signing; every index is re-signed without it.
  app.post<{ Params: { keyName: string } }>(
    '/api/v1/keys/:keyName/retire',
    { config: { access: allow.scope('admin', '*') } },
    async (request) => {
      const token = callerToken(request);
      const target = `key/${request.params.keyName}`;
      const audit = auditor(services, request, token, 'key.retire', target);
      try {
        await services.keyRing.retire(request.params.keyName);
        const indexes = await services.indexer.rebuildAll();
        await audit.ok(target, { resigned: indexes.length });
        return { retired: request.params.keyName, resigned: indexes.length };
      } catch (err) {
        await audit.rejected(err);
        throw err;
      }
    },
  );

  app.get('/api/v1/audit', { config: { access: allow.scope('admin', '*') } }, async (request) => {
    const q = parseQuery(auditQuery, request.query);
    const entries = await services.audit.list(q.limit, q.before);
    return {
      entries: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
      next: entries.length === q.limit ? entries.at(-1)!.id : null,
    };
  });
}
