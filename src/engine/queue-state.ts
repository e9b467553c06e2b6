/**
 * A provider's queues as stored by the engine, read as typed rows: each
 * queue with its settings and latest tick, its consumers, captured tables and
 * sequences (the catalog assembles them per queue); the event rate over the
 * last minute of ticks and the latest tick (status); the capture triggers'
 * state (status); for the operations one queue's existence, captured tables
 * (with their keys) and sequences, and how long its oldest unapplied tick has
 * waited (switchover). Read-only; every list is ordered.
 */
import type pg from 'pg';
import { qualifiedName, type QualifiedName } from '../kernel/index.js';
import type { QueueSettings } from './api.js';

/** pgconvey.queue.ticker_min_interval's default (migration 0013), in ms. */
export const DEFAULT_TICKER_MIN_INTERVAL_MS = 20;

export interface QueueRow {
  /** pgconvey.queue.queue_id: the capture triggers are named after it. */
  queueId: number;
  name: string;
  /** The queue's latest tick (create_queue makes the first). */
  lastTick: string;
  settings: QueueSettings;
  /** A branch's queue (cascades): the provider node it follows; null on a root's queue. */
  branchProvider: string | null;
}

export interface ConsumerRow {
  queueId: number;
  name: string;
  lastTick: string;
}

export interface CapturedTableRow {
  queueId: number;
  /** captured_table.table_id, which names its capture functions (`capture_<id>`). */
  tableId: number;
  table: QualifiedName;
  keyColumns: string[];
  columns: string[];
}

export interface CapturedSequenceRow {
  queueId: number;
  sequence: QualifiedName;
}

/** Every queue, by name, with its latest tick and stored settings. */
export async function readQueues(client: pg.Client): Promise<QueueRow[]> {
  const { rows } = await client.query(`
  SELECT q.queue_id, q.queue_name AS name, (SELECT max(t.tick_id) FROM pgconvey.tick t WHERE t.queue_id = q.queue_id)::text AS last_tick,
         q.ticker_max_count, (extract(epoch FROM q.ticker_max_lag) * 1000)::bigint AS ticker_max_lag_ms,
         (extract(epoch FROM q.ticker_idle_period) * 1000)::bigint AS ticker_idle_period_ms, q.rotation_txids,
         (extract(epoch FROM (to_jsonb(q) ->> 'ticker_min_interval')::interval) * 1000)::bigint AS ticker_min_interval_ms,
         (extract(epoch FROM q.tick_retention) * 1000)::bigint AS tick_retention_ms,
         to_jsonb(q) ->> 'branch_provider' AS branch_provider
    FROM pgconvey.queue q ORDER BY 2`);
  return rows.map((q) => ({
    queueId: Number(q.queue_id),
    name: q.name,
    lastTick: q.last_tick,
    settings: {
      tickerMaxCount: Number(q.ticker_max_count),
      tickerMaxLagMs: Number(q.ticker_max_lag_ms),
      tickerIdlePeriodMs: Number(q.ticker_idle_period_ms),
      // Before engine 13 the column is missing: its default, the value the migration gives it.
      tickerMinIntervalMs: q.ticker_min_interval_ms === null ? DEFAULT_TICKER_MIN_INTERVAL_MS : Number(q.ticker_min_interval_ms),
      rotationTxids: Number(q.rotation_txids),
      tickRetentionMs: Number(q.tick_retention_ms),
    },
    branchProvider: q.branch_provider ?? null,
  }));
}

/** Consumers of every queue (subscriptions and copy pins), by queue and name. */
export async function readConsumers(client: pg.Client): Promise<ConsumerRow[]> {
  const { rows } = await client.query(`SELECT queue_id, consumer_name AS name, last_tick::text AS last_tick FROM pgconvey.consumer ORDER BY 1, 2`);
  return rows.map((c) => ({ queueId: Number(c.queue_id), name: c.name, lastTick: c.last_tick }));
}

/** Captured tables of every queue, by queue, schema and name. */
export async function readCapturedTables(client: pg.Client): Promise<CapturedTableRow[]> {
  const { rows } = await client.query(
    `SELECT queue_id, table_id, table_schema AS schema, table_name AS name, key_columns, columns FROM pgconvey.captured_table ORDER BY 1, 3, 4`,
  );
  return rows.map((t) => ({ queueId: Number(t.queue_id), tableId: Number(t.table_id), table: qualifiedName(t.schema, t.name), keyColumns: t.key_columns, columns: t.columns }));
}

/** Sequences every queue carries (engine version 3 on: the caller checks). */
export async function readCapturedSequences(client: pg.Client): Promise<CapturedSequenceRow[]> {
  const { rows } = await client.query(`SELECT queue_id, seq_schema AS schema, seq_name AS name FROM pgconvey.captured_sequence ORDER BY 1, 2, 3`);
  return rows.map((s) => ({ queueId: Number(s.queue_id), sequence: qualifiedName(s.schema, s.name) }));
}

