import type { FastifyInstance, FastifyRequest } from 'fastify';
import { APK_ARCHES } from '../../apk/pkginfo.ts';
import { AppError } from '../../errors.ts';
import { isKeyName } from '../../repo/keys.ts';
import { requirePublishedPackage } from '../../repo/lookup.ts';
import { validateRepo } from '../../repo/publish.ts';
import { renderSbom } from '../../repo/sbom.ts';
import type { Services } from '../../repo/services.ts';
import type { IndexKey, StoredPackage } from '../../store/package-store.ts';
import { allow, assertCallerMayRead, type RepoOf } from '../auth.ts';
import { baseUrl } from '../base-url.ts';
import { clientFileReader } from '../client-file.ts';
import { type FileToSend, sendBytes, sendFile } from '../send-file.ts';

/** What apk fetches: `/<repo>/<libc>/<arch>/APKINDEX.tar.gz`, packages, and public keys. */
export function registerRepoFileRoutes(app: FastifyInstance, services: Services): void {
  const { store, blobs, cache } = services;

  /**
   * Packages and what sits beside them never change (design invariant 4);
   * indexes must be revalidated. Private repos stay out of shared caches.
   */
  const cacheControl = async (repo: string, policy: string) =>
    `${(await store.getRepo(repo))?.private ? 'private' : 'public'}, ${policy}`;

  /**
   * A blob of the blob store as sendFile serves it: from memory when small
   * enough to cache (read whole once), else streamed and verified on the
   * way. `bytes` when the caller read them already.
   */
  const blobFile = async (
    blob: { sha256: string; size: number; bytes?: Buffer },
    file: Pick<FileToSend, 'lastModified' | 'cacheControl' | 'contentType'>,
  ): Promise<FileToSend> => {
    const { sha256, size } = blob;
    return {
      ...file,
      sha256,
      size,
      bytes: blob.bytes ?? (await cache.get(sha256, size, () => blobs.readAll(sha256))),
      open: (range) => blobs.read(sha256, range),
      version: () => blobs.version(sha256),
    };
  };

  app.route<{ Params: { repo: string; libc: string; arch: string; file: string } }>({
    // HEAD is routed explicitly: fastify's generated HEAD route would report a zero length.
    method: ['GET', 'HEAD'],
    url: '/:repo/:libc/:arch/:file',
    exposeHeadRoute: false,
    config: { access: allow.read(indexRepo) },
    handler: async (request, reply) => {
      const { repo, libc, arch, file } = request.params;
      const key = indexKeyOf(repo, libc, arch);
      if (file === 'APKINDEX.tar.gz') {
        // The blob the row names at this request. A newer index may replace the row meanwhile: the
        // blob it named stays for a grace (index-maintenance.ts), so this one is served whole.
        const index = await store.getIndex(key);
        if (!index?.sha256 || index.size === undefined) {
          throw new AppError('NOT_FOUND', `${repo}/${libc} has no index for ${arch}`);
        }
        return sendFile(
          request,
          reply,
          await blobFile(
            { sha256: index.sha256, size: index.size },
            {
              lastModified: index.builtAt ?? 0,
              // Indexes change on every publish: caches may keep them but must revalidate.
              cacheControl: await cacheControl(repo, 'no-cache'),
              contentType: 'application/gzip',
            },
          ),
        );
      }
      const provenance = await provenanceFile(file, key);
      if (provenance) {
        const cached = await cache.get(provenance.sha256, provenance.size, () =>
          blobs.readAll(provenance.sha256),
        );
        // A bundle too large to cache is read once here for its media type, and sent from that read.
        const bytes = cached ?? (provenance.contentType ? undefined : await blobs.readAll(provenance.sha256));
        return sendFile(
          request,
          reply,
          await blobFile(
            { sha256: provenance.sha256, size: provenance.size, bytes },
            {
              lastModified: provenance.createdAt,
              cacheControl: await cacheControl(repo, IMMUTABLE),
              contentType: provenance.contentType ?? bundleMediaType(bytes!),
            },
          ),
        );
      }
      if (file.endsWith(OPENVEX_SUFFIX)) {
        // The package's vulnerability statements: they change with its advisories, so revalidated.
        const apkName = file.slice(0, -'.openvex.json'.length);
        const pkg = await store.findPublishedFile(key, apkName);
        if (!pkg) throw new AppError('PACKAGE_NOT_FOUND', `${apkName} is not in ${repo}/${libc}/${arch}`);
        const url = `${baseUrl(request, services)}/${repo}/${libc}/${arch}/${file}`;
        const vex = await services.advisories.packageVex(key, pkg.id, url);
        if (!vex) {
          throw new AppError(
            'ADVISORY_NOT_FOUND',
            `no advisory of ${repo} concerns ${apkName}: it has no statements`,
          );
        }
        return sendBytes(request, reply, {
          sha256: vex.sha256,
          lastModified: vex.changedAt,
          cacheControl: await cacheControl(repo, 'no-cache'),
          contentType: 'application/json',
          bytes: vex.bytes,
        });
      }
      const side = SIDE_FILES.find((f) => file.endsWith(`.apk${f.suffix}`));
      if (side) {
        // The SBOM beside the package, with the package's caching rules.
        const apkName = file.slice(0, -side.suffix.length);
        const pkg = await store.findPublishedFile(key, apkName);
        if (!pkg) throw new AppError('PACKAGE_NOT_FOUND', `${apkName} is not in ${repo}/${libc}/${arch}`);
        const rendered = await renderSbom(
          services,
          { id: pkg.id, repo, libc, filename: apkName },
          side.format,
        );
        return sendBytes(request, reply, {
          sha256: rendered.sha256,
          lastModified: rendered.stored.createdAt,
          cacheControl: await cacheControl(repo, IMMUTABLE),
          // The original is in the format it was stored in.
          contentType:
            side.format === 'original' ? SBOM_MEDIA_TYPES[rendered.stored.format] : side.contentType,
          bytes: rendered.bytes,
        });
      }
      if (file.endsWith('.apk')) {
        const pkg = await store.findPublishedFile(key, file);
        if (!pkg) throw new AppError('PACKAGE_NOT_FOUND', `${file} is not in ${repo}/${libc}/${arch}`);
        const redirectSeconds = services.config.blobRedirectSeconds;
        // GET only: a presigned URL is signed for GET, and a store answers HEAD on it with 403.
        if (redirectSeconds > 0 && blobs.url && request.method === 'GET') {
          // The object store serves the bytes (apk follows 302, never 308: libfetch http.c). Read
          // access was checked before the handler (the route's rule); the URL is as good as the file for its lifetime, so it is
          // cached by nobody.
          return reply
            .header('Cache-Control', 'private, no-store')
            .redirect(await blobs.url(pkg.sha256, redirectSeconds), 302);
        }
        return sendFile(
          request,
          reply,
          await blobFile(pkg, {
            lastModified: pkg.uploadedAt,
            // A name-version-arch never changes content (design invariant 4); private ones stay out of shared caches.
            cacheControl: await cacheControl(repo, IMMUTABLE),
            contentType: 'application/vnd.apk',
          }),
        );
      }
      throw new AppError('NOT_FOUND', `nothing at /${repo}/${libc}/${arch}/${file}`);
    },
  });

  /**
   * Provenance beside a package: `.apk.publish.json` is reef's signed record
   * of the publish; `.apk.provenance.json` the publisher's Sigstore bundle when
   * one was sent, else reef's; `<name>-<version>.attest.tar.gz` a melange
   * attestation as sent. Undefined when `file` is none of these.
   */
  const provenanceFile = async (file: string, key: IndexKey) => {
    const kind = file.endsWith(PUBLISH_SUFFIX)
      ? 'publish'
      : file.endsWith(PROVENANCE_SUFFIX)
        ? 'provenance'
        : file.endsWith(MELANGE_SUFFIX)
          ? 'melange'
          : undefined;
    if (!kind) return undefined;
    const apkName =
      kind === 'melange'
        ? `${file.slice(0, -MELANGE_SUFFIX.length)}.apk`
        : file.slice(0, file.lastIndexOf('.apk') + 4);
    const pkg = await store.findPublishedFile(key, apkName);
    const notFound = () =>
      new AppError('PACKAGE_NOT_FOUND', `${file} is not in ${key.repo}/${key.libc}/${key.arch}`);
    if (!pkg) throw notFound();
    const publisher = kind === 'publish' ? undefined : await store.getProvenance(pkg.id);
    if (kind === 'melange') {
      if (publisher?.format !== 'melange-attestation') throw notFound();
      return { ...publisher, contentType: 'application/gzip' };
    }
    if (publisher?.format === 'sigstore-bundle') {
      // The bundle as sent: its own mediaType field says v0.1, v0.2 or v0.3 (read with the bytes).
      return { ...publisher, contentType: undefined };
    }
    const attestation = await store.getAttestation(pkg.id);
    if (!attestation) throw notFound();
    return { ...attestation, contentType: SIGSTORE_BUNDLE_V03 };
  };

  const serveKey = (keyName: string) => {
    // The attestation key (ECDSA P-256) sits beside the index signing keys.
    if (keyName === services.attestationKey.keyName) return services.attestationKey.publicPem;
    const key = isKeyName(keyName) ? services.signingKeys.find((k) => k.keyName === keyName) : undefined;
    if (!key) throw new AppError('KEY_NOT_FOUND', `no public key named ${keyName}`);
    return key.publicPem;
  };
  app.get<{ Params: { keyName: string } }>(
    '/keys/:keyName',
    { config: { access: allow.public } },
    async (request, reply) => {
      reply.header('Content-Type', 'application/x-pem-file');
      return serveKey(request.params.keyName);
    },
  );
  // The publisher client as one file (CI: curl it, run it with node); built by `npm run build`.
  const readClient = clientFileReader();
  app.get('/client/reef.mjs', { config: { access: allow.public } }, async (request, reply) => {
    const client = await readClient();
    if (!client) {
      throw new AppError(
        'CLIENT_NOT_BUILT',
        'this server was started without its client bundle: run `npm run build` (npm start does) and retry',
      );
    }
    return sendBytes(request, reply, {
      sha256: client.sha256,
      lastModified: client.mtimeMs,
      // A server upgrade brings a new client: revalidate.
      cacheControl: 'no-cache',
      contentType: 'text/javascript; charset=utf-8',
      bytes: client.bytes,
    });
  });
  app.get('/keys', { config: { access: allow.public } }, async () => ({
    keys: services.signingKeys.map((k) => k.keyName),
    attestation: services.attestationKey.keyName,
  }));
  app.get<{ Params: { repo: string; libc: string; keyName: string } }>(
    '/:repo/:libc/:keyName',
    { config: { access: allow.public } },
    async (request, reply) => {
      indexKeyOf(request.params.repo, request.params.libc, 'noarch');
      reply.header('Content-Type', 'application/x-pem-file');
      return serveKey(request.params.keyName);
    },
  );
}

