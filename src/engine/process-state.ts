/**
 * The state of `run`'s pieces, kept in the database the piece works on
 * (`pgconvey.process_state`, migration 0008): per piece (its advisory lock
 * key: `worker:<queue>:<consumer>`, `ticker:<queue>`) and process
 * (`<host>:<pid>`), running (with the backend that holds the piece's lock) or
 * backing off (with its last error and when it retries). `status` reads it to
 * tell "not started" from "retrying", and to put an error on the process that
 * had it. Writes are best effort: an engine older than 0008 has no table.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { pieceLockHeld } from './locks.js';

/** This process, as its rows name it. */
export const PROCESS_ID = `${hostname()}:${process.pid}`;

export interface PieceProcess {
  process: string;
  application: string | null;
  state: 'running' | 'backing-off';
  backendPid: number | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  retryAt: Date | null;
  updatedAt: Date;
  /** Running: its backend holds the piece's lock now. Backing off: it retries soon (not a left-over of a killed process). */
  live: boolean;
}

const present = async (client: pg.Client) => (await client.query<{ ok: boolean }>("SELECT to_regclass('pgconvey.process_state') IS NOT NULL AS ok")).rows[0]!.ok;

/** Marks the piece running in this process, its lock held by `client`'s backend. */
export async function recordPieceRunning(client: pg.Client, piece: string): Promise<void> {
  if (!(await present(client))) return;
  await client.query(
    `INSERT INTO pgconvey.process_state (piece, process, application, state, backend_pid, updated_at)
     VALUES ($1, $2, current_setting('application_name'), 'running', pg_backend_pid(), clock_timestamp())
     ON CONFLICT (piece, process) DO UPDATE SET state = 'running', backend_pid = pg_backend_pid(), retry_at = NULL, updated_at = clock_timestamp()`,
    [piece, PROCESS_ID],
  );
}

/** Marks the piece backing off in this process after `error`, retrying in `retryInMs`. */
export async function recordPieceBackoff(client: pg.Client, piece: string, error: string, retryInMs: number): Promise<void> {
  if (!(await present(client))) return;
  await client.query(
    `INSERT INTO pgconvey.process_state (piece, process, application, state, last_error, last_error_at, retry_at, updated_at)
     VALUES ($1, $2, current_setting('application_name'), 'backing-off', $3, clock_timestamp(), clock_timestamp() + $4 * interval '1 millisecond', clock_timestamp())
     ON CONFLICT (piece, process) DO UPDATE SET state = 'backing-off', backend_pid = NULL, last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at,
            retry_at = EXCLUDED.retry_at, updated_at = EXCLUDED.updated_at`,
    [piece, PROCESS_ID, error.slice(0, 2000), Math.round(retryInMs)],
  );
}

/** Removes this process's row of the piece (it stopped cleanly). */
export async function clearPiece(client: pg.Client, piece: string): Promise<void> {
  if (!(await present(client))) return;
  await client.query('DELETE FROM pgconvey.process_state WHERE piece = $1 AND process = $2', [piece, PROCESS_ID]);
}

/** Every process's row of the piece; `live` as the database sees it now. */
export async function readPiece(client: pg.Client, piece: string): Promise<PieceProcess[]> {
  if (!(await present(client))) return [];
  const { rows } = await client.query<{ process: string; application: string | null; state: 'running' | 'backing-off'; backend_pid: number | null; last_error: string | null; last_error_at: Date | null; retry_at: Date | null; updated_at: Date; live: boolean }>(
    `SELECT p.process, p.application, p.state, p.backend_pid, p.last_error, p.last_error_at, p.retry_at, p.updated_at,
            CASE WHEN p.state = 'running'
                 THEN EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE ${pieceLockHeld('l', '$1')} AND l.pid = p.backend_pid)
                 ELSE p.retry_at > clock_timestamp() - interval '30 seconds' END AS live
       FROM pgconvey.process_state p WHERE p.piece = $1 ORDER BY p.updated_at DESC`,
    [piece],
  );
  return rows.map((r) => ({ process: r.process, application: r.application, state: r.state, backendPid: r.backend_pid, lastError: r.last_error, lastErrorAt: r.last_error_at, retryAt: r.retry_at, updatedAt: r.updated_at, live: r.live }));
}
