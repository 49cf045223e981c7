import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { ERROR_CODES } from '../../src/errors.ts';
import { Metrics, registerMetrics } from '../../src/http/metrics.ts';
import {
  buildOpenApiDocument,
  escapeHtml,
  type OpenApiDocument,
  type OpenApiOperation,
  registerOpenApi,
} from '../../src/http/openapi.ts';
import { buildApk } from '../helpers/apk-builder.ts';
import { publish, removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';

type Json = Record<string, unknown>;

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'patch', 'options', 'trace'];
const doc = buildOpenApiDocument();

function operations(d: OpenApiDocument): Array<{ path: string; method: string; op: OpenApiOperation }> {
  return Object.entries(d.paths).flatMap(([path, item]) =>
    Object.entries(item as Record<string, OpenApiOperation>).map(([method, op]) => ({ path, method, op })),
  );
}

/** Follows a local `#/components/...` reference. */
function deref(value: Json): Json {
  if (typeof value.$ref !== 'string') return value;
  let target: unknown = doc;
  for (const part of value.$ref.replace(/^#\//, '').split('/')) target = (target as Json | undefined)?.[part];
  assert.ok(target && typeof target === 'object', `dangling $ref ${value.$ref}`);
  return target as Json;
}

function* walk(value: unknown): Generator<Json> {
  if (Array.isArray(value)) for (const v of value) yield* walk(v);
  else if (value && typeof value === 'object') {
    yield value as Json;
    for (const v of Object.values(value)) yield* walk(v);
  }
}

/**
 * A small, strict JSON Schema check for the shapes reef documents: $ref,
 * allOf, type (with null), properties/required, items, enum. Objects with
 * declared properties may not carry undeclared ones, so a field added to a
 * route without documenting it fails here.
 */
function conforms(value: unknown, schema: Json, at = '$'): string[] {
  const s = deref(schema);
  if (Array.isArray(s.allOf)) {
    const parts = (s.allOf as Json[]).map(deref);
    const merged: Json = {
      type: 'object',
      properties: Object.assign({}, ...parts.map((p) => p.properties)),
      required: parts.flatMap((p) => (p.required as string[] | undefined) ?? []),
    };
    return conforms(value, merged, at);
  }
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  const actual =
    value === null
      ? 'null'
      : Array.isArray(value)
        ? 'array'
        : Number.isInteger(value)
          ? 'integer'
          : typeof value;
  if (types.length > 0 && !types.includes(actual) && !(actual === 'integer' && types.includes('number'))) {
    return [`${at}: ${actual} is not ${types.join('|')}`];
  }
  if (Array.isArray(s.enum) && !s.enum.includes(value)) return [`${at}: ${String(value)} is not in the enum`];
  const errors: string[] = [];
  if (actual === 'array' && s.items) {
    (value as unknown[]).forEach((v, i) => {
      errors.push(...conforms(v, s.items as Json, `${at}[${i}]`));
    });
  }
  if (actual === 'object' && s.properties) {
    const properties = s.properties as Record<string, Json>;
    const obj = value as Json;
    for (const name of (s.required as string[] | undefined) ?? []) {
      if (!(name in obj)) errors.push(`${at}.${name}: missing`);
    }
    for (const [name, v] of Object.entries(obj)) {
      if (!properties[name]) errors.push(`${at}.${name}: not documented`);
      else errors.push(...conforms(v, properties[name], `${at}.${name}`));
    }
  }
  return errors;
}

/** The schema of a documented response body. */
function responseSchema(path: string, method: string, status: number): Json {
  const op = (doc.paths[path] as Record<string, OpenApiOperation> | undefined)?.[method];
  assert.ok(op, `${method} ${path} is documented`);
  const response = deref(op.responses[String(status)] ?? {});
  const media = (response.content as Record<string, Json> | undefined)?.['application/json'];
  assert.ok(media, `${method} ${path} documents a JSON ${status}`);
  return media.schema as Json;
}

function assertConforms(value: unknown, path: string, method: string, status: number): void {
  assert.deepEqual(conforms(value, responseSchema(path, method, status)), [], `${method} ${path} ${status}`);
}

/**
 * Every route of a fastify app, from `printRoutes({ commonPrefix: false })`:
 * a tree whose nodes each add a piece of path, indented four columns a level.
 */
function routesOf(app: FastifyInstance): Array<{ path: string; methods: string[] }> {
  const routes: Array<{ path: string; methods: string[] }> = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    if (m[3]) routes.push({ path: stack.join(''), methods: m[3].split(', ') });
  }
  return routes;
}

/**
 * One shape for fastify and OpenAPI paths: every parameter becomes `{}`.
 * apk's file names are one route (`/:repo/:libc/:arch/:file`) that the
 * document describes as several paths (the index, `{file}.apk` and the
 * files beside it).
 */
function normalize(path: string): string {
  return path
    .replace(/\/\{file\}[^/]+$/, '/{}')
    .replace(/:[^/]+/g, '{}')
    .replace(/\{\w+\}(\.apk)?/g, '{}')
    .replace(/\/APKINDEX\.tar\.gz$/, '/{}');
}

describe('OpenAPI document', () => {
  test('has the shape of OpenAPI 3.1', () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    const ids = new Set<string>();
    const schemes = Object.keys(doc.components.securitySchemes);
    for (const { path, method, op } of operations(doc)) {
      const where = `${method} ${path}`;
      assert.ok(path.startsWith('/'), where);
      assert.ok(METHODS.includes(method), where);
      assert.ok(op.operationId && !ids.has(op.operationId), `${where}: unique operationId`);
      ids.add(op.operationId);
      assert.ok(Object.keys(op.responses).length > 0, `${where}: responses`);
      for (const [status, response] of Object.entries(op.responses)) {
        assert.match(status, /^([1-5]\d\d|[1-5]XX|default)$/, where);
        assert.equal(typeof deref(response).description, 'string', `${where} ${status}: description`);
      }
      // Each template variable is a required path parameter, and nothing else is.
      const params = (op.parameters ?? []).map((p) => deref(p));
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      const declared = params.filter((p) => p.in === 'path');
      assert.deepEqual(declared.map((p) => p.name).sort(), inPath, `${where}: path parameters`);
      assert.ok(
        declared.every((p) => p.required === true),
        `${where}: path parameters are required`,
      );
      const keys = params.map((p) => `${p.in}:${p.name}`);
      assert.equal(new Set(keys).size, keys.length, `${where}: duplicate parameters`);
      for (const p of params) {
        assert.ok(['path', 'query', 'header', 'cookie'].includes(String(p.in)), where);
        assert.ok(p.schema && typeof p.schema === 'object', `${where}: ${String(p.name)} has a schema`);
      }
      for (const requirement of op.security ?? []) {
        for (const name of Object.keys(requirement)) assert.ok(schemes.includes(name), `${where}: ${name}`);
      }
      if (op.requestBody) assert.ok(deref(op.requestBody).content, `${where}: request body content`);
    }
    // Every reference resolves.
    for (const node of walk(doc)) if (typeof node.$ref === 'string') deref(node);
    // The document is plain JSON.
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(doc)));
  });

  test('the error body lists every stable code', () => {
    const error = doc.components.schemas.Error as Json;
    const properties = error.properties as Record<string, Json>;
    assert.deepEqual(properties.code!.enum, Object.keys(ERROR_CODES));
    assert.deepEqual(error.required, ['code', 'message']);
    assert.ok(properties.details);
  });

  test('request bodies and query parameters come from the zod schemas', () => {
    const createToken = doc.paths['/api/v1/tokens']!.post!;
    const body = (deref(createToken.requestBody!).content as Record<string, Json>)['application/json']!
      .schema as Json;
    assert.deepEqual(body.required, ['name', 'scopes']);
    const props = body.properties as Record<string, Json>;
    assert.equal(props.expiresIn!.minimum, 60);
    assert.equal(props.scopes!.type, 'array');
    assert.equal(body.$schema, undefined);

    const settings = doc.paths['/api/v1/repos/{repo}']!.put!;
    const settingsBody = (settings.requestBody!.content as Record<string, Json>)['application/json']!
      .schema as Json;
    assert.deepEqual(Object.keys(settingsBody.properties as Json).sort(), [
      'distro',
      'maxUploadBytes',
      'private',
    ]);

    const audit = doc.paths['/api/v1/audit']!.get!.parameters!.filter((p) => p.in === 'query');
    assert.deepEqual(audit.map((p) => p.name).sort(), ['before', 'limit']);
    const limit = audit.find((p) => p.name === 'limit')!;
    assert.equal(limit.required, false, 'a parameter with a default is optional');
    assert.deepEqual(
      [(limit.schema as Json).default, (limit.schema as Json).maximum, (limit.schema as Json).type],
      [100, 1000, 'integer'],
    );
    const page = doc.paths['/api/v1/repos/{repo}/{libc}/{arch}/packages']!.get!.parameters!;
    assert.deepEqual(
      page
        .filter((p) => p.in === 'query')
        .map((p) => p.name)
        .sort(),
      ['after', 'limit'],
    );
  });

  test('statuses: publish, auth, and apk downloads', () => {
    const statuses = (path: string, method: string) =>
      Object.keys((doc.paths[path] as Record<string, OpenApiOperation>)[method]!.responses);
    assert.deepEqual(statuses('/api/v1/repos/{repo}/{libc}/packages', 'post'), [
      '200',
      '201',
      '400',
      '401',
      '403',
      '409',
      '413',
      '422',
      '429',
      '507',
    ]);
    for (const path of ['/{repo}/{libc}/{arch}/APKINDEX.tar.gz', '/{repo}/{libc}/{arch}/{file}.apk']) {
      for (const method of ['get', 'head']) {
        for (const s of ['200', '206', '304', '401', '404', '416']) {
          assert.ok(statuses(path, method).includes(s), `${method} ${path} ${s}`);
        }
      }
    }
    assert.deepEqual(statuses('/api/v1/tokens/{id}', 'delete'), ['204', '401', '403', '404', '429']);
    assert.deepEqual(statuses('/healthz', 'get'), ['200']);
    // Writes need a token (both schemes); public reads need none.
    assert.deepEqual(doc.paths['/api/v1/tokens']!.post!.security, [
      { bearerAuth: ['*:admin'] },
      { basicAuth: ['*:admin'] },
    ]);
    assert.deepEqual(doc.paths['/keys']!.get!.security, []);
    assert.ok(doc.paths['/api/v1/repos']!.get!.security!.some((r) => Object.keys(r).length === 0));
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(doc.components.securitySchemes).map(([k, v]) => [k, [v.type, v.scheme]]),
      ),
      { bearerAuth: ['http', 'bearer'], basicAuth: ['http', 'basic'] },
    );
  });

  test('escapeHtml escapes markup and quotes', () => {
    assert.equal(
      escapeHtml(`<script>alert("x" & 'y')</script>`),
      '&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;',
    );
  });
});

