import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL server the database engine's tests talk to. No mock: a real
 * PostgreSQL (started by `.ci/pg.sh`), named by REEF_TEST_DATABASE_URL, the
 * URL of a database on it that a superuser may log in to (it only ever runs
 * CREATE DATABASE and DROP DATABASE there). Without it, or when the server
 * does not answer, those tests skip with a message saying how to start one.
 * `.ci/run` starts the server and sets REEF_REQUIRE_PG=1, which turns a
 * missing or silent server into a failure, so CI cannot pass by skipping them.
 */

const HOW_TO_START =
  'start one with `bash .ci/pg.sh start /tmp/reef-pg` and set ' +
  'REEF_TEST_DATABASE_URL=postgres://reef@127.0.0.1:25432/postgres';

/** Connection attempts and statements give up after this long: a silent server is a missing one. */
const TIMEOUT_MS = 5000;

/** The URL as messages may show it: without its password. */
function shown(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return '(an unparsable URL)';
  }
}

/** Runs `run` on a new connection to `url`, closed afterwards whatever happens. */
async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: TIMEOUT_MS,
    query_timeout: TIMEOUT_MS * 6,
  });
  // A connection the server ends while no query waits (a restart, an admin's
  // terminate) is an 'error' event, which would crash the test process without
  // a listener; connect and query report their own failures.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await run(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Why the server is unusable, or undefined when it answers a query. */
async function probe(url: string): Promise<string | undefined> {
  let cause = '';
  // Asked up to three times: on a loaded machine one answer may take over the timeout.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await withClient(url, (client) => client.query('SELECT 1'));
      return undefined;
    } catch (err) {
      cause = (err as { code?: string }).code ?? (err as Error).message;
    }
  }
  return `the PostgreSQL server at ${shown(url)} does not answer (${cause})`;
}

const configured = process.env.REEF_TEST_DATABASE_URL || undefined;
const problem = configured
  ? await probe(configured)
  : 'no PostgreSQL server is configured (REEF_TEST_DATABASE_URL is unset)';

if (problem && process.env.REEF_REQUIRE_PG === '1') {
  throw new Error(`REEF_REQUIRE_PG=1 and ${problem}: ${HOW_TO_START}`);
}

/** The admin database's URL, or undefined when the PostgreSQL tests are skipped. */
export const pgEngine: string | undefined = problem ? undefined : configured;

/**
 * The option that skips a test or a describe block without a server:
 * `test(name, needsPg, fn)`.
 */
export const needsPg: { skip: string | false } = {
  skip: problem ? `needs a PostgreSQL server, but ${problem}; ${HOW_TO_START}` : false,
};

/** `name` as an SQL identifier, quoted: safe whatever it holds. */
function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The database a postgres:// URL names (its path, decoded), or undefined if none. */
function databaseOf(url: string): string | undefined {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  return name === '' ? undefined : name;
}

function adminUrl(): string {
  if (!pgEngine) throw new Error(`no PostgreSQL test server: ${needsPg.skip}`);
  return pgEngine;
}

let databaseCount = 0;

/**
 * Creates a database no other call, test file or earlier run has used, so each
 * test owns its database, and returns its URL (the admin URL with the
 * database's name as its path). The name is lowercase letters, digits and
 * underscores, starts with a letter and fits PostgreSQL's 63-byte identifiers,
 * so it needs no quoting wherever a test writes it.
 */
export async function freshDatabase(prefix = 'reef_test'): Promise<string> {
  const admin = adminUrl();
  databaseCount += 1;
  const suffix = `_${process.pid.toString(36)}_${databaseCount.toString(36)}_${randomBytes(4).toString('hex')}`;
  const cleaned = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_{2,}/g, '_')
    .replace(/^[^a-z]+/, '')
    .slice(0, 63 - suffix.length)
    .replace(/_+$/, '');
  const name = `${cleaned || 'reef'}${suffix}`;
  await withClient(admin, (client) => client.query(`CREATE DATABASE ${quoteIdentifier(name)}`));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.href;
}

/**
 * Drops the database `url` names (one freshDatabase made), disconnecting
 * whoever is still connected to it (WITH (FORCE): a server a test failed to
 * close must not keep its database). Nothing happens if it is already gone.
 */
export async function dropDatabase(url: string): Promise<void> {
  const admin = adminUrl();
  const name = databaseOf(url);
  if (name === undefined || name === databaseOf(admin)) {
    throw new Error(`dropDatabase: ${shown(url)} names no database of a test`);
  }
  await withClient(admin, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`),
  );
}
