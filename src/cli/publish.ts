import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateRepo } from '../repo/publish.ts';
import { DEFAULT_URL, parseServerUrl, readClientEnv } from './client-env.ts';
import { asUsage, type CliContext, EXIT_CODES, type Output, parseCommand, usageError } from './command.ts';
import { publishOptions } from './options.ts';
import { ProgressBar } from './progress.ts';

/** Connection failures are retried this many times; an answer from the server never is (but 502-504). */
const RETRIES = 3;
const BACKOFF_MS = 250;
const RETRY_STATUSES = new Set([502, 503, 504]);

const USAGE = `usage: reef publish --repo REPO --libc glibc|musl [options] FILE.apk…

Uploads each package to a reef server, one after the other, and prints one
line per published file on stdout ("201 created main/glibc/x86_64/hello-1.0-r0.apk",
or "200 exists …" when the same bytes were already there). A rejected file is
reported on stderr as "CODE: message" and the next file is tried. Connection
errors are retried ${RETRIES} times with backoff; rejections (4xx) never are.

Provenance and SBOMs found beside each package are sent with it:
  <name>-<version>.attest.tar.gz   melange's attestation (--generate-provenance)
  <file>.apk.sigstore.json         a Sigstore bundle (cosign attest-blob --bundle,
                                   actions/attest-build-provenance)
  <file>.apk.spdx.json, .cdx.json  an SBOM

options:
  --url URL        REEF_URL     the server (${DEFAULT_URL}); credentials in it
                                (https://user:TOKEN@host) are sent as HTTP Basic
                                instead of --token, and never printed
  --token TOKEN    REEF_TOKEN   a token with the publish scope on REPO; prefer
                                the variable: flags show in the process list
  --repo REPO                   repository to publish into (required)
  --libc LIBC                   glibc or musl (required)
  --provenance FILE             provenance for the (single) package, instead of
                                one found beside it
  --sbom FILE                   an SBOM for the (single) package
  -h, --help

${EXIT_CODES}
  (1 also when any file was rejected; the others are still published)`;

export async function runPublish(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals: files } = parseCommand('publish', {
    args,
    options: publishOptions,
    allowPositionals: true,
  });
  if (values.help) {
    ctx.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const env = readClientEnv(ctx.env);
  const token = values.token ?? env.token;
  const { repo, libc } = values;
  if (files.length === 0) throw usageError(`no file to publish\n\n${USAGE}`);
  if (!repo || !libc) throw usageError('--repo and --libc are required, e.g. --repo main --libc glibc');
  asUsage(() => validateRepo(repo, libc));
  const server = parseServerUrl(values.url ?? env.url, token, '--url / REEF_URL');
  if (!server.authorization) throw usageError('no token: set REEF_TOKEN (or pass --token)');
  const endpoint = `${server.url}/api/v1/repos/${encodeURIComponent(repo)}/${libc}/packages`;
  if ((values.provenance || values.sbom) && files.length > 1) {
    throw usageError(
      '--provenance and --sbom apply to one package; beside several, name them <file>.sigstore.json etc.',
    );
  }
  // Every file is checked before the first upload: a typo in the list publishes nothing.
  const sizes: number[] = [];
  const sides: SideDocument[][] = [];
  for (const file of files) {
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) throw usageError(`${file}: no such file`);
    sizes.push(st.size);
    sides.push(await sideDocuments(file, { provenance: values.provenance, sbom: values.sbom }));
  }

  let failed = 0;
  for (const [i, file] of files.entries()) {
    for (const side of sides[i]!) ctx.stderr.write(`${file}: with ${side.field} ${side.path}\n`);
    const result = await uploadWithRetries(
      ctx.stderr,
      endpoint,
      server.authorization,
      file,
      sizes[i]!,
      sides[i]!,
    );
    if (result.ok) {
      ctx.stdout.write(`${result.status} ${result.outcome} ${result.path}\n`);
      for (const warning of result.warnings) ctx.stderr.write(`${file}: warning: ${warning}\n`);
    } else {
      failed++;
      const status = result.status === undefined ? '' : `${result.status} `;
      ctx.stderr.write(`${file}: ${status}${result.code}: ${result.message}\n`);
    }
  }
  if (files.length > 1 && failed > 0) {
    ctx.stderr.write(`${files.length - failed} of ${files.length} files published; ${failed} failed\n`);
  }
  return failed > 0 ? 1 : 0;
}

type UploadResult =
  | { ok: true; status: number; outcome: string; path: string; warnings: string[] }
  | { ok: false; status: number | undefined; code: string; message: string };

