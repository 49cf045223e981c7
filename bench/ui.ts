import { statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.ts';
import { migrate, openDb } from '../src/store/db.ts';
import { relationNames } from '../src/store/package-store.ts';
import { sqliteOf } from '../src/store/sqlite-database.ts';
import { prng } from '../test/helpers/prng.ts';
import {
  type BenchResult,
  log,
  type Metric,
  makeTempDir,
  percentile,
  round,
  startBenchServices,
} from './support.ts';

/**
 * Package search at 100,000 packages (the web interface and GET
 * /api/v1/search): N packages (default 100,000) written into the database
 * by this process with prepared statements, then reef in this process
 * answering over HTTP, one request at a time, as an anonymous caller (one
 * package in ten is in a private repository, one in a hundred in a small
 * public one, `extras`). Baseline in the same run:
 * GET /healthz; the figures to read are the ratios, the machine being noisy.
 *
 * Also in the same run, at the store: the LIKE scan search did before the
 * trigram index and the index query that sorted every match (both kept
 * here) against PackageStore.searchPage, for the same texts; and the size
 * of the indexes.
 *
 * Names look like a distribution's: 20,000 source packages of two or three
 * syllables, each with subpackages (-dev, -doc, py3-, lib…), in two libcs
 * and two arches; descriptions from a small vocabulary ("library" is in
 * about a third of them); provides so:, cmd: and pc: names.
 *
 * env: REEF_BENCH_UI_PACKAGES (default 100000).
 */

const PACKAGES = Number(process.env.REEF_BENCH_UI_PACKAGES ?? 100_000);
const MAX_SAMPLES = 300;
const MIN_SAMPLES = 20;
const TIME_BUDGET_MS = 10_000;
const STORE_RUNS = 30;
const SYLLABLES = [
  'ba',
  'cor',
  'den',
  'fi',
  'gol',
  'hu',
  'jin',
  'ka',
  'lor',
  'mex',
  'no',
  'pra',
  'qui',
  'rus',
  'sel',
  'tov',
  'ul',
  'vex',
  'wen',
  'zi',
  'ar',
  'bel',
  'cy',
  'dro',
];
const NOUNS = [
  'library',
  'tool',
  'utility',
  'daemon',
  'parser',
  'server',
  'client',
  'framework',
  'bindings',
  'plugin',
];
const TOPICS = [
  'compression',
  'networking',
  'XML',
  'JSON',
  'graphics',
  'audio',
  'cryptography',
  'databases',
  'testing',
  'logging',
  'fonts',
  'images',
  'HTTP',
  'regular expressions',
  'terminals',
];
const ADJECTIVES = ['fast', 'small', 'portable', 'modern', 'simple', 'secure', 'extensible', 'lightweight'];
const SUBPACKAGES = ['', '-dev', '-doc', 'py3-', 'lib'];

interface Row {
  name: string;
  description: string;
  provides: string;
}

/** Package i of the synthetic distribution. */
function packageRow(i: number, random: () => number): Row {
  const source = Math.floor(i / SUBPACKAGES.length) % 20_000;
  let base = '';
  for (let n = source, k = 0; k < 2 + (source % 2); k++, n = Math.floor(n / SYLLABLES.length)) {
    base += SYLLABLES[n % SYLLABLES.length];
  }
  const sub = SUBPACKAGES[i % SUBPACKAGES.length]!;
  const name = sub.endsWith('-') || sub === 'lib' ? `${sub}${base}` : `${base}${sub}`;
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]!;
  const noun = sub === 'lib' || random() < 0.25 ? 'library' : pick(NOUNS);
  const description = `${pick(ADJECTIVES)} ${noun} for ${pick(TOPICS)}${sub === '-dev' ? ' (development files)' : ''}`;
  const provides =
    sub === 'lib'
      ? `so:lib${base}.so.${1 + (source % 4)}=${1 + (source % 4)}.0.0 pc:${base}=1.0`
      : sub === ''
        ? `cmd:${base}=1.0`
        : '';
  return { name, description, provides };
}

