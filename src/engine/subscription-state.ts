/**
 * A subscriber's subscriptions as stored by the engine, read as typed rows:
 * every subscription and its tables with their states (the catalog), one
 * subscription's progress and last error (status), whether a switchover
 * handed it writes (resync, compare) and its tables' states (resync); for
 * the switchover whether it exists, its completed tick, and the
 * switched-over mark it sets at the hand-over and clears at the switch back.
 * The other writes are the engine's (api.ts: subscribe, addSubscriberTable,
 * resyncTable; the worker and the copier).
 */
import type pg from 'pg';
import { qualifiedName, type QualifiedName } from '../kernel/index.js';
import { tableStateOf, type TableState } from './table-state.js';

export interface SubscriptionRow {
  queue: string;
  consumer: string;
  completedTick: string | null;
}

export interface SubscriberTableRow {
  queue: string;
  consumer: string;
  table: QualifiedName;
  state: TableState;
  /** The copy the state belongs to: its pin and generation (engine version 7; null before). */
  copyPin: string | null;
  copyGeneration: string | null;
}

/** Every subscription held in this database (as a subscriber), by queue and consumer (engine version 2 on: the caller checks). */
export async function readSubscriptions(client: pg.Client): Promise<SubscriptionRow[]> {
  const { rows } = await client.query(
    `SELECT queue_name AS queue, consumer_name AS consumer, completed_tick::text AS completed_tick FROM pgconvey.subscription ORDER BY 1, 2`,
  );
  return rows.map((s) => ({ queue: s.queue, consumer: s.consumer, completedTick: s.completed_tick }));
}

/** Every subscription's tables with their state and copy, by queue, consumer, schema and name (engine version 2 on). */
export async function readSubscriberTables(client: pg.Client): Promise<SubscriberTableRow[]> {
  const { rows } = await client.query(`SELECT queue_name AS queue, consumer_name AS consumer, table_schema AS schema, table_name AS name, state,
         to_jsonb(t) ->> 'copy_pin' AS copy_pin, to_jsonb(t) ->> 'copy_generation' AS copy_generation
    FROM pgconvey.subscriber_table t ORDER BY 1, 2, 3, 4`);
  return rows.map((t) => ({ queue: t.queue, consumer: t.consumer, table: qualifiedName(t.schema, t.name), state: tableStateOf(t.state), copyPin: t.copy_pin, copyGeneration: t.copy_generation }));
}

export interface SubscriptionProgress {
  completedTick: string | null;
  /** Seconds since the last batch was applied; null when none was. */
  appliedAgeSeconds: number | null;
  /** The worker's last error (engine version 5), how long ago, and whether it is newer than the last batch applied. */
  lastError: string | null;
  lastErrorAgeSeconds: number | null;
  errorIsNewer: boolean;
  /** Set while this subscriber takes writes (a switchover handed them over). */
  switchedOverAt: Date | null;
}

/** One subscription's position, last batch and last error; null when this database has no such subscription. */
export async function readSubscriptionProgress(client: pg.Client, queue: string, consumer: string): Promise<SubscriptionProgress | null> {
  const sub = (
    await client.query(
      `
  SELECT completed_tick::text AS completed_tick, extract(epoch FROM clock_timestamp() - applied_at) AS applied_age,
         (to_jsonb(s) ->> 'last_error') AS last_error,
         extract(epoch FROM clock_timestamp() - (to_jsonb(s) ->> 'last_error_at')::timestamptz) AS error_age,
         (to_jsonb(s) ->> 'last_error_at')::timestamptz > coalesce(applied_at, '-infinity') AS error_is_newer,
         (to_jsonb(s) ->> 'switched_over_at')::timestamptz AS switched_over_at
    FROM pgconvey.subscription s WHERE queue_name = $1 AND consumer_name = $2`,
      [queue, consumer],
    )
  ).rows[0];
  if (!sub) return null;
  return {
    completedTick: sub.completed_tick,
    appliedAgeSeconds: sub.applied_age === null || sub.applied_age === undefined ? null : Number(sub.applied_age),
    lastError: sub.last_error,
    lastErrorAgeSeconds: sub.error_age === null || sub.error_age === undefined ? null : Number(sub.error_age),
    errorIsNewer: Boolean(sub.error_is_newer),
    switchedOverAt: sub.switched_over_at ?? null,
  };
}

/** The tables of one subscription and their states (unordered). */
export async function readTableStates(client: pg.Client, queue: string, consumer: string): Promise<Array<{ table: QualifiedName; state: TableState }>> {
  const { rows } = await client.query<{ schema: string; name: string; state: string }>(
    'SELECT table_schema AS schema, table_name AS name, state FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2',
    [queue, consumer],
  );
  return rows.map((r) => ({ table: qualifiedName(r.schema, r.name), state: tableStateOf(r.state) }));
}

export async function isSubscribed(subscriber: pg.Client, queue: string, consumer: string): Promise<boolean> {
  return (await subscriber.query('SELECT 1 FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer])).rowCount! > 0;
}

/** The last tick the subscription applied, as text; null when it has none or does not exist. */
export async function completedTick(subscriber: pg.Client, queue: string, consumer: string): Promise<string | null> {
  const { rows } = await subscriber.query<{ tick: string | null }>('SELECT completed_tick::text AS tick FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
  return rows[0]?.tick ?? null;
}

/** When writes were switched over to this subscriber (null: never, or switched back; also on an engine older than the mark). */
export async function switchedOverAt(subscriber: pg.Client, queue: string, consumer: string): Promise<Date | null> {
  const { rows } = await subscriber.query<{ at: Date | null }>(
    "SELECT (to_jsonb(s) ->> 'switched_over_at')::timestamptz AS at FROM pgconvey.subscription s WHERE queue_name = $1 AND consumer_name = $2",
    [queue, consumer],
  );
  return rows[0]?.at ?? null;
}

/** The hand-over: this subscriber takes the writes now. Run inside the caller's transaction. */
export async function markSwitchedOver(subscriber: pg.Client, queue: string, consumer: string): Promise<void> {
  await subscriber.query('UPDATE pgconvey.subscription SET switched_over_at = now() WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
}

/** The switch back: the writes went back to the provider. Run inside the caller's transaction. */
export async function clearSwitchedOver(subscriber: pg.Client, queue: string, consumer: string): Promise<void> {
  await subscriber.query('UPDATE pgconvey.subscription SET switched_over_at = NULL WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
}
