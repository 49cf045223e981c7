import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import { attachProvenance, attachSbom } from '../../repo/publish.ts';
import { renderSbom, type SbomBlob, writeSbomBlob } from '../../repo/sbom.ts';
import { diffComponents, findComponents, findLicensed } from '../../repo/sbom-queries.ts';
import type { Services } from '../../repo/services.ts';
import { MAX_SBOM_BYTES } from '../../sbom/limits.ts';
import { checkSbomSize } from '../../sbom/parse.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { type Authenticator, allow, assertCallerMayRead, callerToken } from '../auth.ts';
import { decodeCursor, encodeCursor, parseQuery } from '../query.ts';
import { auditor } from './packages.ts';
import { indexKeyOf, type PackageParams, readablePackage } from './repo-files.ts';

/** A cursor holds a purl or licence of at most 2,000 characters, base64url-encoded JSON. */
const MAX_CURSOR_CHARS = 4_000;

export const sbomQuery = z.object({ format: z.enum(['spdx', 'cyclonedx', 'original']).default('spdx') });

export const componentQuery = z
  .object({
    name: z.string().min(1).max(500).optional(),
    purl: z.string().min(1).max(2000).optional(),
    /** Space-separated constraints, e.g. `>=1.2 <2`: apk rules for apk components, semver where the purl type uses it. */
    version: z.string().min(1).max(200).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(1000),
    after: z.string().min(1).max(MAX_CURSOR_CHARS).optional(),
  })
  .refine((q) => (q.name === undefined) !== (q.purl === undefined), {
    message: 'give exactly one of name or purl',
  });

export const licenseQuery = z.object({
  /** A licence, or licences joined with OR: the approved list. */
  expression: z.string().min(1).max(500),
  /** satisfies: declared licence is satisfied by the list; conflicts: it is not (or is not SPDX). */
  mode: z.enum(['satisfies', 'conflicts']).default('satisfies'),
  limit: z.coerce.number().int().min(1).max(100_000).default(10_000),
  after: z.string().min(1).max(MAX_CURSOR_CHARS).optional(),
});

export const diffQuery = z.object({ against: z.string().min(1).max(200) });
export const exportQuery = z.object({ repo: z.string().min(1).max(64) });

/** SBOM documents, the auditor's queries across all of them, and export. */
export function registerSbomRoutes(app: FastifyInstance, services: Services, auth: Authenticator): void {
  const { store, sboms } = services;

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/sbom',
    { config: { access: allow.read() } },
    async (request, reply) => {
      const { pkg } = await readablePackage(services, request, request.params);
      const q = parseQuery(sbomQuery, request.query);
      const rendered = await renderSbom(services, pkg, q.format);
      return reply
        .header('Content-Type', 'application/json')
        .header('ETag', `"${rendered.sha256}"`)
        .header('X-Reef-Sbom-Source', rendered.stored.source)
        .send(rendered.bytes);
    },
  );

  app.register(async (scope) => {
    // SECURITY: the document is streamed into a temp blob, hashed and bounded, never held in
    // memory: sixteen 16 MiB bodies at once would be 256 MiB of buffers.
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', (_request, _payload, done) => done(null));
    scope.put<{ Params: PackageParams }>(
      '/api/v1/packages/:repo/:libc/:arch/:name/:version/sbom',
      { config: { access: allow.scope('publish') } },
      async (request) => {
        const p = request.params;
        const token = callerToken(request);
        const target = `${p.repo}/${p.libc}/${p.arch}/${p.name}-${p.version}`;
        const audit = auditor(services, request, token, 'sbom.attach', target);
        try {
          const key = indexKeyOf(p.repo, p.libc, p.arch);
          const sent = await receiveSbom(request, services.blobs);
          const { sbom } = await attachSbom(services, key, p.name, p.version, sent);
          await audit.ok(target, { sha256: sbom.sha256, format: sbom.format });
          return { source: 'uploaded', ...sbom };
        } catch (err) {
          await audit.rejected(err);
          throw err;
        }
      },
    );
  });

  app.register(async (scope) => {
    // The document is stored byte for byte, so the route takes the raw body.
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_SBOM_BYTES }, (_req, body, done) =>
      done(null, body),
    );
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser(
      'application/json',
      { parseAs: 'buffer', bodyLimit: MAX_SBOM_BYTES },
      (_req, body, done) => done(null, body),
    );
    scope.put<{ Params: PackageParams }>(
      '/api/v1/packages/:repo/:libc/:arch/:name/:version/provenance',
      {
        config: {
          access: allow.scope('publish'),
          tooLarge: { code: 'PROVENANCE_TOO_LARGE', what: 'provenance', maxBytes: MAX_SBOM_BYTES },
        },
      },
      async (request, reply) => {
        const p = request.params;
        const token = callerToken(request);
        const target = `${p.repo}/${p.libc}/${p.arch}/${p.name}-${p.version}`;
        const audit = auditor(services, request, token, 'provenance.attach', target);
        try {
          const bytes = request.body as Buffer | undefined;
          if (!bytes?.length)
            throw new AppError('PROVENANCE_INVALID', 'the request body holds no provenance document');
          const key = indexKeyOf(p.repo, p.libc, p.arch);
          const { outcome, pkg } = await attachProvenance(services, key, p.name, p.version, bytes);
          const stored = (await store.getProvenance(pkg.id))!;
          await audit.ok(target, { sha256: stored.sha256, verified: stored.verified, outcome });
          return reply
            .code(outcome === 'created' ? 201 : 200)
            .send({ outcome, sha256: stored.sha256, format: stored.format, ...stored.result });
        } catch (err) {
          await audit.rejected(err);
          throw err;
        }
      },
    );
  });

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/provenance',
    { config: { access: allow.read() } },
    async (request) => {
      const { pkg } = await readablePackage(services, request, request.params);
      const attestation = await store.getAttestation(pkg.id);
      if (!attestation) throw new AppError('NOT_FOUND', 'this package has no attestation');
      const bundle = JSON.parse((await services.blobs.readAll(attestation.sha256)).toString('utf8'));
      const publisher = await store.getProvenance(pkg.id);
      return {
        publisher: publisher && {
          format: publisher.format,
          sha256: publisher.sha256,
          size: publisher.size,
          ...publisher.result,
          // A Sigstore bundle inline; a melange .attest.tar.gz is binary, fetch it beside the package.
          bundle:
            publisher.format === 'sigstore-bundle'
              ? JSON.parse((await services.blobs.readAll(publisher.sha256)).toString('utf8'))
              : undefined,
          receivedAt: new Date(publisher.createdAt).toISOString(),
        },
        publish: { keyName: attestation.keyName, sha256: attestation.sha256, bundle },
      };
    },
  );

  app.get('/api/v1/components', { config: { access: allow.optional } }, async (request) =>
    queryComponents(services, await auth.readableRepos(request), parseQuery(componentQuery, request.query)),
  );

  app.get('/api/v1/licenses', { config: { access: allow.optional } }, async (request) =>
    queryLicenses(services, await auth.readableRepos(request), parseQuery(licenseQuery, request.query)),
  );

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/sbom/diff',
    { config: { access: allow.read() } },
    async (request) => {
      const { pkg } = await readablePackage(services, request, request.params);
      const q = parseQuery(diffQuery, request.query);
      const other = (await readablePackage(services, request, request.params, q.against)).pkg;
      return {
        from: other.version,
        to: pkg.version,
        ...diffComponents(await sboms.componentsOf(other.id), await sboms.componentsOf(pkg.id)),
      };
    },
  );

  // The repository is a query parameter: a malformed query is refused (400) before credentials are looked at.
  const exportRepo = (request: FastifyRequest) => parseQuery(exportQuery, request.query).repo;
  app.get('/api/v1/sbom/export', { config: { access: allow.read(exportRepo) } }, async (request, reply) => {
    const q = parseQuery(exportQuery, request.query);
    assertCallerMayRead(request, q.repo);
    await store.requireRepo(q.repo);
    async function* lines() {
      let after = 0;
      for (;;) {
        const page = await store.listPublishedInRepo(q.repo, 200, after);
        if (page.length === 0) return;
        for (const pkg of page) {
          const sbom = await sboms.get(pkg.id);
          if (!sbom) continue;
          const bytes = await services.blobs.readAll(sbom.sha256);
          const head = {
            repo: pkg.repo,
            libc: pkg.libc,
            arch: pkg.arch,
            name: pkg.name,
            version: pkg.version,
          };
          // One document per line: the stored JSON, re-serialized without newlines.
          yield `${JSON.stringify({ ...head, source: sbom.source, format: sbom.format, sbom: JSON.parse(bytes.toString('utf8')) })}\n`;
        }
        after = page.at(-1)!.id;
      }
    }
    return reply.header('Content-Type', 'application/x-ndjson').send(Readable.from(lines()));
  });
}

