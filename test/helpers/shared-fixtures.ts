import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The shared fixture corpus: real packages, indexes, keys, SBOMs and Sigstore
 * bundles from upstream projects, kept outside the repository in `shared/`
 * beside its root. A bare clone has none of it: the tests that need the real
 * bytes skip there, and every other test builds its own packages. `.ci/run`
 * sets REEF_REQUIRE_SHARED=1, which turns a missing corpus into a failure, so
 * CI cannot pass by skipping the oracle checks.
 */

/** Where the corpus is expected: `../shared/fixtures` from the repository root. */
export const SHARED_FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));

export const sharedFixturesPresent = existsSync(SHARED_FIXTURES);

if (!sharedFixturesPresent && process.env.REEF_REQUIRE_SHARED === '1') {
  throw new Error(
    `REEF_REQUIRE_SHARED=1 and the shared fixture corpus is missing: expected at ${SHARED_FIXTURES}`,
  );
}

/**
 * The option that skips a test or a describe block without the corpus:
 * `test(name, needsSharedFixtures, fn)`.
 */
export const needsSharedFixtures: { skip: string | false } = {
  skip:
    !sharedFixturesPresent && `needs the shared fixture corpus at ${SHARED_FIXTURES}; absent in a bare clone`,
};

/** A path in the corpus, e.g. `sharedFixture('sigstore', 'a.txt')`. */
export function sharedFixture(...parts: string[]): string {
  return join(SHARED_FIXTURES, ...parts);
}

/** The real packages, indexes and keys (`fixtures/real/`). */
export function realFixturesDir(): string {
  return sharedFixture('real');
}