/** 100,000 rows by prepared statements, one transaction; the triggers fill the search index as they go. */
export function seedDatabase(path: string): { rows: number; ms: number } {
  const started = performance.now();
  const db = openDb(path);
  migrate(db);
  db.pragma('synchronous = OFF');
  const random = prng(3);
  const now = Date.now();
  const insertRepo = db.prepare('INSERT OR IGNORE INTO repos (name, private, created_at) VALUES (?, ?, ?)');
  insertRepo.run('wolfi', 0, now);
  insertRepo.run('internal', 1, now);
  insertRepo.run('extras', 0, now);
  const insert = db.prepare(
    `INSERT INTO packages (id, repo, libc, arch, name, version, filename, sha256, size, checksum, datahash,
       installed_size, description, url, license, origin, maintainer, commit_id, depends, provides, install_if,
       index_record, pkginfo, signatures, uploaded_at, published_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1000, 'Q1', ?, 4000, ?, 'https://example.org/', 'MIT', ?, '', '',
       'so:libc.so.6', ?, '', '', '[]', '[]', ?, ?)`,
  );
  // What publishing records beside each row: its dependency names (package_relations) and its file list.
  const relation = db.prepare(
    'INSERT OR IGNORE INTO package_relations (name, kind, package_id) VALUES (?, ?, ?)',
  );
  const fileList = db.prepare(
    'INSERT INTO package_file_lists (package_id, entries, recorded_at) VALUES (?, ?, ?)',
  );
  const file = db.prepare(
    `INSERT INTO package_files (package_id, seq, path, type, mode, size, link_target) VALUES (?, ?, ?, ?, ?, ?, NULL)`,
  );
  db.transaction(() => {
    for (let i = 0; i < PACKAGES; i++) {
      const id = i + 1;
      const row = packageRow(i, random);
      const version = `${1 + (i % 7)}.${Math.floor(i / 40_000)}-r${i % 3}`;
      const hex = id.toString(16).padStart(64, '0');
      insert.run(
        id,
        i % 10 === 9 ? 'internal' : i % 100 === 42 ? 'extras' : 'wolfi',
        Math.floor(i / 20_000) % 2 === 0 ? 'glibc' : 'musl',
        Math.floor(i / 10_000) % 2 === 0 ? 'x86_64' : 'aarch64',
        row.name,
        version,
        `${row.name}-${version}.apk`,
        hex,
        hex,
        row.description,
        row.name,
        row.provides,
        now,
        now,
      );
      // Every package needs libc; glibc (package 0's slot is reused for it below) provides it.
      relation.run('so:libc.so.6', 'depends', id);
      for (const name of relationNames(row.provides.split(' ').filter(Boolean)))
        relation.run(name, 'provides', id);
      const files = [
        ['usr/', 'directory', 0o755, 0],
        ['usr/bin/', 'directory', 0o755, 0],
        [`usr/bin/${row.name}`, 'file', 0o755, 120_000],
        [`usr/share/doc/${row.name}/README`, 'file', 0o644, 2_000],
      ] as const;
      fileList.run(id, files.length, now);
      for (const [seq, [path, type, mode, size]] of files.entries())
        file.run(id, seq, path, type, mode, size);
    }
    // The libc everything depends on: its page lists its reverse dependencies (tens of thousands).
    const glibc = PACKAGES + 1;
    const hex = glibc.toString(16).padStart(64, '0');
    insert.run(
      glibc,
      'wolfi',
      'glibc',
      'x86_64',
      'glibc',
      '2.40-r0',
      'glibc-2.40-r0.apk',
      hex,
      hex,
      'the GNU C library',
      'glibc',
      'so:libc.so.6=6',
      now,
      now,
    );
    relation.run('so:libc.so.6', 'provides', glibc);
    fileList.run(glibc, 0, now);
  })();
  db.close();
  return { rows: PACKAGES, ms: performance.now() - started };
}