async function uploadWithRetries(
  stderr: Output,
  endpoint: string,
  authorization: string,
  file: string,
  size: number,
  sides: SideDocument[],
): Promise<UploadResult> {
  for (let attempt = 0; ; attempt++) {
    const bar = new ProgressBar(stderr, basename(file), size);
    let retryReason: string;
    try {
      const { status, text } = await uploadOnce(endpoint, authorization, file, size, bar, sides);
      bar.finish();
      if (!RETRY_STATUSES.has(status) || attempt >= RETRIES) return toResult(status, text);
      retryReason = `the server answered ${status}`;
    } catch (err) {
      bar.finish();
      const failure = describeFailure(err);
      if (!failure.retry || attempt >= RETRIES) {
        return { ok: false, status: undefined, code: failure.code, message: failure.message };
      }
      retryReason = failure.message;
    }
    // Publishing is idempotent (same bytes → 200 exists), so a retry is safe even after a lost answer.
    const delay = BACKOFF_MS * 2 ** attempt * (0.8 + Math.random() * 0.4);
    stderr.write(
      `${file}: ${retryReason}; retrying in ${(delay / 1000).toFixed(1)} s (${attempt + 1}/${RETRIES})\n`,
    );
    await sleep(delay);
  }
}

/** A document sent beside a package: multipart field `provenance` or `sbom`. */
interface SideDocument {
  field: 'provenance' | 'sbom';
  path: string;
  bytes: Buffer;
}

/** The documents to send with `file`: given on the command line, else found beside it. */
async function sideDocuments(
  file: string,
  given: { provenance?: string; sbom?: string },
): Promise<SideDocument[]> {
  const candidates: Record<SideDocument['field'], string[]> = {
    provenance: given.provenance
      ? [given.provenance]
      : [file.replace(/\.apk$/, '.attest.tar.gz'), `${file}.sigstore.json`],
    sbom: given.sbom ? [given.sbom] : [`${file}.spdx.json`, `${file}.cdx.json`],
  };
  const found: SideDocument[] = [];
  for (const field of ['provenance', 'sbom'] as const) {
    for (const path of candidates[field]) {
      if (path === file) continue;
      const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' && !given[field]) return undefined;
        throw usageError(`${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      });
      if (bytes) {
        found.push({ field, path, bytes });
        break;
      }
    }
  }
  return found;
}

/**
 * The upload body: the raw .apk, or with side documents a multipart form
 * (documents first, then the package streamed from disk), with its exact length.
 */
function uploadBody(
  file: string,
  size: number,
  sides: SideDocument[],
  counted: () => AsyncGenerator<Uint8Array>,
): { contentType: string; length: number; body: AsyncGenerator<Uint8Array> } {
  if (sides.length === 0) return { contentType: 'application/octet-stream', length: size, body: counted() };
  const boundary = `reef-${randomBytes(16).toString('hex')}`;
  const part = (field: string, filename: string) =>
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename.replace(/["\r\n]/g, '_')}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
  const head = Buffer.concat([
    ...sides.flatMap((s) => [part(s.field, basename(s.path)), s.bytes, Buffer.from('\r\n')]),
    part('package', basename(file)),
  ]);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* body(): AsyncGenerator<Uint8Array> {
    yield head;
    yield* counted();
    yield tail;
  }
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    length: head.length + size + tail.length,
    body: body(),
  };
}

/** One POST of the file (and its side documents), streamed from disk; the whole answer is read. */
async function uploadOnce(
  endpoint: string,
  authorization: string,
  file: string,
  size: number,
  bar: ProgressBar,
  sides: SideDocument[],
): Promise<{ status: number; text: string }> {
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(file)) {
      bar.add((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  }
  const upload = uploadBody(file, size, sides, counted);
  const init = {
    method: 'POST',
    headers: {
      authorization,
      'content-type': upload.contentType,
      // Lets the server refuse an oversize upload before any byte is sent.
      'content-length': String(upload.length),
    },
    body: Readable.toWeb(Readable.from(upload.body)),
    // Node's fetch streams a request body only in half-duplex mode.
    duplex: 'half',
  };
  const res = await fetch(endpoint, init as RequestInit);
  return { status: res.status, text: await res.text() };
}

/** Errors of the connection (not answers of the server) that a later attempt may not meet. */
const RETRY_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** A failed upload that got no answer: a code and a reason to print, and whether to try again. */
function describeFailure(err: unknown): { retry: boolean; code: string; message: string } {
  // fetch rejects with TypeError('fetch failed') and the socket or file error as its cause.
  const cause =
    err instanceof TypeError && err.message === 'fetch failed'
      ? (err.cause as (Error & { code?: string }) | undefined)
      : (err as (Error & { code?: string }) | undefined);
  const code = cause?.code;
  if (code !== undefined && RETRY_CODES.has(code)) {
    return { retry: true, code: 'CONNECTION_FAILED', message: `cannot reach the server: ${cause!.message}` };
  }
  return { retry: false, code: 'UPLOAD_FAILED', message: cause?.message ?? String(err) };
}

function toResult(status: number, text: string): UploadResult {
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  if ((status === 200 || status === 201) && typeof body?.filename === 'string') {
    return {
      ok: true,
      status,
      outcome: String(body.outcome ?? (status === 201 ? 'created' : 'exists')),
      path: `${body.repo}/${body.libc}/${body.arch}/${body.filename}`,
      warnings: Array.isArray(body.warnings) ? body.warnings.map(String) : [],
    };
  }
  if (typeof body?.code === 'string') {
    return { ok: false, status, code: body.code, message: String(body.message ?? '') };
  }
  // Not reef's answer (a proxy's error page, say): show its start.
  return { ok: false, status, code: `HTTP_${status}`, message: text.slice(0, 200).trim() || '(empty body)' };
}