export interface QueueRate {
  /** Events per second between the latest tick and the first of the minute before it; null over no time. */
  eventsPerSecond: number | null;
  /** Age of the latest tick. */
  lastTickAgeSeconds: number | null;
}

/** The queue's event rate over the last minute of ticks and the age of its latest tick; null when it has no tick. */
export async function readQueueRate(client: pg.Client, queue: string): Promise<QueueRate | null> {
  const r = (
    await client.query(
      `
  SELECT (l.tick_event_seq - f.tick_event_seq)::float8 / nullif(extract(epoch FROM l.tick_time - f.tick_time), 0) AS rate,
         extract(epoch FROM clock_timestamp() - l.tick_time) AS age
    FROM pgconvey.queue q
    CROSS JOIN LATERAL (SELECT * FROM pgconvey.tick t WHERE t.queue_id = q.queue_id ORDER BY t.tick_id DESC LIMIT 1) l
    CROSS JOIN LATERAL (SELECT * FROM pgconvey.tick t WHERE t.queue_id = q.queue_id AND t.tick_time >= l.tick_time - interval '60 seconds'
                         ORDER BY t.tick_id LIMIT 1) f
   WHERE q.queue_name = $1`,
      [queue],
    )
  ).rows[0];
  const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return r ? { eventsPerSecond: num(r.rate), lastTickAgeSeconds: num(r.age) } : null;
}

/** The queue's latest tick and its snapshot (txid_snapshot text); null when it has none. */
export async function readLastTick(client: pg.Client, queue: string): Promise<{ tick: string; snapshot: string } | null> {
  const r = (
    await client.query<{ tick: string; snap: string }>(
      `
  SELECT t.tick_id::text AS tick, t.tick_snapshot::text AS snap FROM pgconvey.tick t JOIN pgconvey.queue q USING (queue_id)
   WHERE q.queue_name = $1 ORDER BY t.tick_id DESC LIMIT 1`,
      [queue],
    )
  ).rows[0];
  return r ? { tick: r.tick, snapshot: r.snap } : null;
}

export interface CaptureTriggerStateRow {
  table: QualifiedName;
  kind: 'row' | 'truncate';
  trigger: string;
  /** pg_trigger.tgenabled ('O' ordinary sessions, 'D' disabled, 'R' replica only, 'A' always), or `missing`. */
  enabled: string;
}

/** The capture triggers of the queue's tables and their state (pgconvey.capture_trigger_state); empty with an engine that lacks it. */
export async function readCaptureTriggerStates(client: pg.Client, queue: string): Promise<CaptureTriggerStateRow[]> {
  const present = (await client.query<{ ok: boolean }>("SELECT to_regprocedure('pgconvey.capture_trigger_state(text)') IS NOT NULL AS ok")).rows[0]!.ok;
  if (!present) return [];
  const { rows } = await client.query<{ table_schema: string; table_name: string; trigger_kind: 'row' | 'truncate'; trigger_name: string; enabled: string }>(
    'SELECT table_schema, table_name, trigger_kind, trigger_name, enabled FROM pgconvey.capture_trigger_state($1)',
    [queue],
  );
  return rows.map((r) => ({ table: qualifiedName(r.table_schema, r.table_name), kind: r.trigger_kind, trigger: r.trigger_name, enabled: r.enabled }));
}

export async function queueExists(client: pg.Client, queue: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pgconvey.queue WHERE queue_name = $1', [queue])).rowCount! > 0;
}

/** A captured table and the key columns its events carry. */
export interface CapturedTableKeys extends QualifiedName {
  keyColumns: string[];
}

/** The queue's captured tables, by schema and name. */
export async function capturedTables(client: pg.Client, queue: string): Promise<CapturedTableKeys[]> {
  const { rows } = await client.query<{ schema: string; name: string; keys: string[] }>(
    'SELECT c.table_schema AS schema, c.table_name AS name, c.key_columns AS keys FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1, 2',
    [queue],
  );
  return rows.map((r) => ({ schema: r.schema, name: r.name, keyColumns: r.keys }));
}

/** The queue's captured sequences, by schema and name. */
export async function capturedSequences(client: pg.Client, queue: string): Promise<QualifiedName[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(
    'SELECT s.seq_schema AS schema, s.seq_name AS name FROM pgconvey.captured_sequence s JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1, 2',
    [queue],
  );
  return rows.map((r) => ({ schema: r.schema, name: r.name }));
}

/** How long the oldest tick after `consumerTick` has been waiting, in ms (0 when the consumer is at the last tick). */
export async function unappliedTickAgeMs(provider: pg.Client, queue: string, consumerTick: string): Promise<number> {
  const { rows } = await provider.query<{ ms: string }>(
    `SELECT extract(epoch FROM clock_timestamp() - t.tick_time) * 1000 AS ms FROM pgconvey.tick t
      WHERE t.queue_id = (SELECT queue_id FROM pgconvey.queue WHERE queue_name = $1) AND t.tick_id > $2 ORDER BY t.tick_id LIMIT 1`,
    [queue, consumerTick],
  );
  return rows.length ? Number(rows[0]!.ms) : 0;
}
