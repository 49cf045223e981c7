import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { validateRepo } from '../repo/publish.ts';
import { allow } from './auth.ts';

/**
 * Prometheus metrics. Each `Metrics` has its own registry (never prom-client's
 * global one), so tests can build many apps in one process. Label values are
 * bounded: routes are fastify's route patterns, never raw URLs, and repository
 * labels are names reef accepted.
 *
 * A scrape shows the series of a repository (every series with a `repo`
 * label) only to a caller that may read it: a private repository's name,
 * package count and bytes are for its readers (a `*:read` token for
 * Prometheus), not for anyone who can reach /metrics.
 */

/** Whether a scrape may show the series of repository `repo`. */
export type RepoVisibility = (repo: string) => boolean;

export interface RepoUsage {
  repo: string;
  packages: number;
  bytes: number;
}

/** An index's identity; the store's `IndexKey` fits. */
export interface IndexLabels {
  repo: string;
  libc: string;
  arch: string;
}

export type PublishOutcome = 'created' | 'exists' | 'rejected';

/** Seconds: a publish hashes, parses and fsyncs the upload, then waits for its index. */
const PUBLISH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const INDEX_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  private readonly publishes: Counter<'repo' | 'outcome'>;
  private readonly publishDuration: Histogram<'repo'>;
  private readonly indexBuildDuration: Histogram<'repo' | 'libc' | 'arch'>;
  private readonly indexSize: Gauge<'repo' | 'libc' | 'arch'>;
  private readonly indexPackages: Gauge<'repo' | 'libc' | 'arch'>;
  private usageOfThisScrape: Promise<RepoUsage[]> | undefined;

  /** `packagesAndBytesByRepo` is called at scrape time (once per scrape), so keep it to one query. */
  constructor(private readonly packagesAndBytesByRepo: () => RepoUsage[] | Promise<RepoUsage[]>) {
    const registers = [this.registry];
    this.httpRequests = new Counter({
      name: 'reef_http_requests_total',
      help: 'HTTP requests answered, by route pattern ("unmatched" when no route matched)',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'reef_http_request_duration_seconds',
      help: 'Time from request to response, by route pattern',
      labelNames: ['method', 'route'],
      registers,
    });
    this.publishes = new Counter({
      name: 'reef_publish_total',
      help: 'Package uploads by outcome: created, exists (identical bytes), rejected',
      labelNames: ['repo', 'outcome'],
      registers,
    });
    this.publishDuration = new Histogram({
      name: 'reef_publish_duration_seconds',
      help: 'Time to receive, check and store an upload until an index listing it is live',
      labelNames: ['repo'],
      buckets: PUBLISH_BUCKETS,
      registers,
    });
    this.indexBuildDuration = new Histogram({
      name: 'reef_index_build_duration_seconds',
      help: 'Time to build, sign and write an APKINDEX.tar.gz',
      labelNames: ['repo', 'libc', 'arch'],
      buckets: INDEX_BUCKETS,
      registers,
    });
    this.indexSize = new Gauge({
      name: 'reef_index_size_bytes',
      help: 'Size of the live APKINDEX.tar.gz',
      labelNames: ['repo', 'libc', 'arch'],
      registers,
    });
    this.indexPackages = new Gauge({
      name: 'reef_index_packages',
      help: 'Packages listed in the live APKINDEX.tar.gz',
      labelNames: ['repo', 'libc', 'arch'],
      registers,
    });
    const usage = () => this.usage();
    new Gauge({
      name: 'reef_packages',
      help: 'Packages stored, by repository',
      labelNames: ['repo'],
      registers,
      async collect() {
        const rows = await usage();
        this.reset();
        for (const u of rows) this.set({ repo: u.repo }, u.packages);
      },
    });
    new Gauge({
      name: 'reef_stored_bytes',
      help: 'Bytes of package files stored, by repository (before deduplication of identical blobs)',
      labelNames: ['repo'],
      registers,
      async collect() {
        const rows = await usage();
        this.reset();
        for (const u of rows) this.set({ repo: u.repo }, u.bytes);
      },
    });
    collectDefaultMetrics({ register: this.registry });
    // prom-client names three gauges `*_total`, a suffix Prometheus reserves for
    // counters (`promtool check metrics` refuses them). Their per-type series
    // (nodejs_active_handles{type} and the like) stay and sum to the same.
    for (const name of NON_COUNTER_TOTALS) this.registry.removeSingleMetric(name);
  }

  /**
   * One call per scrape for both gauges that need it: the registry starts every
   * collect callback before awaiting any, so a microtask ends it. Both gauges
   * await the one promise (a failure fails the scrape, never reports zeros).
   */
  private usage(): Promise<RepoUsage[]> {
    if (!this.usageOfThisScrape) {
      this.usageOfThisScrape = (async () => this.packagesAndBytesByRepo())();
      queueMicrotask(() => {
        this.usageOfThisScrape = undefined;
      });
    }
    return this.usageOfThisScrape;
  }

  /** The text exposition, without the series of the repositories `visible` refuses. */
  async scrape(visible: RepoVisibility): Promise<string> {
    const text = await this.registry.metrics();
    return text
      .split('\n')
      .filter((line) => {
        const repo = line.startsWith('#') ? undefined : REPO_LABEL.exec(line)?.[1];
        return repo === undefined || repo === INVALID_REPO || visible(repo);
      })
      .join('\n');
  }

  observeHttp(method: string, route: string | undefined, status: number, seconds: number): void {
    const labels = { method, route: route ?? 'unmatched' };
    this.httpRequests.inc({ ...labels, status: String(status) });
    this.httpDuration.observe(labels, seconds);
  }

  observePublish(repo: string, outcome: PublishOutcome, seconds: number): void {
    const label = repoLabel(repo);
    this.publishes.inc({ repo: label, outcome });
    this.publishDuration.observe({ repo: label }, seconds);
  }

  observeIndexBuild(key: IndexLabels, seconds: number, bytes: number, packages: number): void {
    this.indexBuildDuration.observe(labelsOf(key), seconds);
    this.setIndex(key, bytes, packages);
  }

  /** The live index of `key` without a build (e.g. indexes already on disk at start). */
  setIndex(key: IndexLabels, bytes: number, packages: number): void {
    const labels = labelsOf(key);
    this.indexSize.set(labels, bytes);
    this.indexPackages.set(labels, packages);
  }
}

