import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, isAppError } from '../errors.ts';
import { translateFsError } from './blob-store.ts';

/**
 * Whether the data folder takes writes, asked of the file system itself: a
 * small file written, fsynced and removed. A folder that fell read-only
 * still serves every read, so only a write tells. The answer is kept for
 * `ttlMs` and callers at the same moment share one probe, so a readiness
 * endpoint polled every second costs one small write every few seconds.
 */
export class WriteProbe {
  private last: { at: number; failure: AppError | undefined } | undefined;
  private running: Promise<AppError | undefined> | undefined;

  constructor(
    /** A folder of the data folder that only reef writes (the upload temp folder, swept at start). */
    private readonly dir: string,
    private readonly ttlMs = 2000,
    /** A write that takes longer counts as a failure: a hung disk must not hang the caller. */
    private readonly timeoutMs = 5000,
  ) {}

  /** Undefined once a write went through; else why none did, as a storage error. */
  async check(): Promise<AppError | undefined> {
    if (this.last && performance.now() - this.last.at < this.ttlMs) return this.last.failure;
    this.running ??= this.probe().finally(() => {
      this.running = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<AppError>((resolve) => {
      timer = setTimeout(
        () =>
          resolve(
            new AppError(
              'STORAGE_READ_ONLY',
              `the data folder did not take a write within ${this.timeoutMs} ms`,
            ),
          ),
        this.timeoutMs,
      );
      timer.unref();
    });
    try {
      return await Promise.race([this.running, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async probe(): Promise<AppError | undefined> {
    // Named by pid, so two reef processes on one folder never remove each other's probe.
    const path = join(this.dir, `.write-probe-${process.pid}`);
    let failure: AppError | undefined;
    try {
      const fh = await open(path, 'w', 0o600);
      try {
        await fh.write('reef');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await unlink(path);
    } catch (err) {
      // Created but not written (a full disk): nothing of the probe stays behind.
      await unlink(path).catch(() => {});
      const translated = translateFsError(err);
      failure = isAppError(translated)
        ? translated
        : new AppError('INTERNAL', `the data folder cannot be written (${errnoOf(err)})`, { cause: err });
    }
    this.last = { at: performance.now(), failure };
    return failure;
  }
}

function errnoOf(err: unknown): string {
  return String((err as NodeJS.ErrnoException).code ?? 'unknown error');
}
