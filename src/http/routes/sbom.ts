import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import semver from 'semver';
import parseSpdx from 'spdx-expression-parse';
import spdxSatisfies from 'spdx-satisfies';
import { z } from 'zod';
import { isValidVersion, matchVersion, type VersionOp } from '../../apk/version.ts';
import { AppError } from '../../errors.ts';
import { requirePublishedPackage } from '../../repo/lookup.ts';
import { attachProvenance, attachSbom } from '../../repo/publish.ts';
import { renderSbom, type SbomBlob, writeSbomBlob } from '../../repo/sbom.ts';
import type { Services } from '../../repo/services.ts';
import { MAX_SBOM_BYTES } from '../../sbom/limits.ts';
import { checkSbomSize } from '../../sbom/parse.ts';
import type { SbomComponent } from '../../sbom/types.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import type { Authenticator } from '../auth.ts';
import { decodeCursor, encodeCursor, parseQuery } from '../query.ts';
import { auditor } from './packages.ts';
import { indexKeyOf } from './repo-files.ts';

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

/** purl types whose versions are semantic versions. */
const SEMVER_TYPES = new Set(['npm', 'cargo', 'golang', 'gem', 'hex', 'pub', 'swift', 'composer', 'nuget']);

type PackageParams = { repo: string; libc: string; arch: string; name: string; version: string };

