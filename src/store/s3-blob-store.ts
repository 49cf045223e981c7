import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3Settings } from '../config.ts';
import { AppError } from '../errors.ts';
import {
  type BlobInventory,
  type BlobListing,
  type BlobStore,
  blobKeyAt,
  checkBlobKey,
  LocalSpool,
  type TempBlob,
} from './blob-store.ts';

/** A connection to the object store that carries nothing this long is given up (as REEF_IDLE_TIMEOUT_MS does for clients). */
const S3_IDLE_TIMEOUT_MS = 120_000;

/** Blobs up to this size are sent without asking whether the store has them already. */
const ASK_FIRST_ABOVE = 1024 * 1024;

/**
 * Blobs up to this size go in one PUT (S3 takes up to 5 GiB so); larger
 * ones as a multipart upload, which costs two more requests and buffers
 * its parts in memory.
 */
const SINGLE_PUT_UP_TO = 64 * 1024 * 1024;

/**
 * Blobs as objects of an S3-compatible store (AWS S3, MinIO, Ceph, Swift's
 * s3api), under `<prefix>blobs/sha256/<aa>/<sha256>` as in the data folder.
 * Keys are content addresses, so two writers of one key write the same
 * bytes and no conditional write is needed (Swift answers `If-None-Match`
 * with 501). Uploads are spooled locally and sent once hashed and accepted.
 */
export class S3BlobStore implements BlobStore, BlobInventory {
  /** HEAD, PUT, DELETE, LIST: short calls, on their own connections. */
  private readonly client: S3Client;
  /**
   * GETs whose bodies are streamed to clients. A slow client holds its
   * connection as long as it reads; on a pool of their own, such downloads
   * can never starve publishes, checks or deletes of connections.
   */
  private readonly downloads: S3Client;
  private readonly spool: LocalSpool;

  constructor(
    private readonly settings: S3Settings,
    dataDir: string,
  ) {
    const client = (maxSockets: number) =>
      new S3Client({
        region: settings.region,
        endpoint: settings.endpoint,
        forcePathStyle: settings.pathStyle,
        credentials: settings.credentials,
        // Checksums only where the API demands them: the SDK's default sends streamed bodies
        // `aws-chunked` with a trailing CRC, which several S3-compatible servers refuse (501).
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: 3,
        // The SDK waits forever by default: a store that stops answering would hold requests
        // and connections for good. A socket idle this long is given up (503 for the caller).
        requestHandler: new NodeHttpHandler({
          connectionTimeout: 10_000,
          requestTimeout: S3_IDLE_TIMEOUT_MS,
          httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
          httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
        }),
      });
    this.client = client(50);
    this.downloads = client(256);
    this.spool = new LocalSpool(dataDir);
  }