describe('OpenAPI routes', () => {
  let app: FastifyInstance;
  before(async () => {
    app = Fastify();
    registerOpenApi(app);
    await app.ready();
  });
  after(() => app.close());

  test('GET /api/v1/openapi.json serves the document', async () => {
    const res = await app.inject('/api/v1/openapi.json');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), JSON.parse(JSON.stringify(buildOpenApiDocument())));
    // Built once: the same bytes every time.
    assert.equal((await app.inject('/api/v1/openapi.json')).body, res.body);
  });

  test('GET /api/v1/docs is one self-contained HTML page with every operation', async () => {
    const res = await app.inject('/api/v1/docs');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    const html = res.body;
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /\s(src|href)="(https?:)?\/\//i, 'no external resources');
    assert.doesNotMatch(html, /<link/i);
    for (const { path, method, op } of operations(doc)) {
      assert.ok(html.includes(`<code>${escapeHtml(path)}</code>`), `${path} is on the page`);
      assert.ok(html.includes(`>${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code>`), path);
      assert.ok(html.includes(escapeHtml(op.summary!)), `${path}: summary`);
    }
    // Schemas and the error codes are there too.
    assert.ok(html.includes('PUBLISH_VERSION_EXISTS'));
    assert.ok(html.includes('id="schema-Error"'));
  });
});

