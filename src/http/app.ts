import { createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import multipart from '@fastify/multipart';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { z } from 'zod';
import { APK_ARCHES } from '../apk/pkginfo.ts';
import { AppError, isAppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isKeyName } from '../repo/keys.ts';
import { deletePackage, publishPackage, validateRepo } from '../repo/publish.ts';
import type { Services } from '../repo/services.ts';
import type { TokenInfo } from '../repo/tokens.ts';
import type { IndexKey, StoredPackage } from '../store/package-store.ts';
import { errorHandler } from './errors.ts';
import { sendFile } from './send-file.ts';

/** Builds the fastify app; listening is the caller's business (tests use port 0). */
export async function buildApp(services: Services, log: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Bodies of uploads are streamed by the publish route itself.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 500 },
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send({ code: 'NOT_FOUND', message: `nothing at ${request.method} ${request.url.split('?')[0]}` });
  });

  let ready = false;
  app.addHook('onReady', async () => {
    ready = true;
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    try {
      services.db.prepare('SELECT 1').get();
    } catch {
      return reply.code(503).send({ status: 'database unavailable' });
    }
    if (!ready) return reply.code(503).send({ status: 'starting' });
    return { status: 'ready' };
  });

  registerKeyRoutes(app, services);
  registerApiRoutes(app, services);
  registerRepoRoutes(app, services);
  return app;
}

// ---------------------------------------------------------------- apk client paths

function registerRepoRoutes(app: FastifyInstance, services: Services): void {
  const { store, indexer, blobs, cache } = services;

  app.route<{ Params: { repo: string; libc: string; arch: string; file: string } }>({
    // HEAD is routed explicitly: fastify's generated HEAD route would report a zero length.
    method: ['GET', 'HEAD'],
    url: '/:repo/:libc/:arch/:file',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const { repo, libc, arch, file } = request.params;
      const key = indexKeyOf(repo, libc, arch);
      if (file === 'APKINDEX.tar.gz') {
        // Read the row and open the file it names; retry once if a newer index replaced it meanwhile.
        for (let attempt = 0; attempt < 2; attempt++) {
          const index = store.getIndex(key);
          if (!index?.sha256 || index.size === undefined) break;
          const { sha256, size } = index;
          const path = indexer.indexPath(key, sha256);
          let bytes: Buffer | undefined;
          try {
            bytes = await cache.get(sha256, size, () => readFile(path));
            if (!bytes) await access(path);
          } catch (err) {
            // A newer index replaced this one between the row and the file: read the row again.
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
            throw err;
          }
          return sendFile(request, reply, {
            sha256,
            size,
            lastModified: index.builtAt ?? 0,
            // Indexes change on every publish: caches may keep them but must revalidate.
            cacheControl: 'public, no-cache',
            contentType: 'application/gzip',
            bytes,
            open: (range) => createReadStream(path, range ?? {}),
          });
        }
        throw new AppError('NOT_FOUND', `${repo}/${libc} has no index for ${arch}`);
      }
      if (file.endsWith('.apk')) {
        const pkg = store.findPublishedFile(key, file);
        if (!pkg) throw new AppError('PACKAGE_NOT_FOUND', `${file} is not in ${repo}/${libc}/${arch}`);
        return sendFile(request, reply, {
          sha256: pkg.sha256,
          size: pkg.size,
          lastModified: pkg.uploadedAt,
          // A name-version-arch never changes content (design invariant 4).
          cacheControl: 'public, max-age=31536000, immutable',
          contentType: 'application/vnd.apk',
          bytes: await cache.get(pkg.sha256, pkg.size, () => blobs.readAll(pkg.sha256)),
          open: (range) => blobs.read(pkg.sha256, range),
        });
      }
      throw new AppError('NOT_FOUND', `nothing at /${repo}/${libc}/${arch}/${file}`);
    },
  });
}

function indexKeyOf(repo: string, libc: string, arch: string): IndexKey {
  try {
    validateRepo(repo, libc);
  } catch {
    throw new AppError('NOT_FOUND', `no repository /${repo}/${libc}`);
  }
  if (!APK_ARCHES.has(arch)) throw new AppError('NOT_FOUND', `unknown architecture '${arch}'`);
  return { repo, libc, arch };
}

