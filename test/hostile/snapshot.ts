import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from '../../src/config.ts';
import type { TestServer } from '../helpers/server.ts';

/**
 * What "nothing changed" means for a rejected request: every file under the
 * data folder (temp files included) with its SHA-256, every object of the
 * bucket when blobs are in an object store, and every row of every table
 * except the audit log, which records the rejection by design.
 */
export async function snapshotState(
  server: TestServer,
): Promise<{ files: string[]; objects: string[]; tables: Record<string, unknown[]> }> {
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
  const db = server.services.database;
  const names = (
    await db.all<{ name: string }>(
      db.dialect === 'postgres'
        ? "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
  )
    .map((r) => r.name)
    .filter((n) => n !== 'audit_log');
  const tables: Record<string, unknown[]> = {};
  // Sorted here, not by rowid: WITHOUT ROWID tables have none.
  for (const name of names) {
    tables[name] = (await db.all(`SELECT * FROM "${name}"`)).map((row) => JSON.stringify(row)).sort();
  }
  return { files, objects: await bucketObjects(server.services.config.s3), tables };
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

/** Every object under the server's prefix, with its size and ETag (none without an object store). */
async function bucketObjects(s3: S3Settings | undefined): Promise<string[]> {
  if (!s3) return [];
  const client = new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.pathStyle,
    credentials: s3.credentials,
  });
  const out: string[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: s3.prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) out.push(`${o.Key} ${o.Size} ${o.ETag}`);
      token = page.NextContinuationToken;
    } while (token);
  } finally {
    client.destroy();
  }
  return out.sort();
}