/** The search before the trigram index: a LIKE scan of every package (its query as it was). */
function likeSearch(db: ReturnType<typeof openDb>, text: string, repos: string[]) {
  const escaped = text.replace(/[\\%_]/g, (c) => `\\${c}`);
  return db
    .prepare(
      `SELECT * FROM packages WHERE published_at IS NOT NULL AND repo IN (SELECT value FROM json_each(?))
       AND (? IS NULL OR libc = ?) AND (? IS NULL OR arch = ?)
       AND (name LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\' OR provides LIKE ? ESCAPE '\\')
       ORDER BY name = ? DESC, name LIKE ? ESCAPE '\\' DESC, name, id DESC LIMIT ?`,
    )
    .all(
      JSON.stringify(repos),
      null,
      null,
      null,
      null,
      `%${escaped}%`,
      `%${escaped}%`,
      `%${escaped}%`,
      text,
      `${escaped}%`,
      100,
    );
}

/**
 * The trigram search before names had their own index (code of 3dc16fe): every
 * match ranked and sorted by (tier, name, id) before the first page.
 */
function sortedSearch(db: ReturnType<typeof openDb>, text: string, repos: string[]) {
  const escaped = text.replace(/[\\%_]/g, (c) => `\\${c}`);
  const phrase = `"${text.replaceAll('"', '""')}"`;
  return db
    .prepare(
      `SELECT p.*, h.tier AS search_tier FROM (
         SELECT id, name, tier FROM (
           SELECT r.id, r.name,
             CASE WHEN r.id NOT IN (SELECT rowid FROM package_search WHERE package_search MATCH @nameMatch) THEN 3
                  WHEN r.name = @text COLLATE NOCASE THEN 0 WHEN r.name LIKE @prefix ESCAPE '\\' THEN 1 ELSE 2 END AS tier
           FROM package_search f JOIN package_search_rows r ON r.id = f.rowid
           WHERE package_search MATCH @match AND r.repo IN (${repos.map((_, i) => `@repo${i}`).join(', ')})
             AND (@libc IS NULL OR r.libc = @libc) AND (@arch IS NULL OR r.arch = @arch)
         ) ORDER BY tier, name, id DESC LIMIT @limit
       ) h JOIN packages p ON p.id = h.id
       WHERE p.published_at IS NOT NULL
       ORDER BY h.tier, h.name, h.id DESC`,
    )
    .all({
      text,
      prefix: `${escaped}%`,
      nameMatch: `name : ${phrase}`,
      match: phrase,
      ...Object.fromEntries(repos.map((r, i) => [`repo${i}`, r])),
      libc: null,
      arch: null,
      limit: 101,
    });
}

