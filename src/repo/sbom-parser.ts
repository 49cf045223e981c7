import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { AppError } from '../errors.ts';
import type { ParseAnswer, ParseRequest } from '../sbom/parse-worker.ts';
import type { SbomSummary } from '../sbom/types.ts';

/**
 * Reads sent and embedded SBOMs off the event loop. JSON.parse and the schema
 * walk of a 16 MiB SPDX document block for seconds; sixteen at once held
 * /readyz for 8 s. Here one worker thread parses one document at a time (on
 * two cores, a second would take the core the server answers on), and each
 * document is read from its temp blob only when the worker is free: waiting
 * documents cost a file on disk, not memory.
 */

/** The worker's heap: one 16 MiB document's tree fits (about 10× its bytes); a hostile one fails alone. */
const WORKER_HEAP_MB = 512;

export class SbomParser {
  private worker: Worker | undefined;
  private readonly queue: Array<{
    path: string;
    sent: boolean;
    resolve(s: SbomSummary): void;
    reject(e: unknown): void;
  }> = [];
  private running = false;
  private nextId = 1;

  /**
   * Parses, validates and summarizes the SBOM in a finished temp blob (parseSbom, in the worker);
   * `sent`: a publisher's document, held to the rules of src/sbom/sent-rules.ts as well.
   */
  parse(path: string, options: { sent?: boolean } = {}): Promise<SbomSummary> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, sent: options.sent ?? false, resolve, reject });
      void this.pump();
    });
  }

  /** Documents waiting for the worker, the one it parses included. */
  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let job = this.queue.shift(); job; job = this.queue.shift()) {
        try {
          job.resolve(await this.parseOne(job.path, job.sent));
        } catch (err) {
          job.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async parseOne(path: string, sent: boolean): Promise<SbomSummary> {
    const read = await readFile(path);
    // Handed over, not copied: the main thread lets the bytes go as they leave.
    const bytes =
      read.byteOffset === 0 && read.buffer.byteLength === read.length ? read : Uint8Array.from(read);
    const worker = this.started();
    const id = this.nextId++;
    const answer = await new Promise<ParseAnswer>((resolve, reject) => {
      const onMessage = (a: ParseAnswer) => {
        if (a.id !== id) return;
        done();
        resolve(a);
      };
      const onExit = (code: number) => {
        done();
        reject(new Error(`the SBOM parser thread exited (code ${code})`));
      };
      const onError = (err: Error) => {
        done();
        reject(err);
      };
      const done = () => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.on('exit', onExit);
      worker.on('error', onError);
      worker.postMessage({ id, bytes, sent } satisfies ParseRequest, [bytes.buffer as ArrayBuffer]);
    }).catch((err: unknown) => {
      if (this.worker === worker) this.worker = undefined;
      void worker.terminate();
      if ((err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new AppError(
          'SBOM_TOO_LARGE',
          'the SBOM needs more memory to read than reef gives one document',
          {
            cause: err,
          },
        );
      }
      throw new AppError('INTERNAL', 'the SBOM parser thread failed', { cause: err });
    });
    if ('ok' in answer) return answer.ok;
    if ('error' in answer) {
      throw new AppError(answer.error.code, answer.error.message, { details: answer.error.details });
    }
    throw new AppError('INTERNAL', `the SBOM parser failed: ${answer.crash}`);
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const options = { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } };
    let worker: Worker;
    if (import.meta.url.endsWith('.ts')) {
      // Run from the TypeScript sources (tests, bin/reef.js): the thread registers tsx itself.
      const tsx = import.meta.resolve('tsx/esm/api');
      const entry = new URL('../sbom/parse-worker.ts', import.meta.url).href;
      worker = new Worker(
        `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`,
        { ...options, eval: true },
      );
    } else {
      // The esbuild bundle: the worker is an entry point of its own beside main.mjs (npm run build).
      worker = new Worker(new URL('./parse-worker.mjs', import.meta.url), options);
    }
    // An idle parser does not keep the process alive; a pending request does.
    worker.unref();
    // A thread that died (out of memory, terminated) is replaced on the next document.
    worker.once('exit', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }
}
