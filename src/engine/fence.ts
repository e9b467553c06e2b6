/**
 * Fences: a database that takes no application writes. Two layers, both set
 * and lifted together: `ALTER DATABASE … SET default_transaction_read_only =
 * on` (new sessions start read-only, for every role without a setting of its
 * own) and, on every table pgconvey captures or applies there, the statement
 * trigger `pgconvey_fence` that raises SQLSTATE 25006 for every session not in
 * replica mode — so `SET default_transaction_read_only = off` does not lift
 * it, while pgconvey's workers and copies (replica mode) go on. The row in
 * `pgconvey.fence` (migration 0008) says who fenced the database, when, and
 * why (`switchover` in progress, or `standby` after one).
 */
import type pg from 'pg';
import { quoteIdent } from '../kernel/index.js';
import { inTransaction } from '../db/index.js';

export type FencePurpose = 'switchover' | 'standby';

export interface FenceRecord {
  queue: string;
  node: string;
  /** The node that is (or becomes) the writable one. */
  switchoverTo: string;
  purpose: FencePurpose;
  fencedAt: Date;
  windowStartedAt: Date | null;
  fencedBy: string | null;
}

export interface FenceState {
  /** `default_transaction_read_only = on` is the database's default (for every role). */
  readOnlyDefault: boolean;
  record: FenceRecord | null;
  /** Tables pgconvey captures or applies in this database. */
  tables: number;
  /** Of those, how many carry an enabled fence trigger. */
  fencedTables: number;
}

export const isFenced = (s: FenceState): boolean => s.readOnlyDefault || s.record !== null || s.fencedTables > 0;

const READ_ONLY_DEFAULT_SQL = `
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                  CROSS JOIN LATERAL unnest(s.setconfig) c
                 WHERE d.datname = current_database() AND s.setrole = 0
                   AND lower(c) IN ('default_transaction_read_only=on', 'default_transaction_read_only=true', 'default_transaction_read_only=1')) AS on`;

/** The database's fence as it is (works on an engine older than migration 0008: then only the database default is read). */
export async function readFence(client: pg.Client): Promise<FenceState> {
  const readOnlyDefault = (await client.query<{ on: boolean }>(READ_ONLY_DEFAULT_SQL)).rows[0]!.on;
  const present = (await client.query<{ ok: boolean }>("SELECT to_regclass('pgconvey.fence') IS NOT NULL AND to_regprocedure('pgconvey.fence_tables()') IS NOT NULL AS ok")).rows[0]!.ok;
  if (!present) return { readOnlyDefault, record: null, tables: 0, fencedTables: 0 };
  const { rows } = await client.query<{ queue_name: string; node_name: string; switchover_to: string; purpose: FencePurpose; fenced_at: Date; window_started_at: Date | null; fenced_by: string | null }>(
    'SELECT queue_name, node_name, switchover_to, purpose, fenced_at, window_started_at, fenced_by FROM pgconvey.fence',
  );
  const r = rows[0];
  const counts = (
    await client.query<{ tables: number; fenced: number }>(
      `SELECT count(*)::int AS tables,
              count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = f.r AND t.tgname = 'pgconvey_fence' AND t.tgenabled = 'O'))::int AS fenced
         FROM pgconvey.fence_tables() f(r)`,
    )
  ).rows[0]!;
  return {
    readOnlyDefault,
    record: r ? { queue: r.queue_name, node: r.node_name, switchoverTo: r.switchover_to, purpose: r.purpose, fencedAt: r.fenced_at, windowStartedAt: r.window_started_at, fencedBy: r.fenced_by } : null,
    tables: counts.tables,
    fencedTables: counts.fenced,
  };
}

