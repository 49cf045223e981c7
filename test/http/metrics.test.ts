import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { Metrics, type RepoUsage, registerMetrics } from '../../src/http/metrics.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import {
  makePrivate,
  publish,
  removeDir,
  startServer,
  TEST_TOKEN,
  type TestServer,
} from '../helpers/server.ts';

/** The app under test here has no repositories to hide. */
const everyRepo = () => true;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (format 0.0.4). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with exactly these labels, or undefined. */
function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} is ambiguous`);
  return found[0]?.value;
}

describe('metrics over HTTP', () => {
  let app: FastifyInstance;
  let metrics: Metrics;
  let usage: RepoUsage[] = [];
  let usageCalls = 0;

  async function scrape(): Promise<Sample[]> {
    const res = await app.inject('/metrics');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], metrics.registry.contentType);
    return parseMetrics(res.body);
  }

  before(async () => {
    metrics = new Metrics(() => {
      usageCalls++;
      return usage;
    });
    app = Fastify();
    registerMetrics(app, metrics, () => everyRepo);
    app.get('/things/:id', async (request) => request.params);
    app.post('/things', async (_request, reply) => reply.code(201).send({ ok: true }));
    app.get('/boom', async () => {
      throw new Error('boom');
    });
    await app.ready();
  });
  after(() => app.close());

  test('requests are counted by method, route pattern and status', async () => {
    for (const id of ['1', '2', '3']) assert.equal((await app.inject(`/things/${id}`)).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/things' })).statusCode, 201);
    assert.equal((await app.inject('/boom')).statusCode, 500);
    assert.equal((await app.inject('/no/such/thing?x=1')).statusCode, 404);
    assert.equal((await app.inject('/nothing-here')).statusCode, 404);

    const samples = await scrape();
    const count = (method: string, route: string, status: string) =>
      sampleValue(samples, 'reef_http_requests_total', { method, route, status });
    assert.equal(count('GET', '/things/:id', '200'), 3);
    assert.equal(count('POST', '/things', '201'), 1);
    assert.equal(count('GET', '/boom', '500'), 1);
    assert.equal(count('GET', 'unmatched', '404'), 2);
    // Raw URLs never become label values.
    assert.ok(!samples.some((s) => Object.values(s.labels).some((v) => /\/things\/\d|no\/such/.test(v))));

    const histogram = (suffix: string, route: string) =>
      sampleValue(samples, `reef_http_request_duration_seconds_${suffix}`, { method: 'GET', route });
    assert.equal(histogram('count', '/things/:id'), 3);
    assert.ok(histogram('sum', '/things/:id')! > 0);
    assert.equal(
      sampleValue(samples, 'reef_http_request_duration_seconds_bucket', {
        method: 'GET',
        route: '/things/:id',
        le: '+Inf',
      }),
      3,
    );
  });

  test('the scrape itself is counted by the next one', async () => {
    const first = sampleValue(await scrape(), 'reef_http_requests_total', {
      method: 'GET',
      route: '/metrics',
      status: '200',
    });
    const second = sampleValue(await scrape(), 'reef_http_requests_total', {
      method: 'GET',
      route: '/metrics',
      status: '200',
    });
    assert.equal(second, (first ?? 0) + 1);
  });

  test('publishes are counted by repo and outcome, with durations', async () => {
    metrics.observePublish('main', 'created', 0.25);
    metrics.observePublish('main', 'created', 0.5);
    metrics.observePublish('main', 'exists', 0.125);
    metrics.observePublish('edge', 'rejected', 0.0625);
    // A rejected upload may name anything; such names do not become label values.
    metrics.observePublish('../../etc', 'rejected', 0.01);
    metrics.observePublish('x'.repeat(500), 'rejected', 0.01);

    const samples = await scrape();
    const total = (repo: string, outcome: string) =>
      sampleValue(samples, 'reef_publish_total', { repo, outcome });
    assert.equal(total('main', 'created'), 2);
    assert.equal(total('main', 'exists'), 1);
    assert.equal(total('main', 'rejected'), undefined);
    assert.equal(total('edge', 'rejected'), 1);
    assert.equal(total('(invalid)', 'rejected'), 2);
    assert.equal(sampleValue(samples, 'reef_publish_duration_seconds_count', { repo: 'main' }), 3);
    assert.equal(sampleValue(samples, 'reef_publish_duration_seconds_sum', { repo: 'main' }), 0.875);
    assert.equal(
      sampleValue(samples, 'reef_publish_duration_seconds_bucket', { repo: 'main', le: '0.25' }),
      2,
      '0.125 and 0.25 fall in le=0.25',
    );
  });

  test('index builds set size and package gauges, per index', async () => {
    const key = { repo: 'main', libc: 'musl', arch: 'x86_64' };
    const other = { repo: 'main', libc: 'glibc', arch: 'aarch64' };
    metrics.observeIndexBuild(key, 0.02, 1000, 3);
    metrics.observeIndexBuild(key, 0.04, 1500, 4);
    metrics.observeIndexBuild(other, 0.01, 700, 1);

    let samples = await scrape();
    assert.equal(sampleValue(samples, 'reef_index_size_bytes', key), 1500);
    assert.equal(sampleValue(samples, 'reef_index_packages', key), 4);
    assert.equal(sampleValue(samples, 'reef_index_build_duration_seconds_count', key), 2);
    assert.ok(Math.abs(sampleValue(samples, 'reef_index_build_duration_seconds_sum', key)! - 0.06) < 1e-9);
    assert.equal(sampleValue(samples, 'reef_index_size_bytes', other), 700);

    // Seeding an index that exists at start, without a build.
    const seeded = { repo: 'main', libc: 'musl', arch: 'riscv64' };
    metrics.setIndex(seeded, 42, 2);
    samples = await scrape();
    assert.equal(sampleValue(samples, 'reef_index_size_bytes', seeded), 42);
    assert.equal(sampleValue(samples, 'reef_index_build_duration_seconds_count', seeded), undefined);
  });

  test('packages and stored bytes per repo are read at scrape time, once per scrape', async () => {
    usage = [
      { repo: 'main', packages: 12, bytes: 34_000 },
      { repo: 'edge', packages: 1, bytes: 500 },
    ];
    usageCalls = 0;
    let samples = await scrape();
    assert.equal(usageCalls, 1);
    assert.equal(sampleValue(samples, 'reef_packages', { repo: 'main' }), 12);
    assert.equal(sampleValue(samples, 'reef_stored_bytes', { repo: 'main' }), 34_000);
    assert.equal(sampleValue(samples, 'reef_packages', { repo: 'edge' }), 1);

    // A repository that is gone disappears; new numbers show at once.
    usage = [{ repo: 'main', packages: 13, bytes: 35_000 }];
    samples = await scrape();
    assert.equal(usageCalls, 2);
    assert.equal(sampleValue(samples, 'reef_packages', { repo: 'main' }), 13);
    assert.equal(sampleValue(samples, 'reef_stored_bytes', { repo: 'main' }), 35_000);
    assert.equal(sampleValue(samples, 'reef_packages', { repo: 'edge' }), undefined);
    assert.equal(sampleValue(samples, 'reef_stored_bytes', { repo: 'edge' }), undefined);
  });

  test('default process metrics are exported', async () => {
    const names = new Set((await scrape()).map((s) => s.name));
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(names.has(name), name);
    }
  });
});

describe('metrics registries', () => {
  test('every Metrics has its own registry', async () => {
    const a = new Metrics(() => []);
    const b = new Metrics(() => [{ repo: 'only-b', packages: 1, bytes: 2 }]);
    a.observePublish('main', 'created', 1);
    const fromA = parseMetrics(await a.registry.metrics());
    const fromB = parseMetrics(await b.registry.metrics());
    assert.equal(sampleValue(fromA, 'reef_publish_total', { repo: 'main', outcome: 'created' }), 1);
    assert.equal(sampleValue(fromB, 'reef_publish_total', { repo: 'main', outcome: 'created' }), undefined);
    assert.equal(sampleValue(fromA, 'reef_packages', { repo: 'only-b' }), undefined);
    assert.equal(sampleValue(fromB, 'reef_packages', { repo: 'only-b' }), 1);
  });

  test('a failing usage query fails the scrape loudly rather than reporting zeros', async () => {
    const metrics = new Metrics(() => {
      throw new Error('database is closed');
    });
    const app = Fastify({ logger: false });
    registerMetrics(app, metrics, () => everyRepo);
    await app.ready();
    try {
      const res = await app.inject('/metrics');
      assert.equal(res.statusCode, 500);
    } finally {
      await app.close();
    }
  });
});

describe('metrics of private repositories', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
    await makePrivate(server, 'hidden');
    for (const repo of ['open', 'hidden']) {
      assert.equal((await publish(server, repo, 'musl', await buildApk({ name: `in-${repo}` }))).status, 201);
    }
  });
  after(async () => {
    await server.close();
    removeDir(server.dataDir);
  });

  /** The repositories named by any series of a scrape with these credentials. */
  async function reposSeen(token?: string): Promise<Set<string>> {
    const res = await fetch(`${server.url}/metrics`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(
      !/hidden/.test(text) || token !== undefined,
      'an anonymous scrape names the private repository',
    );
    return new Set(
      parseMetrics(text)
        .map((s) => s.labels.repo)
        .filter((r) => r !== undefined),
    );
  }

  test('per-repository series of a private repository need a token that may read it', async () => {
    const { token: reader } = await server.services.tokens.create('reader', ['hidden:read']);
    const { token: other } = await server.services.tokens.create('other', ['open:publish']);
    const { token: prometheus } = await server.services.tokens.create('prometheus', ['*:read']);
    assert.deepEqual([...(await reposSeen())].sort(), ['open']);
    assert.deepEqual([...(await reposSeen(other))].sort(), ['open']);
    for (const token of [reader, prometheus, TEST_TOKEN]) {
      assert.deepEqual([...(await reposSeen(token))].sort(), ['hidden', 'open']);
    }
    // Every per-repository series is there for a reader: packages, bytes, index and publish series.
    const text = await (
      await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${reader}` } })
    ).text();
    const samples = parseMetrics(text);
    for (const name of [
      'reef_packages',
      'reef_stored_bytes',
      'reef_index_packages',
      'reef_index_size_bytes',
      'reef_publish_total',
      'reef_publish_duration_seconds_count',
    ]) {
      assert.ok(
        samples.some((s) => s.name === name && s.labels.repo === 'hidden'),
        `${name} for the private repository`,
      );
    }
    // What is not per repository stays for everyone.
    const anonymous = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
    assert.ok(anonymous.some((s) => s.name === 'reef_http_requests_total'));
    assert.ok(anonymous.some((s) => s.name === 'reef_packages' && s.labels.repo === 'open'));
    // A wrong token is refused, as everywhere.
    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer reef_wrong' } });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { code: string }).code, 'AUTH_INVALID');
  });
});
