import semver from 'semver';

/**
 * The Node.js versions reef runs on: package.json's `engines.node`, which is
 * what its security stack asks for (sigstore-js 5 and better-sqlite3 13 need
 * Node 22.22.2+; better-sqlite3 13 crashes on Node 20 at its first query).
 * A test keeps the two equal.
 */
export const SUPPORTED_NODE = '^22.22.2 || ^24.15.0 || >=26.0.0';

/** Why this Node cannot run reef, or undefined when it can. */
export function unsupportedNode(version: string = process.version): string | undefined {
  if (semver.satisfies(version, SUPPORTED_NODE)) return undefined;
  return (
    `reef needs Node.js ${SUPPORTED_NODE} (Node 24 LTS recommended); this is ${version}. ` +
    'Run it through npm (npm start, npm test, npx reef): on Linux x64 and arm64, npm ci installs ' +
    'Node 24 from the npm registry into node_modules/.bin, first on PATH for npm scripts.'
  );
}
