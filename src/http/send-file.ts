import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Serves immutable-by-content bytes the way apk, apko and CDNs expect
 * (apk-format.md §7.5, §7.6): a strong ETag identical on HEAD and GET,
 * Last-Modified, 304 for If-None-Match / If-Modified-Since, single byte
 * ranges with 206, and never a Content-Encoding.
 */
export interface FileToSend {
  /** Hex digest of the content: the strong ETag. */
  sha256: string;
  size: number;
  lastModified: number;
  cacheControl: string;
  contentType: string;
  /** The whole content when it is small enough to hold in memory (cached). */
  bytes: Buffer | undefined;
  open(range?: { start: number; end: number }): Readable;
}

export function sendFile(request: FastifyRequest, reply: FastifyReply, file: FileToSend): FastifyReply {
  const etag = `"${file.sha256}"`;
  const lastModified = new Date(Math.floor(file.lastModified / 1000) * 1000);
  reply
    .header('ETag', etag)
    .header('Last-Modified', lastModified.toUTCString())
    .header('Cache-Control', file.cacheControl)
    .header('Accept-Ranges', 'bytes')
    .header('Content-Type', file.contentType);

  if (notModified(request, etag, lastModified)) return reply.code(304).send();

  const ifRange = request.headers['if-range'];
  const range = parseRange(
    request.headers.range,
    file.size,
    Array.isArray(ifRange) ? ifRange[0] : ifRange,
    etag,
  );
  if (range === 'unsatisfiable') {
    return reply.code(416).header('Content-Range', `bytes */${file.size}`).send();
  }
  if (range) {
    reply
      .code(206)
      .header('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`)
      .header('Content-Length', range.end - range.start + 1);
    if (request.method === 'HEAD') return reply.send();
    return reply.send(file.bytes ? file.bytes.subarray(range.start, range.end + 1) : file.open(range));
  }
  reply.header('Content-Length', file.size);
  if (request.method === 'HEAD') return reply.send();
  return reply.send(file.bytes ?? file.open());
}

function notModified(request: FastifyRequest, etag: string, lastModified: Date): boolean {
  const inm = request.headers['if-none-match'];
  if (inm !== undefined) {
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2); weak comparison is allowed here.
    return inm
      .split(',')
      .map((t) => t.trim().replace(/^W\//, ''))
      .some((t) => t === etag || t === '*');
  }
  const ims = request.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  if (Number.isNaN(since)) return false;
  // apk sends the local mtime of its cached copy, at one-second resolution. A
  // change within the same second as that download must not look unmodified,
  // so only strictly older content is "not modified".
  return lastModified.getTime() < since;
}

/** One `bytes=` range (multiple ranges are answered with the whole body, which RFC 9110 allows). */
function parseRange(
  header: string | undefined,
  size: number,
  ifRange: string | undefined,
  etag: string,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header || (ifRange !== undefined && ifRange !== etag)) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}