export async function benchUi(): Promise<BenchResult> {
  const temp = await makeTempDir('ui');
  const dataDir = join(temp.path, 'data');
  let app: FastifyInstance | undefined;
  let services: Awaited<ReturnType<typeof startBenchServices>>['services'] | undefined;
  try {
    await mkdir(dataDir, { recursive: true });
    const dbPath = join(dataDir, 'reef.db');
    const seed = seedDatabase(dbPath);
    log(`ui: ${seed.rows} packages seeded in ${round(seed.ms / 1000, 1)} s (search index included)`);

    const started = await startBenchServices(dataDir);
    services = started.services;
    const { store } = services;
    const db = sqliteOf(services.database);
    // What the migration does for a database that already holds these packages: index them all at once.
    const rebuildStarted = performance.now();
    db.transaction(() => {
      // Deleting and inserting package_search_rows also rebuilds package_search_names (its triggers).
      db.exec('DELETE FROM package_search; DELETE FROM package_search_rows');
      db.exec(`INSERT INTO package_search (rowid, name, description, provides)
        SELECT id, name, description, provides FROM packages WHERE published_at IS NOT NULL`);
      db.exec(`INSERT INTO package_search_rows (id, name, repo, libc, arch)
        SELECT id, name, repo, libc, arch FROM packages WHERE published_at IS NOT NULL`);
    })();
    const migrationMs = performance.now() - rebuildStarted;
    db.pragma('wal_checkpoint(TRUNCATE)');
    const sizes = db
      .prepare(
        `SELECT sum(CASE WHEN name LIKE 'package_search%' AND name NOT LIKE 'package_search_rows%' AND name NOT LIKE 'package_search_names%' THEN pgsize ELSE 0 END) AS search,
           sum(CASE WHEN name LIKE 'package_search_names%' THEN pgsize ELSE 0 END) AS nameIndex,
           sum(CASE WHEN name LIKE 'package_search_rows%' THEN pgsize ELSE 0 END) AS names,
           sum(CASE WHEN name = 'packages' THEN pgsize ELSE 0 END) AS packages, sum(pgsize) AS total
         FROM dbstat`,
      )
      .get() as { search: number; nameIndex: number; names: number; packages: number; total: number };
    const fileBytes = statSync(dbPath).size;
    log(
      `ui: search index ${round(sizes.search / 2 ** 20, 1)} MiB, names index ${round(sizes.nameIndex / 2 ** 20, 1)} MiB (built in ${round(migrationMs / 1000, 1)} s), ` +
        `package_search_rows and its name index ${round(sizes.names / 2 ** 20, 1)} MiB, packages table ${round(sizes.packages / 2 ** 20, 1)} MiB, ` +
        `database ${round(fileBytes / 2 ** 20, 1)} MiB`,
    );

    app = await buildApp(services, started.logger);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const exact = packageRow(5 * 1234, prng(1)).name;
    const provided = (packageRow(5 * 1234 + 4, prng(1)).provides.split(' ')[0] ?? '').split('=')[0]!;
    const page = db
      .prepare("SELECT libc, arch, name, version FROM packages WHERE name = ? AND repo = 'wolfi' LIMIT 1")
      .get(exact) as { libc: string; arch: string; name: string; version: string };

    const measured: Array<{ label: string; samples: number[]; bytes: number; rows: number }> = [];
    const measure = async (label: string, path: string) => {
      const samples: number[] = [];
      let bytes = 0;
      let rows = 0;
      const until = performance.now() + TIME_BUDGET_MS;
      while (samples.length < MAX_SAMPLES && (samples.length < MIN_SAMPLES || performance.now() < until)) {
        const t = performance.now();
        const res = await fetch(base + path);
        const body = await res.text();
        samples.push(performance.now() - t);
        if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 300)}`);
        bytes = body.length;
        rows = path.startsWith('/api/')
          ? (JSON.parse(body) as { packages: unknown[] }).packages.length
          : (body.match(/<tr><td><a href="\/ui\/packages\//g) ?? []).length;
      }
      measured.push({ label, samples, bytes, rows });
      log(
        `ui: ${label}: ${samples.length} × p50 ${round(percentile(samples, 50), 2)} ms, ` +
          `p99 ${round(percentile(samples, 99), 2)} ms, ${rows} rows`,
      );
    };

    for (let i = 0; i < 50; i++) await (await fetch(`${base}/healthz`)).text();
    await measure('baseline GET /healthz', '/healthz');
    await measure('/ui/search, common term (library)', '/ui/search?q=library');
    await measure(`/ui/search, exact name (${exact})`, `/ui/search?q=${exact}`);
    await measure(`/ui/search, provides (${provided})`, `/ui/search?q=${encodeURIComponent(provided)}`);
    await measure('/ui/search, 2 characters (py)', '/ui/search?q=py');
    await measure('/api/v1/search, common term (library), 50 a page', '/api/v1/search?q=library');
    await measure(`/api/v1/search, exact name (${exact})`, `/api/v1/search?q=${exact}`);
    const second = (await (await fetch(`${base}/api/v1/search?q=library`)).json()) as { next: string };
    await measure(
      '/api/v1/search, common term (library), second page',
      `/api/v1/search?q=library&after=${second.next}`,
    );
    await measure('/api/v1/search, names (lib: 20,000 names start with it)', '/api/v1/search?q=lib');
    await measure(
      '/api/v1/search, common term in a 1 % repository (extras)',
      '/api/v1/search?q=library&repo=extras',
    );
    await measure(
      '/api/v1/search, common term, an arch nothing has (walk bound)',
      '/api/v1/search?q=library&arch=riscv64',
    );
    await measure(
      '/ui/packages/… (package page; its so:libc.so.6 resolved through provides)',
      `/ui/packages/wolfi/${page.libc}/${page.arch}/${page.name}/${encodeURIComponent(page.version)}`,
    );
    await measure(
      '/ui/packages/… (glibc: every package of its index requires it)',
      '/ui/packages/wolfi/glibc/x86_64/glibc/2.40-r0',
    );
    await measure('baseline GET /healthz, again', '/healthz');

    // The store alone: the old LIKE scan against the index, the same texts and repositories.
    const repos = ['wolfi'];
    const storeRuns: Array<{ text: string; like: number[]; sorted: number[]; fts: number[]; rows: number }> =
      [];
    for (const text of ['library', 'lib', exact, provided, 'zzzz']) {
      const like: number[] = [];
      const sorted: number[] = [];
      const fts: number[] = [];
      let rows = 0;
      for (let i = 0; i < STORE_RUNS; i++) {
        let t = performance.now();
        likeSearch(db, text, repos);
        like.push(performance.now() - t);
        t = performance.now();
        sortedSearch(db, text, repos);
        sorted.push(performance.now() - t);
        t = performance.now();
        rows = (await store.searchPage(text, repos, {}, { limit: 100 })).packages.length;
        fts.push(performance.now() - t);
      }
      storeRuns.push({ text, like, sorted, fts, rows });
      log(
        `ui: store, "${text}": LIKE p50 ${round(percentile(like, 50), 2)} ms, all matches sorted p50 ${round(percentile(sorted, 50), 2)} ms, ` +
          `index p50 ${round(percentile(fts, 50), 2)} ms, ${rows} rows`,
      );
    }

    const baseline = measured[0]!;
    const baseP50 = percentile(baseline.samples, 50);
    const baseP99 = percentile(baseline.samples, 99);
    const metrics: Metric[] = [
      { name: 'packages', value: PACKAGES, unit: 'rows' },
      { name: 'seed incl. search index (triggers)', value: round(seed.ms / 1000, 1), unit: 's' },
      { name: 'search index built at once (the migration)', value: round(migrationMs / 1000, 1), unit: 's' },
      { name: 'trigram index size (package_search)', value: round(sizes.search / 2 ** 20, 1), unit: 'MiB' },
      {
        name: 'names trigram index size (package_search_names)',
        value: round(sizes.nameIndex / 2 ** 20, 1),
        unit: 'MiB',
      },
      { name: 'package_search_rows + name index size', value: round(sizes.names / 2 ** 20, 1), unit: 'MiB' },
      { name: 'packages table size', value: round(sizes.packages / 2 ** 20, 1), unit: 'MiB' },
      { name: 'database size', value: round(fileBytes / 2 ** 20, 1), unit: 'MiB' },
    ];
    for (const m of measured) {
      const p50 = percentile(m.samples, 50);
      const p99 = percentile(m.samples, 99);
      metrics.push(
        { name: `${m.label} p50`, value: round(p50, 2), unit: 'ms' },
        { name: `${m.label} p99`, value: round(p99, 2), unit: 'ms' },
      );
      if (m !== baseline && !m.label.startsWith('baseline')) {
        metrics.push(
          { name: `${m.label} p50 / healthz p50`, value: round(p50 / baseP50, 1), unit: 'x' },
          { name: `${m.label} p99 / healthz p99`, value: round(p99 / baseP99, 1), unit: 'x' },
          { name: `${m.label} rows`, value: m.rows, unit: 'rows' },
        );
      }
    }
    for (const r of storeRuns) {
      const like = percentile(r.like, 50);
      const fts = percentile(r.fts, 50);
      metrics.push(
        { name: `store "${r.text}": LIKE scan p50`, value: round(like, 2), unit: 'ms' },
        {
          name: `store "${r.text}": all matches sorted (3dc16fe) p50`,
          value: round(percentile(r.sorted, 50), 2),
          unit: 'ms',
        },
        { name: `store "${r.text}": trigram index p50`, value: round(fts, 2), unit: 'ms' },
        { name: `store "${r.text}": LIKE / index`, value: round(like / fts, 1), unit: 'x' },
      );
    }
    return {
      name: 'ui',
      metrics,
      details: {
        packages: PACKAGES,
        sizes,
        fileBytes,
        samples: Object.fromEntries(measured.map((m) => [m.label, m.samples.map((s) => round(s, 3))])),
        store: storeRuns,
        loadavg: loadavg(),
      },
      notes: ['anonymous caller; server and client in one process, one request at a time'],
    };
  } finally {
    await app?.close();
    await services?.close();
    await temp.cleanup();
  }
}