describe('OpenAPI document and the real app', () => {
  let server: TestServer;
  let own: FastifyInstance;
  const auth = { authorization: `Bearer ${TEST_TOKEN}` };

  before(async () => {
    server = await startServer();
    // The routes this module and metrics.ts add, until app.ts registers them itself.
    own = Fastify();
    registerOpenApi(own);
    registerMetrics(own, new Metrics(() => []), () => () => true);
    await own.ready();
  });
  after(async () => {
    await own.close();
    await server.close();
    removeDir(server.dataDir);
  });

  test('every route the app registers is documented, and every documented route exists', () => {
    const real = new Map<string, Set<string>>();
    for (const instance of [server.app, own]) {
      for (const r of routesOf(instance)) {
        const key = normalize(r.path);
        const methods = real.get(key) ?? new Set<string>();
        for (const m of r.methods) methods.add(m.toLowerCase());
        real.set(key, methods);
      }
    }
    assert.ok(real.size > 10, 'parsed the route tree');
    const documented = new Map<string, Set<string>>();
    for (const { path, method } of operations(doc)) {
      const key = normalize(path);
      documented.set(key, (documented.get(key) ?? new Set()).add(method));
    }
    // HEAD is generated by fastify for every GET; only the apk downloads document it.
    for (const [path, methods] of real) {
      for (const method of methods) {
        if (method === 'head') continue;
        assert.ok(documented.get(path)?.has(method), `${method.toUpperCase()} ${path} is not documented`);
      }
    }
    for (const [path, methods] of documented) {
      for (const method of methods) {
        assert.ok(
          real.get(path)?.has(method),
          `${method.toUpperCase()} ${path} is documented but not routed`,
        );
      }
    }
    // Spot checks that the comparison is not vacuous.
    assert.ok(real.get('/api/v1/repos/{}/{}/packages')?.has('post'));
    assert.ok(real.get('/{}/{}/{}/{}')?.has('head'));
  });

  test('real responses match the documented shapes', async () => {
    const get = async (path: string) => {
      const res = await fetch(`${server.url}${path}`, { headers: auth });
      return { status: res.status, body: await res.json() };
    };

    const published = await publish(
      server,
      'main',
      'musl',
      await buildApk({ name: 'hello', version: '1.0-r0' }),
    );
    assert.equal(published.status, 201);
    assertConforms(published.json, '/api/v1/repos/{repo}/{libc}/packages', 'post', 201);
    const again = await publish(server, 'main', 'musl', await buildApk({ name: 'hello', version: '1.0-r0' }));
    assertConforms(again.json, '/api/v1/repos/{repo}/{libc}/packages', 'post', again.status);

    const arch = String(published.json.arch);
    const list = await get(`/api/v1/repos/main/musl/${arch}/packages?limit=1`);
    assert.equal(list.status, 200);
    assertConforms(list.body, '/api/v1/repos/{repo}/{libc}/{arch}/packages', 'get', 200);
    const one = await get(`/api/v1/packages/main/musl/${arch}/hello/1.0-r0`);
    assertConforms(one.body, '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}', 'get', 200);
    const files = await get(`/api/v1/packages/main/musl/${arch}/hello/1.0-r0/files?limit=1`);
    assertConforms(files.body, '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}/files', 'get', 200);
    assertConforms((await get('/api/v1/repos')).body, '/api/v1/repos', 'get', 200);
    const found = await get('/api/v1/search?q=hello');
    assert.equal((found.body.packages as unknown[]).length, 1);
    assertConforms(found.body, '/api/v1/search', 'get', 200);
    assertConforms((await get('/api/v1/search?after=x')).body, '/api/v1/search', 'get', 400);

    const created = await fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ci', scopes: ['main:publish'], expiresIn: 3600 }),
    });
    assert.equal(created.status, 201);
    assertConforms(await created.json(), '/api/v1/tokens', 'post', 201);
    assertConforms((await get('/api/v1/tokens')).body, '/api/v1/tokens', 'get', 200);

    const settings = await fetch(`${server.url}/api/v1/repos/main`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ maxUploadBytes: 1 << 20 }),
    });
    assertConforms(await settings.json(), '/api/v1/repos/{repo}', 'put', 200);
    assertConforms((await get('/api/v1/keys')).body, '/api/v1/keys', 'get', 200);
    assertConforms((await get('/keys')).body, '/keys', 'get', 200);
    assertConforms((await get('/api/v1/audit?limit=2')).body, '/api/v1/audit', 'get', 200);
    assertConforms((await get('/healthz')).body, '/healthz', 'get', 200);

    // Errors: the shared body with a listed code.
    const missing = await get(`/api/v1/packages/main/musl/${arch}/nope/1-r0`);
    assert.equal(missing.status, 404);
    assertConforms(missing.body, '/api/v1/packages/{repo}/{libc}/{arch}/{name}/{version}', 'get', 404);
    const bad = await get('/api/v1/audit?limit=0');
    assert.equal(bad.status, 400);
    assertConforms(bad.body, '/api/v1/audit', 'get', 400);
    const noToken = await fetch(`${server.url}/api/v1/tokens`);
    assert.equal(noToken.status, 401);
    assertConforms(await noToken.json(), '/api/v1/tokens', 'get', 401);
  });
});
