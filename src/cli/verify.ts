import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { type IndexRecord, readIndex } from '../apk/index-reader.ts';
import { type ApkPackage, readApk } from '../apk/read-apk.ts';
import { loadPublicKey, type PublicKeyEntry } from '../apk/signature.ts';
import { provenancePolicySchema } from '../config.ts';
import { AppError } from '../errors.ts';
import { PUBLISH_PREDICATE } from '../provenance/publish-statement.ts';
import { bindSubject, parseStatement } from '../provenance/statement.ts';
import { BundleVerifier, parseDsseBundle } from '../provenance/verify-bundle.ts';
import { ProvenancePolicies } from '../repo/provenance.ts';
import { checkDescribes, parseSbom } from '../sbom/parse.ts';
import { redactUrl } from '../url-credentials.ts';
import { parseServerUrl, readClientEnv } from './client-env.ts';
import { type CliContext, CliError, EXIT_CODES, parseCommand, usageError } from './command.ts';
import { verifyOptions } from './options.ts';

const USAGE = `usage: reef verify [options] PACKAGE-URL
       reef verify [options] --apk FILE --repo-url REPO-URL

Checks a package's whole chain after downloading it, and prints each step:
  keys         the repository's index keys and reef's attestation key
  index        APKINDEX.tar.gz is signed by one of the index keys and lists the package
  package      the .apk's C: (control checksum) and S: (size) match the index,
               and its datahash matches its data
  sbom         the SBOM as stored (.sbom.original.json) describes the package
  attestation  reef's signed record of the publish verifies with the attestation
               key, names this .apk's SHA-256 and the SBOM's digest
  provenance   the publisher's provenance verifies under the policy given here
               (skipped when no --identity, --identity-regex or --publisher-key)
It stops at the first step that fails and exits 1.

PACKAGE-URL is https://host/<repo>/<libc>/<arch>/<name>-<version>.apk; REPO-URL
is https://host/<repo>/<libc>, the line apk has in /etc/apk/repositories. For a
private repository either may carry a token as apk's lines do
(https://user:TOKEN@host/…): it is sent as HTTP Basic, never printed, and wins
over --token and REEF_TOKEN.

options:
  --key FILE               an index public key to trust (repeatable); without
                           it the keys the server serves are used, trusted on first use
  --attestation-key FILE   reef's attestation public key (PEM); default: fetched
  --identity SAN           publisher certificate SAN that must have signed the
                           provenance (exact), with --issuer
  --identity-regex RE      or a regular expression the whole SAN must match
  --issuer URL             the OIDC issuer, e.g. https://token.actions.githubusercontent.com
  --trusted-root FILE      a Sigstore trusted_root.json, or 'public-good' (default)
  --publisher-key FILE     a publisher public key that may sign provenance (repeatable)
  --token TOKEN  REEF_TOKEN   for private repositories (sent as a Bearer token)
  -h, --help

${EXIT_CODES}`;

interface Target {
  /** Without credentials: safe to print. */
  repoUrl: string;
  authorization: string | undefined;
  arch?: string;
  filename?: string;
  localApk?: string;
}

class StepFailure extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(message);
  }
}

