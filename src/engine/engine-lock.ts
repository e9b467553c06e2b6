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
 *
 * The apply worker's form (StepGuard) takes the lock for the TRANSACTION
 * instead, at the head of a message that goes on with the step's own work:
 * the lock (pg_advisory_xact_lock_shared), then a statement that fails
 * unless this pgconvey's engine is installed (engineCheckSql), then the
 * work — in a READ COMMITTED transaction, so the check's snapshot is taken
 * once the lock is granted. No round trip of its own, and no unlock: the
 * transaction's end releases it. A failed message is explained afterwards
 * (StepGuard.explain: the engine read again, a mismatch thrown).
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

/**
 * A statement failing (SQLSTATE 22P02, its text in the message) unless the
 * installed engine is this version and content: the rest of its message's
 * transaction does not run. The text is cast at run time (the CASE's
 * condition is a subquery: nothing to fold at plan time).
 */
export function engineCheckSql(version: number, content: string): string {
  return `SELECT (CASE WHEN ${engineIsSql(version, content)} THEN '0' ELSE 'pgconvey: the installed engine is not the one this pgconvey runs' END)::int AS engine_ok`;
}

/** The install lock, shared, until the end of the transaction. */
export const LOCK_XACT_SHARED_SQL = `SELECT pg_catalog.pg_advisory_xact_lock_shared(${INSTALL_LOCK_KEY})`;

/**
 * The engine guard of one connection as the apply worker's step holds it
 * (made by daemons/engine-guard.ts stepGuard, which knows what a mismatch
 * is): in the step's first message of a transaction (xactSql, two
 * statements), or for the session around work that spans transactions.
 */
export interface StepGuard {
  /** The lock for the transaction and the engine check, as the head of a message (READ COMMITTED); two results. */
  readonly xactSql: string;
  /** Takes the lock for the session and checks the engine, in one round trip (lockSharedAndReadEngine); throws the mismatch (the lock is then held: unlock). */
  lockSession(): Promise<void>;
  unlockSession(): Promise<void>;
  /** After a message headed by xactSql failed (its transaction over): the mismatch, when the engine installed now is not this pgconvey's; else null. */
  explain(): Promise<Error | null>;
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
