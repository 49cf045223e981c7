import { parentPort } from 'node:worker_threads';
import { AppError } from '../errors.ts';
import { parseSbom } from './parse.ts';
import { checkSentSbom } from './sent-rules.ts';
import type { SbomSummary } from './types.ts';

/**
 * The body of the SBOM parser thread (src/repo/sbom-parser.ts): parseSbom on
 * a document's bytes, answered with what the caller keeps. JSON.parse and the
 * schema walk of a 16 MiB document take seconds of CPU; here they block this
 * thread, not the server's event loop. The tree never leaves the thread.
 */

export interface ParseRequest {
  id: number;
  bytes: Uint8Array;
  /** Sent by a publisher, not embedded by melange: the rules of sent-rules.ts apply too. */
  sent?: boolean;
}

export type ParseAnswer =
  | { id: number; ok: SbomSummary }
  | { id: number; error: { code: AppError['code']; message: string; details?: Record<string, unknown> } }
  | { id: number; crash: string };

function answer(request: ParseRequest): ParseAnswer {
  const bytes = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength);
  try {
    const parsed = parseSbom(bytes);
    if (request.sent) checkSentSbom(parsed.document);
    const { format, specVersion, describes, components } = parsed;
    return { id: request.id, ok: { format, specVersion, describes, components } };
  } catch (err) {
    if (err instanceof AppError) {
      return { id: request.id, error: { code: err.code, message: err.message, details: err.details } };
    }
    return { id: request.id, crash: err instanceof Error ? err.message : String(err) };
  }
}

parentPort?.on('message', (request: ParseRequest) => {
  parentPort!.postMessage(answer(request));
});
