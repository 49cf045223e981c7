import multipart, { type Multipart, type MultipartFile } from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, isAppError } from '../../errors.ts';
import { MAX_ATTESTATION_BYTES } from '../../provenance/melange-attestation.ts';
import { requirePublishedPackage } from '../../repo/lookup.ts';
import { deletePackage, publishPackage } from '../../repo/publish.ts';
import { type SbomBlob, writeSbomBlob } from '../../repo/sbom.ts';
import type { Services } from '../../repo/services.ts';
import type { TokenInfo } from '../../repo/tokens.ts';
import { MAX_SBOM_BYTES } from '../../sbom/limits.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import type { StoredPackage } from '../../store/package-store.ts';
import { allow, callerToken, canRead } from '../auth.ts';
import { baseUrl } from '../base-url.ts';
import type { Metrics } from '../metrics.ts';
import { parseQuery } from '../query.ts';
import { indexKeyOf, indexRepo } from './repo-files.ts';

export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: z.coerce.number().int().min(0).default(0),
});

/** The package API: listing and metadata (read), publish and delete (write, audited). */
export function registerPackageRoutes(app: FastifyInstance, services: Services, metrics: Metrics): void {
  const { store } = services;

  app.get('/api/v1/repos', { config: { access: allow.optional } }, async (request) => {
    const token = request.caller?.token;
    const indexes = await store.listIndexes();
    return {
      repos: (await store.listRepos())
        .filter((r) => canRead(token, r))
        .map((r) => ({
          name: r.name,
          private: r.private,
          maxUploadBytes: r.maxUploadBytes ?? null,
          distro: r.distro ?? null,
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
    { config: { access: allow.read(indexRepo) } },
    async (request) => {
      const { repo, libc, arch } = request.params;
      const key = indexKeyOf(repo, libc, arch);
      const q = parseQuery(pageQuery, request.query);
      const packages = await store.listPublished(key, q.limit + 1, q.after);
      const page = packages.slice(0, q.limit);
      return {
        // The page's provenance rows are read in turn; Promise.all keeps the page's order.
        packages: await Promise.all(page.map((p) => packageJson(p, request, services))),
        next: packages.length > q.limit ? page.at(-1)!.id : null,
      };
    },
  );

  app.get<{ Params: { repo: string; libc: string; arch: string; name: string; version: string } }>(
    '/api/v1/packages/:repo/:libc/:arch/:name/:version',
    { config: { access: allow.read(indexRepo) } },
    async (request) => {
      const { repo, libc, arch, name, version } = request.params;
      const key = indexKeyOf(repo, libc, arch);
      return await packageJson(await requirePublishedPackage(store, key, name, version), request, services);
    },
  );

  app.register(async (scope) => {
    // Upload bodies are streamed into the parser, never buffered by fastify.
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    await scope.register(multipart, { limits: { fileSize: 2 ** 32 - 1, files: 1, fields: 10 } });

    const publish = async (
      request: FastifyRequest<{ Params: { repo: string; libc: string } }>,
      reply: FastifyReply,
    ) => {
      const { repo, libc } = request.params;
      const token = callerToken(request);
      const started = performance.now();
      const audit = auditor(services, request, token, 'package.publish', `${repo}/${libc}`);
      try {
        const maxBytes = (await store.getRepo(repo))?.maxUploadBytes ?? services.config.maxUploadBytes;
        const result = await receive(request, maxBytes, services.blobs, (body, extras) =>
          publishPackage(
            { ...services, limits: { ...services.limits, maxCompressedBytes: maxBytes } },
            request.params,
            body,
            { extras, publishedBy: { tokenId: token.id ?? null, tokenName: token.name } },
          ),
        );
        const p = result.pkg;
        await audit.ok(`${repo}/${libc}/${p.arch}/${p.name}-${p.version}`, {
          sha256: p.sha256,
          outcome: result.outcome,
        });
        request.log.info(
          { tokenName: token.name, pkg: `${repo}/${libc}/${p.arch}/${p.filename}`, outcome: result.outcome },
          'package published',
        );
        metrics.observePublish(repo, result.outcome, (performance.now() - started) / 1000);
        return reply.code(result.outcome === 'created' ? 201 : 200).send({
          ...(await packageJson(p, request, services)),
          outcome: result.outcome,
          warnings: result.warnings,
        });
      } catch (err) {
        metrics.observePublish(repo, 'rejected', (performance.now() - started) / 1000);
        await audit.rejected(err);
        throw err;
      }
    };
    const rule = { config: { access: allow.scope('publish') } };
    scope.post('/api/v1/repos/:repo/:libc/packages', rule, publish);
    scope.put('/api/v1/repos/:repo/:libc/packages', rule, publish);
  });

  app.delete<{ Params: { repo: string; libc: string; arch: string; name: string; version: string } }>(
    '/api/v1/repos/:repo/:libc/:arch/:name/:version',
    { config: { access: allow.scope('delete') } },
    async (request, reply) => {
      const { repo, libc, arch, name, version } = request.params;
      const token = callerToken(request);
      const target = `${repo}/${libc}/${arch}/${name}-${version}`;
      const audit = auditor(services, request, token, 'package.delete', target);
      try {
        const pkg = await deletePackage(services, { repo, libc, arch }, name, version);
        await audit.ok(target, { sha256: pkg.sha256 });
      } catch (err) {
        await audit.rejected(err);
        throw err;
      }
      return reply.code(204).send();
    },
  );
}

/** Documents that may travel beside the package in a multipart upload, each bounded while read. */
const SIDE_FIELDS = {
  sbom: { maxBytes: MAX_SBOM_BYTES, code: 'SBOM_TOO_LARGE', what: 'SBOM' },
  provenance: { maxBytes: MAX_ATTESTATION_BYTES, code: 'PROVENANCE_TOO_LARGE', what: 'provenance' },
} as const;
type SideField = keyof typeof SIDE_FIELDS;
/** A sent SBOM goes to a temp blob as it arrives; provenance stays in memory. */
type Extras = { sbom?: SbomBlob; provenance?: Buffer };

const isSideField = (name: string): name is SideField => Object.hasOwn(SIDE_FIELDS, name);

/**
 * Hands the upload body (raw, or multipart field `package`) to `consume`,
 * with a loader for the documents sent beside it (multipart fields `sbom` and
 * `provenance`, before or after the package), turning a body cut at the size
 * limit into PUBLISH_TOO_LARGE. A sent SBOM's temp blob does not outlive
 * the request: `consume` commits it, or it is discarded here.
 */
async function receive<T>(
  request: FastifyRequest,
  maxBytes: number,
  blobs: BlobStore,
  consume: (body: AsyncIterable<Uint8Array>, extras: () => Promise<Extras>) => Promise<T>,
): Promise<T> {
  const sent: Extras = {};
  try {
    return await receiveBody(request, maxBytes, { blobs, sent }, consume);
  } finally {
    await sent.sbom?.temp.discard();
  }
}

async function receiveBody<T>(
  request: FastifyRequest,
  maxBytes: number,
  side: { blobs: BlobStore; sent: Extras },
  consume: (body: AsyncIterable<Uint8Array>, extras: () => Promise<Extras>) => Promise<T>,
): Promise<T> {
  const { sent } = side;
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  const tooLarge = () =>
    new AppError('PUBLISH_TOO_LARGE', `the upload exceeds this repository's limit of ${maxBytes} bytes`);
  if (declared > maxBytes) throw tooLarge();
  if (declared === 0) throw noBody();
  let body: AsyncIterable<Uint8Array>;
  let extras: () => Promise<Extras> = async () => ({});
  let truncated = () => false;
  if (request.isMultipart()) {
    const parts = request
      .parts({ limits: { fileSize: maxBytes, fieldSize: SIDE_FIELDS.sbom.maxBytes, files: 3 } })
      [Symbol.asyncIterator]();
    const takeSide = async (part: Multipart, field: SideField) => {
      const limit = SIDE_FIELDS[field];
      // busboy cuts a text field at fieldSize and only flags it: a cut document is too large, not malformed.
      if (part.type !== 'file' && part.valueTruncated) throw sideTooLarge(field);
      if (field === 'sbom') {
        // SECURITY: streamed to disk while hashed and bounded, never held: uploads at once add up.
        const value = part.type === 'file' ? part.file : Buffer.from(String(part.value));
        const previous = sent.sbom;
        sent.sbom = undefined;
        await previous?.temp.discard();
        sent.sbom = await writeSbomBlob(side.blobs, value);
        return;
      }
      const bytes =
        part.type === 'file'
          ? await readBounded(part.file, limit.maxBytes, field)
          : Buffer.from(String(part.value));
      if (bytes.length > limit.maxBytes) throw sideTooLarge(field);
      sent.provenance = bytes;
    };
    let packagePart: MultipartFile | undefined;
    for (;;) {
      const next = await parts.next();
      if (next.done) break;
      const part = next.value;
      if (isSideField(part.fieldname)) await takeSide(part, part.fieldname);
      else if (part.type === 'file' && part.fieldname === 'package') {
        packagePart = part;
        break;
      } else if (part.type === 'file') part.file.resume();
    }
    if (!packagePart)
      throw new AppError('PUBLISH_NO_BODY', "the multipart form has no file field named 'package'");
    const file = packagePart.file;
    body = file;
    // busboy ends the file stream at the size limit and flags it instead of failing.
    truncated = () => file.truncated;
    extras = async () => {
      // The rest of the form, after the package: side documents may still come.
      for (;;) {
        const next = await parts.next();
        if (next.done) break;
        const part = next.value;
        if (isSideField(part.fieldname)) await takeSide(part, part.fieldname);
        else if (part.type === 'file') part.file.resume();
      }
      return sent;
    };
  } else {
    // destroyOnReturn: false keeps the socket open so a rejection still reaches the client.
    body = request.raw.iterator({ destroyOnReturn: false });
  }
  try {
    return await consume(body, extras);
  } catch (err) {
    if (!request.raw.complete) request.raw.resume();
    if (isAppError(err, 'APK_EMPTY')) throw noBody();
    if (truncated() || isAppError(err, 'APK_TOO_LARGE')) throw tooLarge();
    throw err;
  }
}

function sideTooLarge(field: SideField): AppError {
  const { code, what, maxBytes } = SIDE_FIELDS[field];
  return new AppError(code, `the ${what} is larger than ${maxBytes} bytes`);
}

/** SECURITY: a sent document is held in memory, so it is bounded while read. */
async function readBounded(
  stream: AsyncIterable<Uint8Array>,
  max: number,
  field: SideField,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > max) throw sideTooLarge(field);
    parts.push(Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

function noBody(): AppError {
  return new AppError(
    'PUBLISH_NO_BODY',
    "the request has no package: send the .apk as the request body or as multipart field 'package'",
  );
}

/** Records one write in the audit log, once, as ok or rejected. */
export function auditor(
  services: Services,
  request: FastifyRequest,
  token: TokenInfo | undefined,
  action: string,
  target: string,
) {
  const base = { token, action, remoteAddr: request.ip };
  return {
    async ok(finalTarget = target, detail?: Record<string, unknown>) {
      try {
        await services.audit.record({ ...base, target: finalTarget, result: 'ok', detail });
      } catch (auditErr) {
        // The write is done and may already be served (a package listed by a live index): an
        // error now would tell the client it failed. The row that could not be written is logged.
        request.log.error({ err: auditErr, action, target: finalTarget }, 'audit log write failed');
      }
    },
    async rejected(err: unknown) {
      try {
        await services.audit.record({
          ...base,
          target,
          result: 'rejected',
          code: isAppError(err) ? err.code : 'INTERNAL',
        });
      } catch (auditErr) {
        // The request's own error is what the client must see (a full disk is 507, not 500);
        // the audit row that could not be written is logged instead.
        request.log.error({ err: auditErr, action, target }, 'audit log write failed');
      }
    },
  };
}

export async function packageJson(p: StoredPackage, request: FastifyRequest, services: Services) {
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
    provenance: await provenanceJson(p, services),
  };
}

/** The publisher provenance's verification result, as an auditor reads it beside the package. */
async function provenanceJson(p: StoredPackage, services: Services) {
  const stored = await services.store.getProvenance(p.id);
  return {
    publisher: stored ? { format: stored.format, sha256: stored.sha256, ...stored.result } : null,
    policy: services.provenance.modeOf(p.repo),
  };
}
