import { join } from 'node:path';
import type { Database } from './database.ts';
import { PostgresDatabase } from './postgres-database.ts';
import { SqliteDatabase } from './sqlite-database.ts';

/**
 * The database a configuration names, migrated to the newest schema:
 * PostgreSQL at REEF_DATABASE_URL, else `reef.db` in the data folder.
 */
export async function openDatabase(config: {
  dataDir: string;
  databaseUrl?: string | undefined;
  databasePoolSize?: number;
}): Promise<{ database: Database; applied: string[] }> {
  const database: Database = config.databaseUrl
    ? new PostgresDatabase(config.databaseUrl, { maxConnections: config.databasePoolSize })
    : new SqliteDatabase(join(config.dataDir, 'reef.db'));
  try {
    const { applied } = await database.migrate();
    return { database, applied };
  } catch (err) {
    await database.close();
    throw err;
  }
}
