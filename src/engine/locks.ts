/**
 * pgconvey's advisory locks, in one place. Every running piece holds a
 * session lock of class LOCK_CLASS ("pgcv" read as a 32-bit integer) and key
 * hashtext(<piece>): `ticker:<queue>`, `worker:<queue>:<consumer>`, `apply`.
 * Installs and upgrades take the 64-bit INSTALL_LOCK_KEY exclusively; the
 * daemons take it shared around each step. `pieceRunning` tells whether a
 * piece's lock is held (status).
 */
import type pg from 'pg';

/** The class id of the pieces' locks: the bytes of "pgcv" as a 32-bit integer. */
export const LOCK_CLASS = 1885823862;

/**
 * The install lock: the first 8 bytes of "pgconvey" read as a signed 64-bit
 * integer, so it will not collide with application locks by accident.
 */
export const INSTALL_LOCK_KEY = '8099551785094899065';

/** SQL taking a piece's lock without waiting; `keySql` is an SQL text expression (e.g. `'ticker:' || $1`); selects `ok`. */
export function tryPieceLockSql(keySql: string): string {
  return `SELECT pg_catalog.pg_try_advisory_lock(${LOCK_CLASS}, pg_catalog.hashtext(${keySql})) AS ok`;
}

/** An SQL condition on pg_locks row `alias`: it is a piece's lock for the key `keySql`, granted. */
export function pieceLockHeld(alias: string, keySql: string): string {
  return `${alias}.locktype = 'advisory' AND ${alias}.classid = ${LOCK_CLASS} AND ${alias}.objid = pg_catalog.hashtext(${keySql})::oid AND ${alias}.objsubid = 2 AND ${alias}.granted`;
}

/** Whether a piece's lock (a ticker's `ticker:<queue>`, a worker's `worker:<queue>:<consumer>`) is held in this database, by any process. */
export async function pieceRunning(client: pg.Client, key: string): Promise<boolean> {
  const { rows } = await client.query<{ held: boolean }>(
    `
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                  WHERE ${pieceLockHeld('l', '$1')} AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) AS held`,
    [key],
  );
  return rows[0]!.held;
}
