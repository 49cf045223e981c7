import { createHash } from 'node:crypto';
import { type AdvisoryDocument, parseAdvisoryYaml, validateAdvisoryDocument } from '../advisory/document.ts';
import { packageVex, vexProductPurl } from '../advisory/openvex.ts';
import { osvRecords, osvTarget } from '../advisory/osv.ts';
import { renderSecdb } from '../advisory/secdb.ts';
import { AppError } from '../errors.ts';
import { type AttestationKey, IN_TOTO_STATEMENT, signStatement } from '../provenance/publish-statement.ts';
import type { AdvisoryGeneration, AdvisoryStore, StoredAdvisories } from '../store/advisory-store.ts';
import type { IndexKey, Libc, PackageStore } from '../store/package-store.ts';
import { validateRepo } from './publish.ts';

/**
 * Security advisories (README, "Security advisories"): written one package at a time or imported
 * in bulk, all or nothing; and the feeds built from them, cached per
 * repository generation so a change shows at the next request.
 */

/** What a document write changed, per package (for the response and the audit log). */
export type AdvisoryChange = { package: string; added: string[]; changed: string[]; removed: string[] };

/** A file of an import: its name (for messages) and text (YAML or JSON). */
export interface AdvisoryFile {
  file: string;
  content: string;
}

export const MAX_IMPORT_FILES = 20_000;

/** The predicate of reef's signed statement about a feed it served. */
export const FEED_PREDICATE = 'https://reef.dev/attestation/feed/v1';

export class AdvisoryService {
  /** security.json per repository and libc; OSV exports per repository. */
  private readonly feeds = new FeedCache();
  private readonly osvExports = new FeedCache<{ records: Array<Record<string, unknown>> }>();

  /** Signed statements of the feeds, by the feed's digest (one per feed as served). */
  private readonly signed = new Map<string, Promise<Buffer>>();

  constructor(
    private readonly advisories: AdvisoryStore,
    private readonly packages: PackageStore,
    private readonly attestationKey: AttestationKey,
  ) {}

  /**
   * reef's signed statement that it served `feed` at `url` (a Sigstore bundle,
   * DSSE, in-toto Statement v1 whose subject is the feed's SHA-256, signed with
   * reef's attestation key): what a mirror or an auditor keeps to prove what
   * reef said, and when. One per feed digest; the last few are kept.
   */
  signedFeed(feed: Feed, about: { name: string; url: string; repo: string; libc?: string }) {
    let bundle = this.signed.get(feed.sha256);
    if (!bundle) {
      const statement = {
        _type: IN_TOTO_STATEMENT,
        subject: [{ name: about.name, digest: { sha256: feed.sha256 } }],
        predicateType: FEED_PREDICATE,
        predicate: {
          url: about.url,
          repository: { repo: about.repo, ...(about.libc ? { libc: about.libc } : {}) },
          advisoryGeneration: feed.generation,
          advisoriesChangedAt: new Date(feed.changedAt).toISOString(),
          signedAt: new Date().toISOString(),
        },
      };
      bundle = signStatement(statement, this.attestationKey);
      bundle.catch(() => this.signed.delete(feed.sha256));
      if (this.signed.size >= 64) this.signed.delete(this.signed.keys().next().value!);
      this.signed.set(feed.sha256, bundle);
    }
    return bundle;
  }

  async get(repo: string, origin: string): Promise<StoredAdvisories> {
    validateRepo(repo, 'glibc');
    const doc = await this.advisories.get(repo, origin);
    if (!doc) throw new AppError('ADVISORY_NOT_FOUND', `${repo} has no advisories for package ${origin}`);
    return doc;
  }

  /** A package's advisories, or undefined when it has none (pages show them). */
  async documentOf(repo: string, origin: string) {
    return (await this.advisories.get(repo, origin))?.advisories;
  }

  /** Packages with advisories in a repository, by name, paged. */
  async listPackages(repo: string, limit: number, after: string) {
    validateRepo(repo, 'glibc');
    return this.advisories.listPackages(repo, limit, after);
  }

  /** Replaces one package's advisories with `body` (parsed JSON, or YAML text). */
  async put(repo: string, origin: string, body: unknown): Promise<AdvisoryChange> {
    validateRepo(repo, 'glibc');
    const doc = typeof body === 'string' ? parseAdvisoryYaml(body) : validateAdvisoryDocument(body);
    if (doc.package !== origin) {
      throw new AppError(
        'ADVISORY_INVALID',
        `package.name: the document is about '${doc.package}', and was sent for '${origin}'`,
        { details: { field: 'package.name' } },
      );
    }
    return (await this.write(repo, [doc]))[0]!;
  }

  /**
   * Imports a Wolfi advisories repository's files (`<package>.advisories.yaml`):
   * every file is read and checked before anything is written, then all are
   * written in one transaction. A bad file fails the import, naming it.
   */
  async import(repo: string, files: AdvisoryFile[]): Promise<AdvisoryChange[]> {
    validateRepo(repo, 'glibc');
    if (files.length > MAX_IMPORT_FILES) {
      throw new AppError(
        'ADVISORY_TOO_LARGE',
        `an import takes at most ${MAX_IMPORT_FILES} files; split it by package name`,
      );
    }
    const docs: AdvisoryDocument[] = [];
    const byPackage = new Map<string, string>();
    for (const { file, content } of files) {
      let doc: AdvisoryDocument;
      try {
        doc = parseAdvisoryYaml(content);
      } catch (err) {
        if (err instanceof AppError) {
          throw new AppError(err.code, `${file}: ${err.message}`, { details: { ...err.details, file } });
        }
        throw err;
      }
      const expected = /^(.+)\.advisories\.ya?ml$/.exec(file.split('/').at(-1) ?? '')?.[1];
      if (expected !== undefined && expected !== doc.package) {
        throw new AppError(
          'ADVISORY_INVALID',
          `${file}: package.name is '${doc.package}'; the file is named for '${expected}'`,
          {
            details: { file, field: 'package.name' },
          },
        );
      }
      const other = byPackage.get(doc.package);
      if (other) {
        throw new AppError('ADVISORY_INVALID', `${file}: package ${doc.package} is also in ${other}`, {
          details: { file, field: 'package.name' },
        });
      }
      byPackage.set(doc.package, file);
      docs.push(doc);
    }
    return this.write(repo, docs);
  }

