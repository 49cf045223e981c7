import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkCommand, log, runCommand } from './support.ts';

/**
 * PostgreSQL and an S3 server for the scale-out benchmark: the ones the test
 * variables name (REEF_TEST_DATABASE_URL, REEF_TEST_S3_*), or else the
 * project's own, started by .ci/pg.sh and .ci/s3-swift.sh (which install
 * Debian's packages when missing) on ports of their own, and stopped after.
 */
export interface BenchEngines {
  /** reef's settings for an installation of its own: a fresh database, key encryption key and bucket. */
  installation(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PG_PORT = '25470';
const S3_PORT = '9300';
const SWIFT_PORT = '6500';

export async function startBenchEngines(): Promise<BenchEngines> {
  const started: Array<() => Promise<void>> = [];
  const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'reef-bench');
  if (!process.env.REEF_TEST_DATABASE_URL) {
    const dir = join(cache, 'pg');
    log(`scale-out: starting PostgreSQL on port ${PG_PORT} (${dir})`);
    const env = { ...process.env, REEF_PG_PORT: PG_PORT };
    checkCommand(
      '.ci/pg.sh start',
      await runCommand('bash', [join(ROOT, '.ci/pg.sh'), 'start', dir], { env }),
    );
    started.push(async () => {
      await runCommand('bash', [join(ROOT, '.ci/pg.sh'), 'stop', dir], { env });
    });
    process.env.REEF_TEST_DATABASE_URL = `postgres://reef@127.0.0.1:${PG_PORT}/postgres`;
  }
  if (!process.env.REEF_TEST_S3_ENDPOINT) {
    const dir = join(cache, 's3');
    log(`scale-out: starting an S3 server on port ${S3_PORT} (${dir})`);
    const env = { ...process.env, REEF_S3_PORT: S3_PORT, REEF_S3_SWIFT_PORT: SWIFT_PORT };
    checkCommand(
      '.ci/s3-swift.sh start',
      await runCommand('bash', [join(ROOT, '.ci/s3-swift.sh'), 'start', dir], { env }),
    );
    started.push(async () => {
      await runCommand('bash', [join(ROOT, '.ci/s3-swift.sh'), 'stop', dir], { env });
    });
    Object.assign(process.env, {
      REEF_TEST_S3_ENDPOINT: `http://127.0.0.1:${S3_PORT}`,
      REEF_TEST_S3_ACCESS_KEY_ID: 'test:tester',
      REEF_TEST_S3_SECRET_ACCESS_KEY: 'testing',
      REEF_TEST_S3_REGION: 'us-east-1',
    });
  }
  // The test helpers read the variables above when they are first imported.
  const pg = await import('../test/helpers/pg-engine.ts');
  const s3 = await import('../test/helpers/s3-engine.ts');
  if (pg.needsPg.skip) throw new Error(`PostgreSQL: ${pg.needsPg.skip}`);
  if (!s3.s3Engine) throw new Error(`S3: ${s3.needsS3.skip}`);
  const engine = s3.s3Engine;
  const databases: string[] = [];
  return {
    async installation() {
      const url = await pg.freshDatabase('reef_bench');
      databases.push(url);
      return {
        REEF_DATABASE_URL: url,
        REEF_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
        ...s3.s3ServerEnv(engine, s3.freshBucket('reef-bench')),
      };
    },
    async stop() {
      for (const url of databases) await pg.dropDatabase(url).catch(() => {});
      for (const stop of started.reverse()) await stop();
    },
  };
}
