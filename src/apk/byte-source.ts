/**
 * A pull reader over an async byte stream: hands out chunks as they come and
 * lets a parser take exact byte counts or push back what it did not use.
 */
export class ByteSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private pending: Buffer[] = [];
  private done = false;
  /** Bytes handed out so far (pushed-back bytes are subtracted again). */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** The next chunk of any non-zero length, or null at end of stream. */
  async next(): Promise<Buffer | null> {
    const head = this.pending.shift();
    if (head) {
      this.position += head.length;
      return head;
    }
    while (!this.done) {
      const r = await this.iterator.next();
      if (r.done) {
        this.done = true;
        break;
      }
      if (r.value.length > 0) {
        const chunk = Buffer.isBuffer(r.value)
          ? r.value
          : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
        this.position += chunk.length;
        return chunk;
      }
    }
    return null;
  }

  /** Give bytes back; they are returned first by the next read. */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending.unshift(chunk);
    this.position -= chunk.length;
  }

  /** Exactly n bytes, or fewer only if the stream ended first. */
  async take(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const chunk = await this.next();
      if (!chunk) break;
      const need = n - have;
      if (chunk.length > need) {
        this.unshift(chunk.subarray(need));
        parts.push(chunk.subarray(0, need));
        have = n;
      } else {
        parts.push(chunk);
        have += chunk.length;
      }
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
  }

  /** Bytes up to and including the next NUL, at most `max` of them (null if none found). */
  async takeUntilNul(max: number): Promise<Buffer | null> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < max) {
      const chunk = await this.next();
      if (!chunk) return null;
      const limit = Math.min(chunk.length, max - have);
      const nul = chunk.subarray(0, limit).indexOf(0);
      if (nul >= 0) {
        this.unshift(chunk.subarray(nul + 1));
        parts.push(chunk.subarray(0, nul + 1));
        return Buffer.concat(parts);
      }
      this.unshift(chunk.subarray(limit));
      parts.push(chunk.subarray(0, limit));
      have += limit;
    }
    return null;
  }

  /** Drain the rest of the stream (to release the producer). */
  async drain(): Promise<void> {
    this.pending = [];
    while (!this.done) {
      const r = await this.iterator.next();
      if (r.done) this.done = true;
    }
  }

  /** Stop reading early; lets the producer clean up. */
  async close(): Promise<void> {
    this.pending = [];
    if (!this.done) {
      this.done = true;
      await this.iterator.return?.();
    }
  }
}

/** Bytes already in memory as the async byte stream the readers take. */
export async function* streamOf(bytes: Buffer): AsyncGenerator<Uint8Array> {
  yield bytes;
}