  private async write(repo: string, docs: AdvisoryDocument[]): Promise<AdvisoryChange[]> {
    await this.packages.saveRepo(repo, {});
    return this.advisories.replace(repo, docs);
  }

  /**
   * `/<repo>/<libc>/security.json`: the secdb of the repository, its header
   * naming reef's download URLs (`{{urlprefix}}/{{reponame}}/<libc>/{{arch}}/…`
   * is where a package is), for the arches the libc has indexes for.
   */
  async secdb(repo: string, libc: string, baseUrl: string): Promise<Feed> {
    validateRepo(repo, libc);
    await this.packages.requireRepo(repo);
    const archs = (await this.packages.archesOf(repo, libc as Libc)).filter((a) => a !== 'noarch');
    // One entry per repository and libc: a request with another base URL or arch set replaces it.
    return this.feeds.get(`${repo}/${libc}`, await this.advisories.generation(repo), `${baseUrl}\n${archs}`, {
      load: () => this.advisories.allAt(repo),
      render: (docs) => ({
        bytes: renderSecdb(
          {
            apkurl: `{{urlprefix}}/{{reponame}}/${libc}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk`,
            archs,
            reponame: repo,
            urlprefix: baseUrl,
          },
          docs,
        ),
      }),
    });
  }

  /**
   * The repository's advisories as OSV records, by id (built once per
   * generation). Needs the repository's distro to name an OSV ecosystem.
   */
  async osv(repo: string): Promise<Feed & { records: Array<Record<string, unknown>> }> {
    validateRepo(repo, 'glibc');
    const target = osvTarget(repo, (await this.packages.requireRepo(repo)).distro);
    return this.osvExports.get(
      repo,
      await this.advisories.generation(repo),
      `${target.ecosystem}\n${target.purlNamespace}`,
      {
        load: () => this.advisories.allAt(repo),
        render: (docs) => {
          const records = osvRecords(docs, target);
          return { records, bytes: Buffer.from(`${JSON.stringify(records, null, 2)}\n`) };
        },
      },
    );
  }

  /**
   * `…/<name>-<version>.apk.openvex.json`: the package's statements, from the
   * advisories of its source package; undefined when none says anything.
   */
  async packageVex(key: IndexKey, pkgId: number, url: string): Promise<Feed | undefined> {
    const pkg = await this.packages.getById(pkgId);
    if (!pkg) return undefined;
    const { doc, at } = await this.advisories.getAt(key.repo, pkg.origin || pkg.name);
    if (!doc) return undefined;
    const distro = (await this.packages.getRepo(key.repo))?.distro;
    const vex = packageVex({
      id: url,
      author: `reef security advisories of ${key.repo}`,
      version: at.generation,
      package: {
        name: pkg.name,
        version: pkg.version,
        purl: vexProductPurl(distro?.id ?? key.repo, pkg.name, pkg.version, key.arch),
      },
      advisories: doc.advisories,
    });
    return vex && jsonFeed(vex, at);
  }
}

/**
 * A feed as served: its bytes, their digest (the ETag), and the advisory
 * generation it was built from, with when that generation began.
 */
export interface Feed {
  bytes: Buffer;
  sha256: string;
  generation: number;
  changedAt: number;
}

/** `value` as pretty JSON, a feed of advisory generation `at`. */
export function jsonFeed(value: unknown, at: { generation: number; changedAt: number }): Feed {
  const bytes = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { bytes, sha256, generation: at.generation, changedAt: at.changedAt };
}

/**
 * Built feeds, one per key, kept while the repository's advisory generation
 * and the `variant` (what else shapes the bytes: base URL, arches, ecosystem)
 * stay the same; a build for a new one replaces the old.
 */
class FeedCache<Extra extends object = object> {
  private readonly entries = new Map<string, { generation: number; variant: string; value: Feed & Extra }>();

  /**
   * The feed for `current`, the generation just read; a build loads the
   * advisories with their own generation (one snapshot, so bytes and
   * generation agree when a write landed in between) and is kept under it.
   */
  async get(
    key: string,
    current: AdvisoryGeneration,
    variant: string,
    build: {
      load: () => Promise<{ docs: StoredAdvisories[]; at: AdvisoryGeneration }>;
      render: (docs: StoredAdvisories[]) => { bytes: Buffer } & Extra;
    },
  ): Promise<Feed & Extra> {
    const cached = this.entries.get(key);
    if (cached?.generation === current.generation && cached.variant === variant) return cached.value;
    const { docs, at } = await build.load();
    const built = build.render(docs);
    const value = {
      ...built,
      sha256: createHash('sha256').update(built.bytes).digest('hex'),
      generation: at.generation,
      changedAt: at.changedAt,
    };
    this.entries.set(key, { generation: at.generation, variant, value });
    return value;
  }
}