/** SBOM documents, the auditor's queries across all of them, and export. */
export function registerSbomRoutes(app: FastifyInstance, services: Services, auth: Authenticator): void {
  const { store, sboms } = services;

  const publishedPackage = (p: PackageParams) =>
    requirePublishedPackage(store, indexKeyOf(p.repo, p.libc, p.arch), p.name, p.version);

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/sbom',
    async (request, reply) => {
      auth.requireRead(request, request.params.repo);
      const pkg = publishedPackage(request.params);
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
      async (request) => {
        const p = request.params;
        const token = auth.require(request, p.repo, 'publish');
        const target = `${p.repo}/${p.libc}/${p.arch}/${p.name}-${p.version}`;
        const audit = auditor(services, request, token, 'sbom.attach', target);
        try {
          const key = indexKeyOf(p.repo, p.libc, p.arch);
          const sent = await receiveSbom(request, services.blobs);
          const { sbom } = await attachSbom(services, key, p.name, p.version, sent);
          audit.ok(target, { sha256: sbom.sha256, format: sbom.format });
          return { source: 'uploaded', ...sbom };
        } catch (err) {
          audit.rejected(err);
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
          tooLarge: { code: 'PROVENANCE_TOO_LARGE', what: 'provenance', maxBytes: MAX_SBOM_BYTES },
        },
      },
      async (request, reply) => {
        const p = request.params;
        const token = auth.require(request, p.repo, 'publish');
        const target = `${p.repo}/${p.libc}/${p.arch}/${p.name}-${p.version}`;
        const audit = auditor(services, request, token, 'provenance.attach', target);
        try {
          const bytes = request.body as Buffer | undefined;
          if (!bytes?.length)
            throw new AppError('PROVENANCE_INVALID', 'the request body holds no provenance document');
          const key = indexKeyOf(p.repo, p.libc, p.arch);
          const { outcome, pkg } = await attachProvenance(services, key, p.name, p.version, bytes);
          const stored = store.getProvenance(pkg.id)!;
          audit.ok(target, { sha256: stored.sha256, verified: stored.verified, outcome });
          return reply
            .code(outcome === 'created' ? 201 : 200)
            .send({ outcome, sha256: stored.sha256, format: stored.format, ...stored.result });
        } catch (err) {
          audit.rejected(err);
          throw err;
        }
      },
    );
  });

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/provenance',
    async (request) => {
      auth.requireRead(request, request.params.repo);
      const pkg = publishedPackage(request.params);
      const attestation = store.getAttestation(pkg.id);
      if (!attestation) throw new AppError('NOT_FOUND', 'this package has no attestation');
      const bundle = JSON.parse((await services.blobs.readAll(attestation.sha256)).toString('utf8'));
      const publisher = store.getProvenance(pkg.id);
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

  app.get('/api/v1/components', async (request) => {
    const q = parseQuery(componentQuery, request.query);
    const constraints = q.version === undefined ? [] : parseConstraints(q.version);
    const after = q.after === undefined ? undefined : decodeCursor(componentCursor, q.after);
    const page = sboms.findComponents(
      { name: q.name, purl: q.purl },
      {
        repos: auth.readableRepos(request),
        limit: q.limit,
        after: after && { key: after[0], packageId: after[1], id: after[2] },
        accept: constraints.length === 0 ? undefined : versionFilter(constraints),
      },
    );
    return {
      matches: page.hits.map((h) => ({ package: h.package, component: h.component })),
      next: page.next ? encodeCursor([page.next.key, page.next.packageId, page.next.id]) : null,
    };
  });

  app.get('/api/v1/licenses', async (request) => {
    const q = parseQuery(licenseQuery, request.query);
    const approved = approvedList(q.expression);
    const after = q.after === undefined ? undefined : decodeCursor(licenseCursor, q.after);
    const repos = auth.readableRepos(request);
    const satisfied = (license: string) => {
      try {
        return license !== '' && spdxSatisfies(license, approved);
      } catch {
        return false; // not an SPDX expression: satisfies nothing
      }
    };
    // Each distinct licence is judged once (hundreds of them), then only a page of packages is read.
    const want = q.mode === 'satisfies';
    const licenses = sboms.publishedLicenses().filter((l) => satisfied(l) === want);
    const page = sboms.findByLicense(licenses, {
      repos,
      limit: q.limit,
      after: after && { license: after[0], id: after[1] },
    });
    return {
      expression: q.expression,
      mode: q.mode,
      packages: page.packages,
      next: page.next ? encodeCursor([page.next.license, page.next.id]) : null,
    };
  });

  app.get<{ Params: PackageParams }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version/sbom/diff',
    async (request) => {
      auth.requireRead(request, request.params.repo);
      const pkg = publishedPackage(request.params);
      const q = parseQuery(diffQuery, request.query);
      const other = publishedPackage({ ...request.params, version: q.against });
      return {
        from: other.version,
        to: pkg.version,
        ...diffComponents(sboms.componentsOf(other.id), sboms.componentsOf(pkg.id)),
      };
    },
  );

  app.get('/api/v1/sbom/export', async (request, reply) => {
    const q = parseQuery(exportQuery, request.query);
    auth.requireRead(request, q.repo);
    store.requireRepo(q.repo);
    async function* lines() {
      let after = 0;
      for (;;) {
        const page = store.listPublishedInRepo(q.repo, 200, after);
        if (page.length === 0) return;
        for (const pkg of page) {
          const sbom = sboms.get(pkg.id);
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

/** `A OR B OR C` → [A, B, C]; spdx-satisfies takes a list of approved licences, not AND. */
function approvedList(expression: string): string[] {
  let tree: SpdxNode;
  try {
    tree = parseSpdx(expression) as SpdxNode;
  } catch (err) {
    throw new AppError(
      'BAD_REQUEST',
      `expression '${expression.slice(0, 100)}' is not an SPDX licence expression`,
      {
        cause: err,
      },
    );
  }
  const out: string[] = [];
  const walk = (node: SpdxNode): void => {
    if ('license' in node) {
      out.push(`${node.license}${node.plus ? '+' : ''}${node.exception ? ` WITH ${node.exception}` : ''}`);
    } else if (node.conjunction === 'or') {
      walk(node.left);
      walk(node.right);
    } else {
      throw new AppError(
        'BAD_REQUEST',
        'give approved licences joined with OR (AND is not a list of approvals)',
      );
    }
  };
  walk(tree);
  return out;
}

type SpdxNode =
  | { license: string; plus?: boolean; exception?: string }
  | { conjunction: 'and' | 'or'; left: SpdxNode; right: SpdxNode };

interface Constraint {
  op: VersionOp;
  version: string;
}

function parseConstraints(text: string): Constraint[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((part) => {
      const m = /^(<=|>=|<~|>~|<|>|=|~)?(.+)$/.exec(part)!;
      return { op: (m[1] ?? '=') as VersionOp, version: m[2]! };
    });
}

/**
 * versionMatches with its verdict remembered per (purl type, version): a
 * common component has a handful of versions across a million packages, and
 * a page may have to read far past rows that miss the constraint.
 */
function versionFilter(constraints: Constraint[]): (c: Pick<SbomComponent, 'version' | 'purl'>) => boolean {
  const verdicts = new Map<string, boolean>();
  return (component) => {
    const key = `${purlTypeOf(component.purl) ?? ''}\0${component.version ?? ''}`;
    let ok = verdicts.get(key);
    if (ok === undefined) {
      ok = versionMatches(component, constraints);
      if (verdicts.size < 10_000) verdicts.set(key, ok);
    }
    return ok;
  };
}

function purlTypeOf(purl: string | undefined): string | undefined {
  return /^pkg:([a-z0-9.+-]+)\//i.exec(purl ?? '')?.[1]?.toLowerCase();
}

/** apk rules (§4) for apk components and plain names; semver for purl types that use it. */
function versionMatches(
  component: Pick<SbomComponent, 'version' | 'purl'>,
  constraints: Constraint[],
): boolean {
  if (constraints.length === 0) return true;
  const version = component.version;
  if (!version) return false;
  const type = purlTypeOf(component.purl);
  if (type && SEMVER_TYPES.has(type)) {
    const v = semver.coerce(version, { loose: true });
    if (!v) return false;
    const range = constraints
      .map((c) => `${c.op === '~' ? '~' : c.op.replace('~', '=')}${c.version}`)
      .join(' ');
    return semver.validRange(range, { loose: true }) !== null && semver.satisfies(v, range, { loose: true });
  }
  if (!isValidVersion(version)) return false;
  return constraints.every((c) => isValidVersion(c.version) && matchVersion(version, c.op, c.version));
}

/** Components keyed by purl without its version (or name): what was added, removed or changed. */
export function diffComponents(before: SbomComponent[], after: SbomComponent[]) {
  const keyOf = (c: SbomComponent) => (c.purl ? c.purl.replace(/@[^?#]*/, '') : `name:${c.name}`);
  const index = (list: SbomComponent[]) => {
    const map = new Map<string, SbomComponent>();
    for (const c of list) map.set(keyOf(c), c);
    return map;
  };
  const a = index(before);
  const b = index(after);
  const added = [...b].filter(([k]) => !a.has(k)).map(([, c]) => c);
  const removed = [...a].filter(([k]) => !b.has(k)).map(([, c]) => c);
  const changed = [...b]
    .filter(([k]) => a.has(k))
    .map(([k, c]) => ({ before: a.get(k)!, after: c }))
    .filter(
      ({ before: x, after: y }) =>
        x.version !== y.version ||
        x.license !== y.license ||
        JSON.stringify(x.checksums) !== JSON.stringify(y.checksums),
    );
  return { added, removed, changed };
}