// ---------------------------------------------------------------- keys

function registerKeyRoutes(app: FastifyInstance, services: Services): void {
  const serveKey = (keyName: string) => {
    const key = isKeyName(keyName) ? services.signingKeys.find((k) => k.keyName === keyName) : undefined;
    if (!key) throw new AppError('KEY_NOT_FOUND', `no public key named ${keyName}`);
    return key.publicPem;
  };
  app.get<{ Params: { keyName: string } }>('/keys/:keyName', async (request, reply) => {
    reply.header('Content-Type', 'application/x-pem-file');
    return serveKey(request.params.keyName);
  });
  app.get('/keys', async () => ({ keys: services.signingKeys.map((k) => k.keyName) }));
  app.get<{ Params: { repo: string; libc: string; keyName: string } }>(
    '/:repo/:libc/:keyName',
    async (request, reply) => {
      indexKeyOf(request.params.repo, request.params.libc, 'noarch');
      reply.header('Content-Type', 'application/x-pem-file');
      return serveKey(request.params.keyName);
    },
  );
}

// ---------------------------------------------------------------- JSON API

const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: z.coerce.number().int().min(0).default(0),
});

function registerApiRoutes(app: FastifyInstance, services: Services): void {
  const { store } = services;

  app.get('/api/v1/repos', async () => {
    const repos = store.listRepos();
    const indexes = store.listIndexes();
    return {
      repos: repos.map((r) => ({
        name: r.name,
        private: r.private,
        indexes: indexes
          .filter((i) => i.repo === r.name && i.sha256)
          .map((i) => ({
            libc: i.libc,
            arch: i.arch,
            packages: i.packageCount,
            sha256: i.sha256,
            size: i.size,
            builtAt: i.builtAt === undefined ? undefined : new Date(i.builtAt).toISOString(),
          })),
      })),
    };
  });

  app.get<{ Params: { repo: string; libc: string; arch: string } }>(
    '/api/v1/repos/:repo/:libc/:arch/packages',
    async (request) => {
      const { repo, libc, arch } = request.params;
      const key = indexKeyOf(repo, libc, arch);
      const q = parseQuery(pageQuery, request.query);
      const packages = store.listPublished(key, q.limit + 1, q.after);
      const page = packages.slice(0, q.limit);
      return {
        packages: page.map((p) => packageJson(p, request, services)),
        next: packages.length > q.limit ? page.at(-1)!.id : null,
      };
    },
  );

  app.get<{ Params: { repo: string; libc: string; arch: string; name: string; version: string } }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version',
    async (request) => {
      const { repo, libc, arch, name, version } = request.params;
      const pkg = store.find(indexKeyOf(repo, libc, arch), name, version);
      if (!pkg || pkg.publishedAt === undefined) {
        throw new AppError('PACKAGE_NOT_FOUND', `${name}-${version} (${arch}) is not in ${repo}/${libc}`);
      }
      return packageJson(pkg, request, services);
    },
  );

  app.register(async (scope) => {
    // Upload bodies are streamed into the parser, never buffered by fastify.
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    await scope.register(multipart, {
      limits: { fileSize: services.config.maxUploadBytes, files: 1, fields: 10 },
    });

    const publish = async (
      request: FastifyRequest<{ Params: { repo: string; libc: string } }>,
      reply: FastifyReply,
    ) => {
      const token = authenticate(request, services);
      const declared = Number(request.headers['content-length'] ?? Number.NaN);
      if (declared > services.config.maxUploadBytes) {
        throw new AppError(
          'PUBLISH_TOO_LARGE',
          `the upload exceeds the limit of ${services.config.maxUploadBytes} bytes`,
        );
      }
      if (declared === 0) throw noBody();
      let body: AsyncIterable<Uint8Array>;
      let truncated = () => false;
      if (request.isMultipart()) {
        const part = await request.file();
        if (part?.fieldname !== 'package') {
          throw new AppError('PUBLISH_NO_BODY', "the multipart form has no file field named 'package'");
        }
        body = part.file;
        // busboy ends the file stream at the size limit and flags it instead of failing.
        truncated = () => part.file.truncated;
      } else {
        // destroyOnReturn: false keeps the socket open so a rejection still reaches the client.
        body = request.raw.iterator({ destroyOnReturn: false });
      }
      try {
        const result = await publishPackage(services, request.params, body);
        request.log.info(
          {
            token: token.name,
            repo: request.params.repo,
            libc: request.params.libc,
            pkg: result.pkg.filename,
            outcome: result.outcome,
          },
          'package published',
        );
        return reply.code(result.outcome === 'created' ? 201 : 200).send({
          ...packageJson(result.pkg, request, services),
          outcome: result.outcome,
          warnings: result.warnings,
        });
      } catch (err) {
        if (!request.raw.complete) {
          reply.header('Connection', 'close');
          request.raw.resume();
        }
        if (isAppError(err, 'APK_EMPTY')) throw noBody();
        if (truncated()) {
          throw new AppError(
            'PUBLISH_TOO_LARGE',
            `the upload exceeds the limit of ${services.config.maxUploadBytes} bytes`,
          );
        }
        throw err;
      }
    };
    scope.post('/api/v1/repos/:repo/:libc/packages', publish);
    scope.put('/api/v1/repos/:repo/:libc/packages', publish);
  });

  app.delete<{ Params: { repo: string; libc: string; arch: string; name: string; version: string } }>(
    '/api/v1/repos/:repo/:libc/:arch/:name/:version',
    async (request, reply) => {
      authenticate(request, services);
      const { repo, libc, arch, name, version } = request.params;
      await deletePackage(services, { repo, libc, arch }, name, version);
      return reply.code(204).send();
    },
  );
}

