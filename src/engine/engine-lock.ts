/**
 * The engine guard's opening round trip (daemons/engine-guard.ts): the
 * install lock taken shared, then the installed engine read by a LATER
 * statement (its own snapshot, taken once the lock is granted: an upgrade
 * that held the lock exclusively has committed and is seen), in one message
 * instead of three (lock, does pgconvey.engine exist, read it).
 *  - 'idle': the connection is outside any transaction; the message is its
 *    own READ COMMITTED transaction, whatever the session's default.
 *  - 'read-committed': the session's default is READ COMMITTED, and the
 *    message may run inside an open READ COMMITTED transaction (the worker's
 *    read-ahead on the provider): no BEGIN/COMMIT, two plain statements.
 * A server without pgconvey.engine answers 42P01: the lock is held (session
 * lock) and the engine is read the long way (installedEngine: null).
 */
import type pg from 'pg';
import { installedEngine, type InstalledEngine } from './install.js';
import { INSTALL_LOCK_KEY } from './locks.js';

export type EngineLockForm = 'idle' | 'read-committed';

/** The installed engine's row as installedEngine reads it (to_jsonb: an engine from before the content column). */
export const ENGINE_ROW_SQL =
  "SELECT e.version, pg_catalog.to_jsonb(e) OPERATOR(pg_catalog.->>) 'content' AS content, e.installed_at, e.upgraded_at FROM pgconvey.engine e";

/** An SQL condition: the installed engine is this version and content (what engineMismatch accepts, for an engine that is installed). */
export function engineIsSql(version: number, content: string): string {
  const literal = `'${content.replace(/'/g, "''")}'`;
  return `EXISTS (SELECT FROM pgconvey.engine e WHERE e.version = ${Math.trunc(version)} AND (pg_catalog.to_jsonb(e) OPERATOR(pg_catalog.->>) 'content') = ${literal})`;
}

export const LOCK_SHARED_SQL = `SELECT pg_catalog.pg_advisory_lock_shared(${INSTALL_LOCK_KEY})`;
export const UNLOCK_SHARED_SQL = `SELECT pg_catalog.pg_advisory_unlock_shared(${INSTALL_LOCK_KEY})`;

type EngineRow = { version: number; content: string | null; installed_at: Date; upgraded_at: Date | null };

export function engineFromRow(row: EngineRow | undefined): InstalledEngine | null {
  return row ? { version: row.version, content: row.content, installedAt: row.installed_at, upgradedAt: row.upgraded_at } : null;
}

/**
 * Takes the install lock shared and reads the installed engine after it, in
 * one round trip. The lock may be held when this throws (the caller unlocks,
 * as after any failed step).
 */
export async function lockSharedAndReadEngine(client: pg.Client, form: EngineLockForm): Promise<InstalledEngine | null> {
  const text = form === 'idle' ? `BEGIN ISOLATION LEVEL READ COMMITTED; ${LOCK_SHARED_SQL}; ${ENGINE_ROW_SQL}; COMMIT` : `${LOCK_SHARED_SQL}; ${ENGINE_ROW_SQL}`;
  try {
    const results = (await client.query(text)) as unknown as pg.QueryResult[];
    return engineFromRow(results[form === 'idle' ? 2 : 1]!.rows[0] as EngineRow | undefined);
  } catch (err) {
    if (form === 'idle') await client.query('ROLLBACK').catch(() => undefined);
    if ((err as { code?: string }).code !== '42P01') throw err;
    return installedEngine(client);
  }
}
