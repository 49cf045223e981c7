import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TestServer } from '../helpers/server.ts';

/**
 * What "nothing changed" means for a rejected request: every file under the
 * data folder (temp files included) with its SHA-256, and every row of every
 * table except the audit log, which records the rejection by design.
 */
export function snapshotState(server: TestServer): { files: string[]; tables: Record<string, unknown[]> } {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) {
        files.push(`${path.slice(server.dataDir.length)}/`);
        walk(path);
      } else if (!/^reef\.db(-wal|-shm|-journal)?$/.test(name)) {
        files.push(
          `${path.slice(server.dataDir.length)} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`,
        );
      }
    }
  };
  walk(server.dataDir);
  const db = server.services.db;
  const names = (
    db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .all() as Array<{ name: string }>
  )
    .map((r) => r.name)
    .filter((n) => n !== 'audit_log');
  const tables: Record<string, unknown[]> = {};
  // Sorted here, not by rowid: WITHOUT ROWID tables have none.
  for (const name of names) {
    tables[name] = (db.prepare(`SELECT * FROM "${name}"`).all() as unknown[])
      .map((row) => JSON.stringify(row))
      .sort();
  }
  return { files, tables };
}

/** Resident set size sampled while `fn` runs: the peak, for "memory stays bounded". */
export async function peakRss<T>(fn: () => Promise<T>): Promise<{ result: T; peak: number; before: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, peak, before };
  } finally {
    clearInterval(timer);
  }
}