function noBody(): AppError {
  return new AppError(
    'PUBLISH_NO_BODY',
    "the request has no package: send the .apk as the request body or as multipart field 'package'",
  );
}

function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.infer<T> {
  const parsed = schema.safeParse(query);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AppError('BAD_REQUEST', `query parameter ${String(issue.path[0])}: ${issue.message}`);
  }
  return parsed.data;
}

/** Bearer token, or HTTP Basic with the token as password (apk sends credentials from the repository URL). */
export function authenticate(request: FastifyRequest, services: Services): TokenInfo {
  const header = request.headers.authorization;
  if (!header) throw new AppError('AUTH_REQUIRED', 'this needs a token: send Authorization: Bearer <token>');
  let presented: string | undefined;
  const [scheme, value = ''] = header.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') presented = value.trim();
  else if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    presented = decoded.slice(decoded.indexOf(':') + 1);
  }
  const token = presented ? services.tokens.verify(presented) : undefined;
  if (!token) throw new AppError('AUTH_INVALID', 'the token is not valid (unknown, revoked or expired)');
  return token;
}

function baseUrl(request: FastifyRequest, services: Services): string {
  return services.config.publicUrl?.replace(/\/$/, '') ?? `${request.protocol}://${request.host}`;
}

export function packageJson(p: StoredPackage, request: FastifyRequest, services: Services) {
  const pkginfo: Record<string, string[]> = {};
  for (const [k, v] of p.pkginfo) {
    pkginfo[k] ??= [];
    pkginfo[k].push(v);
  }
  return {
    repo: p.repo,
    libc: p.libc,
    arch: p.arch,
    name: p.name,
    version: p.version,
    filename: p.filename,
    url: `${baseUrl(request, services)}/${p.repo}/${p.libc}/${p.arch}/${p.filename}`,
    size: p.size,
    sha256: p.sha256,
    checksum: p.checksum,
    datahash: p.datahash,
    installedSize: p.installedSize,
    description: p.description,
    projectUrl: p.url,
    license: p.license,
    origin: p.origin,
    maintainer: p.maintainer,
    builddate: p.builddate ?? null,
    commit: p.commit,
    providerPriority: p.providerPriority ?? null,
    depends: p.depends,
    provides: p.provides,
    installIf: p.installIf,
    signatures: p.signatures,
    pkginfo,
    uploadedAt: new Date(p.uploadedAt).toISOString(),
    publishedAt: p.publishedAt === undefined ? null : new Date(p.publishedAt).toISOString(),
  };
}