export async function runVerify(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommand('verify', {
    args,
    options: verifyOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const token = values.token ?? readClientEnv(ctx.env).token;
  const target = parseTarget(positionals, values.apk, values['repo-url'], token);
  const headers: Record<string, string> = target.authorization ? { authorization: target.authorization } : {};
  const identities =
    values.identity || values['identity-regex']
      ? [
          {
            ...(values.identity ? { subjectAlternativeName: values.identity } : {}),
            ...(values['identity-regex'] ? { subjectAlternativeNameRegex: values['identity-regex'] } : {}),
            issuer: values.issuer ?? '',
          },
        ]
      : [];
  if (identities.length > 0 && !values.issuer) throw usageError('--identity needs --issuer');
  const publisherKeys = values['publisher-key'] ?? [];
  const policyGiven = identities.length > 0 || publisherKeys.length > 0;
  let policies: ProvenancePolicies | undefined;
  if (policyGiven) {
    const parsed = provenancePolicySchema.safeParse({
      mode: 'require',
      keys: publisherKeys,
      identities,
      trustedRoot: identities.length > 0 ? (values['trusted-root'] ?? 'public-good') : values['trusted-root'],
    });
    if (!parsed.success) throw usageError(parsed.error.issues[0]!.message);
    policies = new ProvenancePolicies({ '*': parsed.data }, process.cwd());
  }

  const ok = (step: string, detail: string) => ctx.stdout.write(`ok    ${step.padEnd(12)}${detail}\n`);
  const get = async (url: string, step: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: 'error' });
    } catch (err) {
      throw new StepFailure(step, `cannot fetch ${url}: ${(err as Error).message}`);
    }
    if (!res.ok) throw new StepFailure(step, `${url} answered ${res.status}`);
    return res;
  };
  const getBytes = async (url: string, step: string, max = 64 * 2 ** 20): Promise<Buffer> => {
    const res = await get(url, step);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > max) throw new StepFailure(step, `${url} is larger than ${max} bytes`);
    return bytes;
  };
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  try {
    // keys
    const serverRoot = target.repoUrl.replace(/\/[^/]+\/[^/]+$/, '');
    const indexKeys: PublicKeyEntry[] = [];
    for (const file of values.key ?? []) indexKeys.push(loadPublicKey(basename(file), await readFile(file)));
    const listing = (await (await get(`${serverRoot}/keys`, 'keys')).json()) as {
      keys: string[];
      attestation: string;
    };
    if (indexKeys.length === 0) {
      for (const name of listing.keys) {
        indexKeys.push(loadPublicKey(name, await getBytes(`${target.repoUrl}/${name}`, 'keys')));
      }
    }
    const attestationPem = values['attestation-key']
      ? await readFile(values['attestation-key'])
      : await getBytes(`${serverRoot}/keys/${listing.attestation}`, 'keys');
    let attestationKey: KeyObject;
    try {
      attestationKey = createPublicKey(attestationPem);
    } catch (err) {
      throw new StepFailure('keys', `the attestation key is not a PEM public key: ${describe(err)}`);
    }
    // Trusts that one key and nothing else: no CA, no log, whatever the bundle's key hint says.
    const attestationVerifier = new BundleVerifier({
      keys: [{ name: basename(values['attestation-key'] ?? listing.attestation), key: attestationKey }],
      identities: [],
      trustedRoot: undefined,
      identityThresholds: { tlog: 1, ctlog: 1, timestamp: 1 },
      keyThresholds: { tlog: 0, timestamp: 0 },
    });
    ok(
      'keys',
      `${indexKeys.map((k) => k.name).join(', ')}${values.key ? ' (pinned)' : ' (as served: trusted on first use; pin with --key)'}`,
    );

    // package bytes first when local: they name the arch
    let apk: ApkPackage | undefined;
    if (target.localApk) {
      apk = await readApkOr(createReadStream(target.localApk));
      target.arch = apk.pkginfo.arch;
      target.filename = basename(target.localApk);
    }
    const dir = `${target.repoUrl}/${target.arch}`;
    const filename = target.filename ?? '';

    // index
    const indexRes = await get(`${dir}/APKINDEX.tar.gz`, 'index');
    let record: IndexRecord | undefined;
    try {
      const index = await readIndex(bodyOf(indexRes), { keys: indexKeys, requireValidSignature: true });
      record = index.records.find((r) => `${r.name}-${r.version}.apk` === target.filename);
      if (!record) throw new StepFailure('index', `the index does not list ${target.filename}`);
      ok('index', `signed by ${index.verification?.verifiedBy}; lists ${record.name} ${record.version}`);
    } catch (err) {
      if (err instanceof StepFailure) throw err;
      throw new StepFailure('index', describe(err));
    }

    // package
    if (!apk) apk = await readApkOr(bodyOf(await get(`${dir}/${target.filename}`, 'package')));
    if (apk.checksum !== record.checksum) {
      throw new StepFailure('package', `C: is ${apk.checksum}, the index says ${record.checksum}`);
    }
    if (apk.size !== record.size)
      throw new StepFailure('package', `S: is ${apk.size}, the index says ${record.size}`);
    if (apk.pkginfo.name !== record.name || apk.pkginfo.version !== record.version) {
      throw new StepFailure('package', `the .apk is ${apk.pkginfo.name} ${apk.pkginfo.version}`);
    }
    ok(
      'package',
      `C: ${apk.checksum}, S: ${apk.size}, datahash ${apk.dataSha256.slice(0, 16)}…, sha256 ${apk.sha256}`,
    );

    // attestation (read before the SBOM check: it names which SBOM document reef stored)
    const publishBytes = await getBytes(`${dir}/${target.filename}.publish.json`, 'attestation');
    const statement = verifyReefAttestation(attestationVerifier, publishBytes, apk);

    // sbom
    const sbomMeta = statement.predicate.sbom as { sha256?: string; format?: string } | undefined;
    // The document as stored, whose digest the attestation names: .spdx.json may be it normalized.
    const sbomSuffix = '.sbom.original.json';
    const sbomBytes = await getBytes(`${dir}/${target.filename}${sbomSuffix}`, 'sbom');
    try {
      const parsed = parseSbom(sbomBytes);
      checkDescribes(parsed, { name: apk.pkginfo.name, version: apk.pkginfo.version });
    } catch (err) {
      throw new StepFailure('sbom', describe(err));
    }
    if (sbomMeta?.sha256 !== sha256(sbomBytes)) {
      throw new StepFailure(
        'sbom',
        `its SHA-256 is ${sha256(sbomBytes)}; reef's attestation recorded ${sbomMeta?.sha256}`,
      );
    }
    ok(
      'sbom',
      `${sbomSuffix.slice(1)} describes ${apk.pkginfo.name} ${apk.pkginfo.version}, digest as attested`,
    );
    ok(
      'attestation',
      `signed by reef's attestation key; subject sha256 ${apk.sha256.slice(0, 16)}…; published ${String(statement.predicate.publishedAt)}`,
    );

    // provenance
    const provBytes = await getBytes(`${dir}/${target.filename}.provenance.json`, 'provenance');
    let publisher: Buffer | undefined = provBytes.equals(publishBytes) ? undefined : provBytes;
    if (!publisher) {
      const melange = await fetch(`${dir}/${filename.replace(/\.apk$/, '.attest.tar.gz')}`, {
        headers,
        redirect: 'error',
      });
      if (melange.ok) publisher = Buffer.from(await melange.arrayBuffer());
    }
    if (!policies) {
      ctx.stdout.write(
        `skip  ${'provenance'.padEnd(12)}${publisher ? 'the publisher sent provenance' : 'no publisher provenance'}; no policy given (--identity/--publisher-key)\n`,
      );
      return 0;
    }
    if (!publisher) throw new StepFailure('provenance', 'the package has no publisher provenance');
    try {
      const p = apk.pkginfo;
      const evaluated = await policies.evaluate('*', publisher, {
        filename,
        sha256: apk.sha256,
        datahash: apk.dataSha256,
        name: p.name,
        version: p.version,
      });
      policies.enforce('*', evaluated);
      const signer = evaluated.result.signer;
      ok(
        'provenance',
        `verified; signer ${signer?.kind === 'identity' ? `${signer.subjectAlternativeName} (${signer.issuer})` : signer?.key}; builder ${evaluated.result.predicate.builderId ?? 'unknown'}`,
      );
    } catch (err) {
      throw new StepFailure('provenance', describe(err));
    }
    return 0;
  } catch (err) {
    if (err instanceof StepFailure) {
      ctx.stdout.write(redactUrl(`FAIL  ${err.step.padEnd(12)}${err.message}\n`));
      return 1;
    }
    throw err;
  }
}