async function databaseName(client: pg.Client): Promise<string> {
  return (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
}

/**
 * Records the fence and makes the database's sessions start read-only, in one
 * transaction. An existing record keeps its `fenced_at`; `startWindow` sets
 * `window_started_at` unless it is set already (a resumed switchover keeps
 * measuring from its first fence). The fence triggers are set apart
 * (`installFenceTriggers`), after the sessions that were writing are ended.
 */
export async function recordFence(
  client: pg.Client,
  fence: { queue: string; node: string; switchoverTo: string; purpose: FencePurpose; startWindow: boolean; fencedBy: string },
): Promise<void> {
  await inTransaction(client, async () => {
    await client.query(
      `INSERT INTO pgconvey.fence (queue_name, node_name, switchover_to, purpose, fenced_at, window_started_at, fenced_by)
       VALUES ($1, $2, $3, $4, clock_timestamp(), CASE WHEN $5 THEN clock_timestamp() END, $6)
       ON CONFLICT (singleton) DO UPDATE SET queue_name = EXCLUDED.queue_name, node_name = EXCLUDED.node_name, switchover_to = EXCLUDED.switchover_to,
              purpose = EXCLUDED.purpose, fenced_by = EXCLUDED.fenced_by,
              window_started_at = CASE WHEN $5 THEN coalesce(pgconvey.fence.window_started_at, clock_timestamp()) END`,
      [fence.queue, fence.node, fence.switchoverTo, fence.purpose, fence.startWindow, fence.fencedBy],
    );
    await client.query(`ALTER DATABASE ${quoteIdent(await databaseName(client))} SET default_transaction_read_only = on`);
  });
}

/**
 * Puts the fence trigger on every table pgconvey captures or applies here, in
 * one transaction that waits at most `lockTimeoutMs` for each table's lock
 * (CREATE TRIGGER conflicts with writers). Throws the lock timeout (SQLSTATE
 * 55P03) for the caller to end the blocking sessions and try again.
 */
export async function installFenceTriggers(client: pg.Client, lockTimeoutMs: number): Promise<number> {
  let n = 0;
  await inTransaction(client, async () => {
    await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
    n = (await client.query<{ n: number }>('SELECT pgconvey.install_fence_triggers() AS n')).rows[0]!.n;
  });
  return n;
}

/** Sessions (not pgconvey's, not this one) that hold a lock on a fence table that keeps CREATE TRIGGER waiting. */
export async function fenceBlockers(client: pg.Client): Promise<Array<{ pid: number; usename: string | null; application_name: string; client_addr: string | null; state: string | null; xact_start: Date | null }>> {
  const { rows } = await client.query(
    `SELECT DISTINCT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr, a.state, a.xact_start
       FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.relation IN (SELECT f::oid FROM pgconvey.fence_tables() f)
        AND l.mode IN ('RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
        AND a.pid <> pg_backend_pid() AND left(coalesce(a.application_name, ''), 9) <> 'pgconvey:'`,
  );
  return rows;
}

/**
 * Lifts the fence: drops the fence triggers, resets the database default and
 * deletes the record; returns how long writes were unavailable by the
 * record (from its window's start, or else from the fence; null without a
 * record). Run it inside the caller's transaction
 * (the hand-over commits it together with what makes the node writable).
 */
export async function liftFence(client: pg.Client): Promise<{ windowMs: number | null }> {
  await client.query('SELECT pgconvey.remove_fence_triggers()');
  await client.query(`ALTER DATABASE ${quoteIdent(await databaseName(client))} RESET default_transaction_read_only`);
  const { rows } = await client.query<{ ms: string | null }>('DELETE FROM pgconvey.fence RETURNING extract(epoch FROM clock_timestamp() - coalesce(window_started_at, fenced_at)) * 1000 AS ms');
  const ms = rows[0]?.ms;
  return { windowMs: ms === null || ms === undefined ? null : Math.round(Number(ms)) };
}

/** The fence stays, on purpose: this node is not the writable one of `switchoverTo`'s queue. Run inside the caller's transaction. */
export async function markStandby(client: pg.Client, switchoverTo: string): Promise<void> {
  await client.query("UPDATE pgconvey.fence SET purpose = 'standby', switchover_to = $1, window_started_at = NULL", [switchoverTo]);
}