/**
 * The request body as a temp blob (writeSbomBlob: hashed, SBOM_TOO_LARGE past
 * the limit). A refused body is drained so the answer reaches the client.
 */
async function receiveSbom(request: FastifyRequest, blobs: BlobStore): Promise<SbomBlob> {
  try {
    checkSbomSize(Number(request.headers['content-length'] ?? 0));
    const sent = await writeSbomBlob(blobs, request.raw.iterator({ destroyOnReturn: false }));
    if (sent.size === 0) {
      await sent.temp.discard();
      throw new AppError('SBOM_INVALID_JSON', 'the request body holds no SBOM document');
    }
    return sent;
  } catch (err) {
    if (!request.raw.complete) request.raw.resume();
    throw err;
  }
}

/** The sort key of a page's last row: [name or purl, package id, component id] / [licence, package id]. */
const componentCursor = z.tuple([z.string(), z.number().int().min(0), z.number().int().min(0)]);
const licenseCursor = z.tuple([z.string(), z.number().int().min(0)]);

/** The auditor's component query, one page of it (the API's and the web interface's). */
export async function queryComponents(
  services: Services,
  repos: readonly string[],
  q: z.infer<typeof componentQuery>,
) {
  const after = q.after === undefined ? undefined : decodeCursor(componentCursor, q.after);
  const page = await findComponents(
    services.sboms,
    { name: q.name, purl: q.purl, version: q.version },
    { repos, limit: q.limit, after: after && { key: after[0], packageId: after[1], id: after[2] } },
  );
  return {
    matches: page.hits.map((h) => ({ package: h.package, component: h.component })),
    next: page.next ? encodeCursor([page.next.key, page.next.packageId, page.next.id]) : null,
  };
}

/** The auditor's licence query, one page of it (the API's and the web interface's). */
export async function queryLicenses(
  services: Services,
  repos: readonly string[],
  q: z.infer<typeof licenseQuery>,
) {
  const after = q.after === undefined ? undefined : decodeCursor(licenseCursor, q.after);
  const page = await findLicensed(
    services.sboms,
    { expression: q.expression, mode: q.mode },
    { repos, limit: q.limit, after: after && { license: after[0], id: after[1] } },
  );
  return {
    expression: q.expression,
    mode: q.mode,
    packages: page.packages,
    next: page.next ? encodeCursor([page.next.license, page.next.id]) : null,
  };
}