/** reef's own record of the publish: signed by the attestation key, about this very .apk. */
function verifyReefAttestation(
  verifier: BundleVerifier,
  bytes: Buffer,
  apk: ApkPackage,
): { predicate: Record<string, unknown> } {
  try {
    const { bundle, payload } = parseDsseBundle(bytes);
    const verdict = verifier.verify(bundle);
    if (!verdict.verified) throw new AppError('PROVENANCE_UNVERIFIED', verdict.reason);
    const statement = parseStatement(payload, PUBLISH_PREDICATE);
    const target = {
      filename: `${apk.pkginfo.name}-${apk.pkginfo.version}.apk`,
      sha256: apk.sha256,
      datahash: apk.dataSha256,
    };
    // reef names the whole file, never the datahash.
    if (bindSubject(statement, target) !== 'sha256') {
      throw new AppError(
        'PROVENANCE_SUBJECT_MISMATCH',
        `it names the datahash, not this .apk (${apk.sha256})`,
      );
    }
    return statement;
  } catch (err) {
    throw new StepFailure('attestation', describe(err));
  }
}

async function readApkOr(source: AsyncIterable<Uint8Array>): Promise<ApkPackage> {
  try {
    return await readApk(source);
  } catch (err) {
    throw new StepFailure('package', describe(err));
  }
}

function bodyOf(res: Response): AsyncIterable<Uint8Array> {
  if (!res.body) return Readable.from([]);
  return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
}

function describe(err: unknown): string {
  if (err instanceof AppError) return `${err.code}: ${err.message}`;
  return (err as Error).message ?? String(err);
}

function parseTarget(
  positionals: string[],
  apk: string | undefined,
  repoUrl: string | undefined,
  token: string | undefined,
): Target {
  if (apk) {
    if (!repoUrl) throw usageError('--apk needs --repo-url, e.g. https://host/main/musl');
    if (positionals.length > 0) throw usageError('give either a package URL or --apk with --repo-url');
    const repo = parseServerUrl(repoUrl, token, '--repo-url');
    return { repoUrl: repo.url, authorization: repo.authorization, localApk: apk };
  }
  if (positionals.length !== 1) throw usageError(`give one package URL\n\n${USAGE}`);
  const { url, authorization } = parseServerUrl(positionals[0]!, token, 'the package URL');
  const m = /^(https?:\/\/.+)\/([^/]+)\/([^/]+\.apk)$/.exec(url);
  if (!m)
    throw new CliError(
      `${url} is not a package URL (https://host/<repo>/<libc>/<arch>/<name>-<version>.apk)`,
      2,
    );
  return { repoUrl: m[1]!.replace(/\/+$/, ''), authorization, arch: m[2]!, filename: m[3]! };
}
