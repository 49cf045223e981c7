import { spawnSync } from 'node:child_process';
import { needsPg } from './helpers/pg-engine.ts';
import { needsS3 } from './helpers/s3-engine.ts';

/**
 * The second pass of `npm test`: the server suites again on the engines
 * several replicas share, each server with a fresh database on the test
 * PostgreSQL server (REEF_TEST_DATABASE=postgres) and a fresh bucket on the
 * test S3 server (REEF_TEST_BLOB=s3), both read by startServer. Without
 * either server it says why and passes; `.ci/run` sets REEF_REQUIRE_PG=1 and
 * REEF_REQUIRE_S3=1, which make the imports above fail instead.
 */
// Not the web interface's Chromium suite: its queries are the search and auditor routes run
// here already, and a browser per page costs more than a minute of the suite's ten.
const SUITES = [
  'test/http/server.test.ts',
  'test/http/auth.test.ts',
  'test/http/sbom.test.ts',
  'test/http/sbom-query.test.ts',
  'test/http/search.test.ts',
  'test/http/provenance.test.ts',
  'test/http/publisher-provenance.test.ts',
  'test/http/slots.test.ts',
  'test/http/package-files.test.ts',
  'test/http/advisories.test.ts',
  'test/http/advisory-feeds.test.ts',
  'test/http/vulnerabilities.test.ts',
  'test/hostile/corpus.test.ts',
  'test/faults/crash-loop.test.ts',
];

/** Kills in the crash loop here: its full count runs in the first pass; each round costs a server start on the shared engines. */
const CRASH_ROUNDS = '3';

const missing = [needsPg.skip, needsS3.skip].filter((why): why is string => typeof why === 'string');
if (missing.length > 0) {
  console.log(`scale-out pass skipped: ${missing.join('; ')}`);
  process.exit(0);
}
console.log(`scale-out pass: ${SUITES.length} server suites on PostgreSQL and an object store`);
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...SUITES], {
  stdio: 'inherit',
  env: {
    ...process.env,
    REEF_TEST_BLOB: 's3',
    REEF_TEST_DATABASE: 'postgres',
    CRASH_ROUNDS: process.env.CRASH_ROUNDS ?? CRASH_ROUNDS,
  },
});
process.exit(run.status ?? 1);
