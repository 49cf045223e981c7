import { spawnSync } from 'node:child_process';
import { needsS3 } from './helpers/s3-engine.ts';

/**
 * The second pass of `npm test`: the server suites again, with every blob in
 * a fresh bucket of the test S3 server (REEF_TEST_BLOB=s3, read by
 * startServer). Without a server it says why and passes; `.ci/run` sets
 * REEF_REQUIRE_S3=1, which makes the import above fail instead.
 */
const SUITES = [
  'test/http/server.test.ts',
  'test/http/auth.test.ts',
  'test/http/sbom.test.ts',
  'test/http/provenance.test.ts',
  'test/http/publisher-provenance.test.ts',
  'test/http/slots.test.ts',
  'test/http/package-files.test.ts',
  'test/hostile/corpus.test.ts',
  'test/ui/pages.test.ts',
];

if (needsS3.skip) {
  console.log(`S3 pass skipped: ${needsS3.skip}`);
  process.exit(0);
}
console.log(`S3 pass: ${SUITES.length} server suites with their blobs in an object store`);
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...SUITES], {
  stdio: 'inherit',
  env: { ...process.env, REEF_TEST_BLOB: 's3' },
});
process.exit(run.status ?? 1);