const MELANGE_SUFFIX = '.attest.tar.gz';
const OPENVEX_SUFFIX = '.apk.openvex.json';
const PUBLISH_SUFFIX = '.apk.publish.json';
const PROVENANCE_SUFFIX = '.apk.provenance.json';
const IMMUTABLE = 'max-age=31536000, immutable';

const SBOM_MEDIA_TYPES = {
  spdx: 'application/spdx+json',
  cyclonedx: 'application/vnd.cyclonedx+json',
} as const;

const SIDE_FILES = [
  {
    suffix: '.spdx.json',
    format: 'spdx',
    contentType: SBOM_MEDIA_TYPES.spdx,
    summary: "The package's SBOM, SPDX 2.3 (an embedded or sent document normalized to conform)",
  },
  {
    suffix: '.cdx.json',
    format: 'cyclonedx',
    contentType: SBOM_MEDIA_TYPES.cyclonedx,
    summary: "The package's SBOM, CycloneDX 1.6 (a sent CycloneDX document as sent)",
  },
  // The SBOM as stored: byte for byte what was sent or embedded (or what reef generated).
  {
    suffix: '.sbom.original.json',
    format: 'original',
    contentType: 'application/json',
    summary:
      "The package's SBOM byte for byte as stored: as sent or embedded, or as generated (application/spdx+json or application/vnd.cyclonedx+json)",
  },
] as const;