  /** The local spool, and the bucket: created when missing and the credentials allow it. */
  async init(sweepSpool = true): Promise<void> {
    await this.spool.init(sweepSpool);
    const Bucket = this.settings.bucket;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw unavailable(err, `bucket ${Bucket} cannot be reached`);
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket }));
    } catch (err) {
      // Another replica may have created it meanwhile.
      const code = (err as { name?: string }).name;
      if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') return;
      throw new AppError(
        'CONFIG_INVALID',
        `bucket ${Bucket} does not exist and could not be created (${describe(err)}); create it, or give credentials that may`,
        { cause: err },
      );
    }
  }

  /** Closes the client's connections. */
  close(): void {
    this.client.destroy();
    this.downloads.destroy();
  }

  /** The key prefix every blob lies under. */
  private get blobArea(): string {
    return `${this.settings.prefix}blobs/sha256/`;
  }

  keyOf(sha256: string): string {
    checkBlobKey(sha256);
    return `${this.blobArea}${sha256.slice(0, 2)}/${sha256}`;
  }

  createTemp(): Promise<TempBlob> {
    return this.spool.create();
  }

  async commit(temp: TempBlob, sha256: string): Promise<void> {
    const Key = this.keyOf(sha256);
    try {
      const { size } = await stat(temp.path);
      // Asking first costs a round trip; for a small blob, sending the same bytes again
      // costs about as much, and under a content address it changes nothing.
      if (size <= ASK_FIRST_ABOVE || !(await this.has(sha256))) {
        // The body streamed from the spool with its length known.
        const params = {
          Bucket: this.settings.bucket,
          Key,
          Body: createReadStream(temp.path),
          ContentLength: size,
        };
        if (size <= SINGLE_PUT_UP_TO) await this.client.send(new PutObjectCommand(params));
        else await new Upload({ client: this.client, params }).done();
        // The object store acknowledged the bytes: they are as durable as it makes them.
      }
    } catch (err) {
      throw unavailable(err, 'the object store did not take the blob');
    }
    await temp.discard();
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== undefined;
  }

  async size(sha256: string): Promise<number | undefined> {
    return (await this.head(sha256))?.ContentLength;
  }

  /** The object's metadata, or undefined when there is none. */
  private async head(sha256: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(
        new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(sha256) }),
      );
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw unavailable(err, 'the object store did not answer');
    }
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    const out = new PassThrough();
    const Key = this.keyOf(sha256);
    this.downloads
      .send(
        new GetObjectCommand({
          Bucket: this.settings.bucket,
          Key,
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
        { abortSignal: abortOn(out) },
      )
      .then((res) => pipeline(res.Body as Readable, out))
      .catch((err) => out.destroy(unavailable(err, 'the object store did not send the blob') as Error));
    return out;
  }

  async version(sha256: string): Promise<string | undefined> {
    const head = await this.head(sha256);
    // Without an ETag or a time a rewrite could not be told apart: no version, verified every time.
    if (!head?.ETag || !head.LastModified) return undefined;
    return `${head.ETag} ${head.LastModified.getTime()} ${head.ContentLength}`;
  }

  async readAll(sha256: string): Promise<Buffer> {
    try {
      const res = await this.downloads.send(
        new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(sha256) }),
      );
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      throw unavailable(err, 'the object store did not send the blob');
    }
  }

  /** A presigned GET: signed here with the store's credentials, checked by the store, no request made. */
  url(sha256: string, seconds: number): Promise<string> {
    return getSignedUrl(
      this.client,
      new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(sha256) }),
      {
        expiresIn: seconds,
      },
    );
  }

  async delete(sha256: string): Promise<void> {
    await this.deleteKey(this.keyOf(sha256));
  }

  /** Every object under the blob area, a page (up to 1000 keys) at a time. */
  async *list(): AsyncIterable<BlobListing> {
    const Bucket = this.settings.bucket;
    const area = this.blobArea;
    let ContinuationToken: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket, Prefix: area, ContinuationToken }));
      } catch (err) {
        throw unavailable(err, 'the object store did not list the blobs');
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        const sha256 = blobKeyAt(o.Key.slice(area.length));
        const entry = {
          location: `s3://${Bucket}/${o.Key}`,
          size: o.Size ?? 0,
          // Without a date the object cannot be shown to be old: taken for new, so never garbage too early.
          modifiedAt: o.LastModified?.getTime() ?? Date.now(),
        };
        yield sha256 ? { kind: 'blob', sha256, ...entry } : { kind: 'stray', ...entry };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  locationOf(sha256: string): string {
    return `s3://${this.settings.bucket}/${this.keyOf(sha256)}`;
  }

  async deleteStray(location: string): Promise<void> {
    const base = `s3://${this.settings.bucket}/`;
    // SECURITY: only keys under this store's blob area are ours to remove, never the rest of the bucket.
    if (!location.startsWith(base + this.blobArea)) {
      throw new AppError('INTERNAL', 'a stray to remove lies outside the blob area');
    }
    await this.deleteKey(location.slice(base.length));
  }

  private async deleteKey(Key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key }));
    } catch (err) {
      if (statusOf(err) !== 404) throw unavailable(err, 'the object store did not delete the blob');
    }
  }
}

/** An AbortSignal that fires when the reader goes away, so the object's download stops with it. */
function abortOn(stream: Readable): AbortSignal {
  const controller = new AbortController();
  stream.once('close', () => controller.abort());
  return controller.signal;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

function describe(err: unknown): string {
  const status = statusOf(err);
  const name = (err as { name?: string }).name ?? 'error';
  return status ? `${name}, HTTP ${status}` : name;
}

/**
 * An object store that refused or did not answer, as reef's storage code:
 * 503 with a message naming the operation, never the endpoint's secrets.
 * A missing object (404) is the caller's to judge and is passed unchanged.
 */
function unavailable(err: unknown, what: string): unknown {
  if (err instanceof AppError) return err;
  if (statusOf(err) === 404) return err;
  return new AppError('STORAGE_UNAVAILABLE', `${what} (${describe(err)}); try again later`, { cause: err });
}
