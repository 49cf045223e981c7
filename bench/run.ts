import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchComponents } from './components.ts';
import { benchDownload } from './download.ts';
import { benchIndexScale } from './index-scale.ts';
import { benchMemoryScale } from './memory-scale.ts';
import { benchParse } from './parse.ts';
import { benchPublish } from './publish.ts';
import { benchSbomPressure } from './sbom-pressure.ts';
import { benchScaleOut } from './scale-out.ts';
import { type BenchResult, log, runCommand } from './support.ts';
import { benchUi } from './ui.ts';
import { benchUploadMemory } from './upload-memory.ts';
import { benchVulnerabilities } from './vulnerabilities.ts';

/**
 * Runs the benchmarks in sequence, prints one table and writes each result to
 * bench/results/<name>-<timestamp>.json.
 *
 * usage: npm run bench [-- parse publish download components index memory upload-memory sbom-pressure vulnerabilities ui scale-out]
 */

const BENCHMARKS: Record<string, () => Promise<BenchResult>> = {
  parse: benchParse,
  publish: benchPublish,
  download: benchDownload,
  components: benchComponents,
  index: benchIndexScale,
  memory: benchMemoryScale,
  'upload-memory': benchUploadMemory,
  'sbom-pressure': benchSbomPressure,
  vulnerabilities: benchVulnerabilities,
  ui: benchUi,
  'scale-out': benchScaleOut,
};

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<number> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((n) => !(n in BENCHMARKS));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}\n`,
    );
    return 2;
  }
  const names = asked.length > 0 ? asked : Object.keys(BENCHMARKS);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const env = await environment();
  await mkdir(RESULTS_DIR, { recursive: true });

  const results: BenchResult[] = [];
  let failed = 0;
  for (const name of names) {
    log(`${name}: starting`);
    const started = performance.now();
    let result: BenchResult;
    try {
      result = await BENCHMARKS[name]!();
    } catch (err) {
      failed++;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      log(`${name}: FAILED: ${message}`);
      result = { name, metrics: [], details: { error: message }, notes: [`failed: ${String(err)}`] };
    }
    const seconds = (performance.now() - started) / 1000;
    log(`${name}: done in ${seconds.toFixed(1)} s`);
    results.push(result);
    const path = join(RESULTS_DIR, `${name}-${stamp}.json`);
    await writeFile(path, `${JSON.stringify({ ...result, startedAt: stamp, seconds, env }, null, 2)}\n`);
  }

  process.stdout.write(`\n${formatTable(results)}\n`);
  process.stdout.write(`\nresults: ${RESULTS_DIR}*-${stamp}.json\n`);
  return failed > 0 ? 1 : 0;
}

function formatTable(results: BenchResult[]): string {
  const rows: string[][] = [['benchmark', 'metric', 'value', 'unit', 'goal', 'status']];
  for (const r of results) {
    for (const m of r.metrics) {
      const status = m.ok === undefined ? '' : m.ok ? 'ok' : 'MISSED';
      rows.push([r.name, m.name, m.value === null ? '-' : String(m.value), m.unit, m.goal ?? '', status]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const notes = results.flatMap((r) => r.notes.map((n) => `${r.name}: ${n}`));
  return [
    line(rows[0]!),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.slice(1).map(line),
    ...(notes.length > 0 ? ['', 'notes:', ...notes.map((n) => `  ${n}`)] : []),
  ].join('\n');
}

async function environment(): Promise<Record<string, unknown>> {
  const commit = await runCommand('git', ['rev-parse', 'HEAD'], { cwd: ROOT }).catch(() => undefined);
  const dirty = await runCommand('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT }).catch(
    () => undefined,
  );
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    commit: commit?.code === 0 ? commit.stdout.trim() : undefined,
    srcModified: dirty?.code === 0 ? dirty.stdout.trim().length > 0 : undefined,
  };
}

process.exitCode = await main();