/** A Sigstore bundle v0.3's media type (sigstore protobuf-specs, `Bundle.media_type`). */
const SIGSTORE_BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/**
 * The media type a publisher's bundle declares (v0.1 and v0.2 spell it
 * `application/vnd.dev.sigstore.bundle+json;version=0.x`), so a client
 * picks the right parser; v0.3 when it names none reef knows.
 */
function bundleMediaType(bytes: Buffer): string {
  try {
    const declared = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (
      typeof declared === 'string' &&
      /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.\d+\+json|\+json;version=0\.\d+)$/.test(declared)
    ) {
      return declared;
    }
  } catch {
    // Stored bytes were verified at upload; anything else falls back to v0.3.
  }
  return SIGSTORE_BUNDLE_V03;
}

/**
 * The files served beside each package `<name>-<version>.apk`, by suffix
 * (what the OpenAPI document describes; the route below serves them).
 */
export const PACKAGE_SIDE_FILES: ReadonlyArray<{ suffix: string; contentType: string; summary: string }> = [
  ...SIDE_FILES.map((f) => ({ suffix: `.apk${f.suffix}`, contentType: f.contentType, summary: f.summary })),
  {
    suffix: PROVENANCE_SUFFIX,
    contentType: SIGSTORE_BUNDLE_V03,
    summary: "Provenance: the publisher's Sigstore bundle (its own media type), else reef's attestation",
  },
  {
    suffix: PUBLISH_SUFFIX,
    contentType: SIGSTORE_BUNDLE_V03,
    summary: "reef's signed attestation of the publish (a Sigstore bundle, DSSE, in-toto Statement v1)",
  },
  {
    suffix: OPENVEX_SUFFIX,
    contentType: 'application/json',
    summary:
      "The package's vulnerability statements (OpenVEX v0.2.0), from its source package's advisories; 404 when none concerns it",
  },
  {
    suffix: MELANGE_SUFFIX,
    contentType: 'application/gzip',
    summary: 'A melange attestation, as sent (named after the package without its .apk)',
  },
];