const NON_COUNTER_TOTALS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * The `repo` label of a sample line. Its value is a name validateRepo accepted
 * (no quote, no escape), and no other label's value holds `,repo="`.
 */
const REPO_LABEL = /[{,]repo="([^"]*)"/;

/** The label of uploads naming no valid repository: it names none, so every scrape shows it. */
const INVALID_REPO = '(invalid)';

function labelsOf(key: IndexLabels): { repo: string; libc: string; arch: string } {
  return { repo: key.repo, libc: key.libc, arch: key.arch };
}

/** SECURITY: a rejected upload may name any repository; only valid names become label values. */
function repoLabel(repo: string): string {
  try {
    validateRepo(repo, 'glibc');
    return repo;
  } catch {
    return INVALID_REPO;
  }
}

/**
 * HTTP metrics for every request, and `GET /metrics` in the text exposition
 * format, with the repositories `visibleTo` the request allows (it may refuse
 * the request itself, e.g. 401 for an invalid token).
 */
export function registerMetrics(
  app: FastifyInstance,
  metrics: Metrics,
  visibleTo: (request: FastifyRequest) => RepoVisibility | Promise<RepoVisibility>,
): void {
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeHttp(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
  });
  // Credentials are optional: a token that may read a private repository sees its series.
  app.get('/metrics', { config: { access: allow.optional } }, async (request, reply) => {
    const text = await metrics.scrape(await visibleTo(request));
    return reply.type(metrics.registry.contentType).send(text);
  });
}
