/**
 * Installing and upgrading the engine in a database: the numbered migrations
 * in sql/ (tables) and sql/functions.sql (every function, re-created), run in
 * one transaction under an advisory lock, recorded in pgconvey.engine.
 * Installing the installed version changes nothing; an older version is
 * upgraded in place; a newer one is refused.
 */
import { readFileSync, readdirSync } from 'node:fs';
import type pg from 'pg';

const SQL_DIR = new URL('../../src/engine/sql/', import.meta.url);

/**
 * Advisory lock key serializing installs and upgrades: the first 8 bytes of
 * "pgconvey" read as a signed 64-bit integer, so it will not collide with
 * application locks by accident.
 */
export const INSTALL_LOCK_KEY = '8099551785094899065';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function migrations(): Migration[] {
  return readdirSync(SQL_DIR)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(new URL(f, SQL_DIR), 'utf8') }));
}

/** The version this pgconvey installs: the number of its newest migration. */
export const ENGINE_VERSION = Math.max(...migrations().map((m) => m.version));

function functionsSql(): string {
  return readFileSync(new URL('functions.sql', SQL_DIR), 'utf8');
}

/** Brings every capture function to the current row format (after functions.sql). */
function capturesSql(): string {
  return readFileSync(new URL('captures.sql', SQL_DIR), 'utf8');
}

export interface InstallResult {
  action: 'installed' | 'upgraded' | 'unchanged';
  from: number | null;
  to: number;
}

export class EngineVersionError extends Error {
  constructor(
    readonly installed: number,
    readonly supported: number,
  ) {
    super(`the pgconvey engine in this database is version ${installed}, newer than this pgconvey (${supported})`);
    this.name = 'EngineVersionError';
  }
}

/** The installed engine version, or null when the engine is not installed. */
export async function installedVersion(client: pg.Client): Promise<number | null> {
  const { rows } = await client.query<{ present: boolean }>("SELECT to_regclass('pgconvey.engine') IS NOT NULL AS present");
  if (!rows[0]!.present) return null;
  const v = await client.query<{ version: number }>('SELECT version FROM pgconvey.engine');
  return v.rows[0]?.version ?? null;
}

/**
 * Installs or upgrades the engine to `targetVersion` (default: the newest).
 * `client` must not be inside a transaction.
 */
export async function installEngine(client: pg.Client, targetVersion: number = ENGINE_VERSION): Promise<InstallResult> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [INSTALL_LOCK_KEY]);
    const from = await installedVersion(client);
    if (from !== null && from > ENGINE_VERSION) throw new EngineVersionError(from, ENGINE_VERSION);
    if (from !== null && from >= targetVersion) {
      await client.query('COMMIT');
      return { action: 'unchanged', from, to: from };
    }
    // Quiet NOTICEs like "schema already exists" while installing.
    await client.query("SET LOCAL client_min_messages = 'warning'");
    for (const m of migrations()) {
      if ((from === null || m.version > from) && m.version <= targetVersion) await client.query(m.sql);
    }
    await client.query(functionsSql());
    // Row shapes exist from migration 0006 on.
    if (targetVersion >= 6) await client.query(capturesSql());
    await client.query(
      `INSERT INTO pgconvey.engine (version) VALUES ($1)
       ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, upgraded_at = now()`,
      [targetVersion],
    );
    await client.query('COMMIT');
    return { action: from === null ? 'installed' : 'upgraded', from, to: targetVersion };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