/** Path parameters validated as a (repo, libc, arch); anything else is simply not found. */
export function indexKeyOf(repo: string, libc: string, arch: string): IndexKey {
  try {
    validateRepo(repo, libc);
  } catch {
    throw new AppError('NOT_FOUND', `no repository /${repo}/${libc}`);
  }
  if (!APK_ARCHES.has(arch)) throw new AppError('NOT_FOUND', `unknown architecture '${arch}'`);
  return { repo, libc, arch };
}

/**
 * The repository of a `/:repo/:libc/:arch/…` path, once all three are valid:
 * an invalid one is not found (404) before credentials are looked at.
 */
export const indexRepo: RepoOf = (request) => {
  const { repo, libc, arch } = request.params as { repo: string; libc: string; arch: string };
  return indexKeyOf(repo, libc, arch).repo;
};

/** The path parameters of every per-package route. */
export type PackageParams = { repo: string; libc: string; arch: string; name: string; version: string };

/**
 * The published package a per-package path names, on a route whose rule
 * (`allow.read()`) let the caller read its repository: checked before the
 * handler, so a private package's existence is told to nobody else.
 * `version` names another version of the same package.
 */
export async function readablePackage(
  services: Services,
  request: FastifyRequest,
  p: PackageParams,
  version = p.version,
): Promise<{ key: IndexKey; pkg: StoredPackage }> {
  assertCallerMayRead(request, p.repo);
  const key = indexKeyOf(p.repo, p.libc, p.arch);
  return { key, pkg: await requirePublishedPackage(services.store, key, p.name, version) };
}
