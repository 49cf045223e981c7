import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import type { Services } from '../repo/services.ts';
import { redactUrl } from '../url-credentials.ts';
import { Authenticator, allow, enforceAccess, FailedAuthLimiter } from './auth.ts';
import { clientErrorHandler, errorHandler } from './errors.ts';
import { Metrics, registerMetrics } from './metrics.ts';
import { registerOpenApi } from './openapi.ts';
import { registerAdminRoutes } from './routes/admin.ts';
import { registerAdvisoryRoutes } from './routes/advisories.ts';
import { registerPackageFileRoutes } from './routes/package-files.ts';
import { registerPackageRoutes } from './routes/packages.ts';
import { registerRepoFileRoutes } from './routes/repo-files.ts';
import { registerSbomRoutes } from './routes/sbom.ts';
import { registerSearchRoutes } from './routes/search.ts';
import { registerUiRoutes } from './routes/ui.ts';
import { registerVulnerabilityRoutes } from './routes/vulnerabilities.ts';

/** Builds the fastify app; listening is the caller's business (tests use port 0). */
export async function buildApp(
  services: Services,
  log: Logger,
  metrics = new Metrics(() => services.store.usageByRepo()),
): Promise<FastifyInstance> {
  const { requestTimeoutMs, idleTimeoutMs } = services.config;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // JSON bodies of the API are small; uploads are streamed by the publish route itself.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // fastify takes a boolean, a hop count or addresses; the union confuses its overloads.
    trustProxy: services.config.trustProxy as unknown as boolean,
    routerOptions: { maxParamLength: 500 },
    // Malformed percent-encoding and over-long path parameters are refused by the router
    // before any handler: answer them in reef's error format too.
    frameworkErrors: errorHandler,
    // Node's parser refusals (431, 408, 400) get the same {code, message} body.
    clientErrorHandler,
    // fastify turns Node's request timeout off by default; a client that trickles
    // its headers or body is cut off (408) here, one that stalls by the idle timeout.
    requestTimeout: requestTimeoutMs,
    connectionTimeout: idleTimeoutMs,
    http: {
      headersTimeout: Math.min(60_000, requestTimeoutMs || 60_000),
      // Node checks these timeouts on an interval (30 s by default): short timeouts need a shorter one.
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, (requestTimeoutMs || 120_000) / 4)),
    },
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    // An absolute request target (`GET http://user:TOKEN@host/…`) carries its credentials in the url.
    const path = redactUrl(request.url.split('?')[0]!);
    reply.code(404).send({ code: 'NOT_FOUND', message: `nothing at ${request.method} ${path}` });
  });

  // Before any route: every route declares who may call it, and one hook enforces that.
  const auth = new Authenticator(services, new FailedAuthLimiter());
  enforceAccess(app, auth);
  // Before the routes: /metrics shows a repository's series only to callers that may read it.
  registerMetrics(app, metrics, (request) => auth.readableNames(request));
  services.indexer.observer = metrics;
  // Indexes already live at start have no build to report.
  for (const i of await services.store.listIndexes()) {
    if (i.sha256 && i.size !== undefined) metrics.setIndex(i, i.size, i.packageCount);
  }

  // Graceful shutdown: requests in flight finish; their keep-alive connections
  // are then closed, so close() does not wait on idle clients.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('Connection', 'close');
  });

  let ready = false;
  app.addHook('onReady', async () => {
    ready = true;
    // Every serving replica sees to stale indexes and replaced index blobs; commands do not.
    services.indexMaintenance.start();
  });
  app.addHook('onClose', async () => {
    await services.indexMaintenance.stop();
  });
  app.get('/healthz', { config: { access: allow.public } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: allow.public } }, async (_request, reply) => {
    try {
      await services.pingDatabase();
    } catch {
      return reply.code(503).send({ status: 'database unavailable' });
    }
    if (!ready) return reply.code(503).send({ status: 'starting' });
    // A data folder that cannot be written serves reads, but every publish would fail: not ready.
    const storage = await services.writeProbe.check();
    if (storage) {
      return reply
        .code(503)
        .send({ status: 'storage unavailable', code: storage.code, message: storage.message });
    }
    return { status: 'ready' };
  });

  registerAdvisoryRoutes(app, services);
  registerRepoFileRoutes(app, services);
  registerPackageRoutes(app, services, metrics);
  registerPackageFileRoutes(app, services);
  registerAdminRoutes(app, services);
  registerSbomRoutes(app, services, auth);
  registerSearchRoutes(app, services, auth);
  registerVulnerabilityRoutes(app, services, auth);
  registerUiRoutes(app, services, auth);
  registerOpenApi(app);
  return app;
}
