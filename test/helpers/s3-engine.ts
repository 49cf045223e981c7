import { randomBytes } from 'node:crypto';

/**
 * The S3 server the blob store's S3 tests talk to. No mock: a real
 * S3-compatible server (OpenStack Swift with its s3api middleware, started by
 * `.ci/s3-swift.sh`), named by REEF_TEST_S3_* variables. Without them, or when
 * the server does not answer, those tests skip with a message saying how to
 * start one. `.ci/run` starts the server and sets REEF_REQUIRE_S3=1, which
 * turns a missing or silent server into a failure, so CI cannot pass by
 * skipping them.
 */
export interface S3Engine {
  /** e.g. `http://127.0.0.1:9000`, no trailing slash; path-style requests. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const HOW_TO_START =
  'start one with `bash .ci/s3-swift.sh start /tmp/reef-s3` and set ' +
  'REEF_TEST_S3_ENDPOINT=http://127.0.0.1:9000 REEF_TEST_S3_ACCESS_KEY_ID=test:tester ' +
  'REEF_TEST_S3_SECRET_ACCESS_KEY=testing (REEF_TEST_S3_REGION defaults to us-east-1)';

function engineFromEnv(): S3Engine | undefined {
  const endpoint = process.env.REEF_TEST_S3_ENDPOINT;
  const accessKeyId = process.env.REEF_TEST_S3_ACCESS_KEY_ID;
  const secretAccessKey = process.env.REEF_TEST_S3_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return {
    endpoint: endpoint.replace(/\/+$/, ''),
    region: process.env.REEF_TEST_S3_REGION || 'us-east-1',
    accessKeyId,
    secretAccessKey,
  };
}

/**
 * Why the server is unusable, or undefined when it answers. Any HTTP answer
 * counts: an unsigned `GET /` gets a 4xx from Swift, which shows that it is up.
 * Asked up to three times: on a loaded machine one answer may take over 5 s.
 */
async function probe(engine: S3Engine): Promise<string | undefined> {
  let cause = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const res = await fetch(`${engine.endpoint}/`, { signal: AbortSignal.timeout(5000) });
      await res.body?.cancel();
      return undefined;
    } catch (err) {
      cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    }
  }
  return `the S3 server at ${engine.endpoint} does not answer (${cause})`;
}

const configured = engineFromEnv();
const problem = configured
  ? await probe(configured)
  : 'no S3 server is configured (a REEF_TEST_S3_* variable is unset)';

if (problem && process.env.REEF_REQUIRE_S3 === '1') {
  throw new Error(`REEF_REQUIRE_S3=1 and ${problem}: ${HOW_TO_START}`);
}

/** The server's settings, or undefined when the S3 tests are skipped. */
export const s3Engine: S3Engine | undefined = problem ? undefined : configured;

/**
 * The option that skips a test or a describe block without a server:
 * `test(name, needsS3, fn)`.
 */
export const needsS3: { skip: string | false } = {
  skip: problem ? `needs an S3 server, but ${problem}; ${HOW_TO_START}` : false,
};

let bucketCount = 0;

/**
 * A bucket name no other call, test file or earlier run has used, so each test
 * owns its bucket. S3's naming rules: 3-63 characters of lowercase letters,
 * digits and hyphens, starting and ending with a letter or digit.
 */
export function freshBucket(prefix = 'reef-test'): string {
  bucketCount += 1;
  const suffix = `-${process.pid.toString(36)}-${bucketCount.toString(36)}-${randomBytes(4).toString('hex')}`;
  const cleaned = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .slice(0, 63 - suffix.length)
    .replace(/^-+|-+$/g, '');
  return `${cleaned || 'reef'}${suffix}`;
}

/** The settings that point a reef at `bucket` on the test server (REEF_BLOB_URL and the AWS variables). */
export function s3ServerEnv(engine: S3Engine, bucket = freshBucket()): Record<string, string> {
  return {
    REEF_BLOB_URL: `s3://${bucket}/reef`,
    REEF_S3_PATH_STYLE: 'true',
    AWS_ENDPOINT_URL_S3: engine.endpoint,
    AWS_REGION: engine.region,
    AWS_ACCESS_KEY_ID: engine.accessKeyId,
    AWS_SECRET_ACCESS_KEY: engine.secretAccessKey,
  };
}
