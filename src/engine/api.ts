/**
 * The engine's programmatic API: thin, typed calls of the engine's SQL
 * functions on one connection. Every call is idempotent where the function
 * is (create_queue, add_table, register_consumer, subscribe).
 */
import type pg from 'pg';
import { rebuildSetAside, type SetAsideIndex } from './set-aside-indexes.js';
import { sqlStates, tableStateOf, type TableState } from './table-state.js';

export interface QueueSettings {
  tickerMaxCount: number;
  tickerMaxLagMs: number;
  tickerIdlePeriodMs: number;
  /** The least time between two ticks taken for a subscriber that keeps up (engine 13; 0: at once). */
  tickerMinIntervalMs: number;
  /** Event tables take turns every this many transaction ids. */
  rotationTxids: number;
  tickRetentionMs: number;
}

const SETTING_COLUMNS: Record<keyof QueueSettings, string> = {
  tickerMaxCount: 'ticker_max_count',
  tickerMaxLagMs: 'ticker_max_lag',
  tickerIdlePeriodMs: 'ticker_idle_period',
  tickerMinIntervalMs: 'ticker_min_interval',
  rotationTxids: 'rotation_txids',
  tickRetentionMs: 'tick_retention',
};

/** Creates the queue if missing; returns its id. */
export async function createQueue(client: pg.Client, queue: string, settings: Partial<QueueSettings> = {}): Promise<number> {
  const { rows } = await client.query<{ id: number }>('SELECT pgconvey.create_queue($1) AS id', [queue]);
  await configureQueue(client, queue, settings);
  return rows[0]!.id;
}

export async function configureQueue(client: pg.Client, queue: string, settings: Partial<QueueSettings>): Promise<void> {
  for (const [key, value] of Object.entries(settings) as Array<[keyof QueueSettings, number | undefined]>) {
    if (value === undefined) continue;
    const text = key === 'tickerMaxCount' || key === 'rotationTxids' ? String(value) : `${value} milliseconds`;
    await client.query('SELECT pgconvey.set_queue_config($1, $2, $3)', [queue, SETTING_COLUMNS[key], text]);
  }
}

export async function dropQueue(client: pg.Client, queue: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pgconvey.drop_queue($1) AS ok', [queue]);
  return rows[0]!.ok;
}

/** Starts capturing a table's changes; returns its table id. */
export async function addTable(client: pg.Client, queue: string, schema: string, table: string, keyColumns?: string[]): Promise<number> {
  const { rows } = await client.query<{ id: number }>('SELECT pgconvey.add_table($1, $2, $3, $4) AS id', [queue, schema, table, keyColumns ?? null]);
  return rows[0]!.id;
}

/** addTable of many tables of one queue in one engine call (all or nothing); returns their table ids, in order. */
export async function addTables(client: pg.Client, queue: string, tables: ReadonlyArray<{ schema: string; table: string; keyColumns?: string[] | null }>): Promise<number[]> {
  const spec = tables.map((t) => ({ schema: t.schema, table: t.table, key: t.keyColumns ?? null }));
  const { rows } = await client.query<{ ids: number[] }>('SELECT pgconvey.add_tables($1, $2::jsonb) AS ids', [queue, JSON.stringify(spec)]);
  return rows[0]!.ids;
}

export async function removeTable(client: pg.Client, queue: string, schema: string, table: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pgconvey.remove_table($1, $2, $3) AS ok', [queue, schema, table]);
  return rows[0]!.ok;
}

/** Registers a consumer (at the latest tick if new); returns its position. */
export async function registerConsumer(client: pg.Client, queue: string, consumer: string): Promise<string> {
  const { rows } = await client.query<{ pos: string }>('SELECT pgconvey.register_consumer($1, $2) AS pos', [queue, consumer]);
  return rows[0]!.pos;
}

export async function unregisterConsumer(client: pg.Client, queue: string, consumer: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pgconvey.unregister_consumer($1, $2) AS ok', [queue, consumer]);
  return rows[0]!.ok;
}

/** Ticks when a tick is due (by event count, lag or idle period); returns the tick id or null. */
export async function tick(client: pg.Client, queue: string): Promise<string | null> {
  const { rows } = await client.query<{ id: string | null }>('SELECT pgconvey.ticker($1) AS id', [queue]);
  return rows[0]!.id;
}

/** Ticks now. Must run outside any transaction that wrote events. */
export async function forceTick(client: pg.Client, queue: string): Promise<string> {
  const { rows } = await client.query<{ id: string }>('SELECT pgconvey.force_tick($1) AS id', [queue]);
  return rows[0]!.id;
}

export interface MaintenanceResult {
  /** Event tables emptied (all their events read by every consumer). */
  tablesEmptied: number;
  ticksDeleted: number;
}

/** Empties event tables every consumer has read, and removes old ticks; two transactions. */
export async function maintainQueue(client: pg.Client, queue: string): Promise<MaintenanceResult> {
  const tablesEmptied = (await client.query<{ n: number }>('SELECT pgconvey.maint_rotate($1) AS n', [queue])).rows[0]!.n;
  const ticksDeleted = (await client.query<{ n: number }>('SELECT pgconvey.maint_ticks($1) AS n', [queue])).rows[0]!.n;
  return { tablesEmptied, ticksDeleted };
}

/**
 * Subscribes a database to a queue: registers the consumer on the provider and
 * records its position on the subscriber, so the first batch applied is the
 * one that follows it. Re-running keeps both positions.
 */
export async function subscribe(provider: pg.Client, subscriber: pg.Client, queue: string, consumer: string): Promise<string> {
  const position = await registerConsumer(provider, queue, consumer);
  await subscriber.query(
    `INSERT INTO pgconvey.subscription (queue_name, consumer_name, completed_tick) VALUES ($1, $2, $3)
     ON CONFLICT (queue_name, consumer_name) DO NOTHING`,
    [queue, consumer, position],
  );
  return position;
}

/** Marks a table as applied by a subscription (state 'ok': its events apply with every batch). */
export async function addSubscriberTable(subscriber: pg.Client, queue: string, consumer: string, schema: string, table: string, state: TableState = 'ok'): Promise<void> {
  await subscriber.query(
    `INSERT INTO pgconvey.subscriber_table (queue_name, consumer_name, table_schema, table_name, state) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (queue_name, consumer_name, table_schema, table_name) DO UPDATE SET state = EXCLUDED.state, state_since = now()
     WHERE pgconvey.subscriber_table.state IS DISTINCT FROM EXCLUDED.state`,
    [queue, consumer, schema, table, state],
  );
}

export async function removeSubscriberTable(subscriber: pg.Client, queue: string, consumer: string, schema: string, table: string): Promise<void> {
  const { rows } = await subscriber.query<{ indexes: SetAsideIndex[] | null }>(
    `DELETE FROM pgconvey.subscriber_table t WHERE queue_name = $1 AND consumer_name = $2 AND table_schema = $3 AND table_name = $4
     RETURNING to_jsonb(t) -> 'copy_indexes' AS indexes`,
    [queue, consumer, schema, table],
  );
  // A split copy killed after setting its indexes aside left them on record: no later copy will rebuild them now.
  await rebuildSetAside([subscriber], rows[0]?.indexes ?? []);
}

export interface ConsumerStatus {
  queue: string;
  lastTick: string;
  lastTickTime: Date;
  eventsSinceTick: string;
  consumer: string | null;
  consumerTick: string | null;
  lagMs: number | null;
  pendingEvents: string | null;
  batchOpen: boolean | null;
}

export async function queueStatus(client: pg.Client, queue: string): Promise<ConsumerStatus[]> {
  const { rows } = await client.query(
    `SELECT queue_name, last_tick, last_tick_time, events_since_tick, consumer_name, consumer_tick,
            extract(epoch FROM consumer_lag) * 1000 AS lag_ms, consumer_pending_events, batch_open
       FROM pgconvey.queue_status($1)`,
    [queue],
  );
  return rows.map((r) => ({
    queue: r.queue_name,
    lastTick: r.last_tick,
    lastTickTime: r.last_tick_time,
    eventsSinceTick: r.events_since_tick,
    consumer: r.consumer_name,
    consumerTick: r.consumer_tick,
    lagMs: r.lag_ms === null ? null : Number(r.lag_ms),
    pendingEvents: r.consumer_pending_events,
    batchOpen: r.batch_open,
  }));
}

/** Records the last error an apply worker met, for `status` (needs engine version 5). */
export async function recordWorkerError(subscriber: pg.Client, queue: string, consumer: string, message: string): Promise<void> {
  await subscriber.query('UPDATE pgconvey.subscription SET last_error = $3, last_error_at = clock_timestamp() WHERE queue_name = $1 AND consumer_name = $2', [
    queue,
    consumer,
    message.slice(0, 2000),
  ]);
}

/**
 * Copies a table again from scratch (state `pending`), while the others go on
 * replicating. A new generation ends any copy of the table in progress (it
 * checks its generation before loading) and releases its pin. The UPDATE waits
 * for a batch that applies the table (it holds the row FOR SHARE) or a copy
 * loading it (FOR UPDATE), so it never comes between their read and their commit.
 */
export async function resyncTable(subscriber: pg.Client, queue: string, consumer: string, schema: string, table: string): Promise<void> {
  const r = await subscriber.query(
    `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('pending')}, state_since = now(), copy_snapshot = NULL, copy_tick = NULL,
            copy_generation = pg_catalog.nextval('pgconvey.copy_generation_seq'), copy_pin = NULL, last_error = NULL, last_error_at = NULL, copy_failures = 0
      WHERE queue_name = $1 AND consumer_name = $2 AND table_schema = $3 AND table_name = $4`,
    [queue, consumer, schema, table],
  );
  if (r.rowCount === 0) throw new Error(`table ${schema}.${table} is not part of subscription "${consumer}" of queue "${queue}"`);
}

/** Carries a sequence forward to subscribers. */
export async function addSequence(client: pg.Client, queue: string, schema: string, name: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pgconvey.add_sequence($1, $2, $3) AS ok', [queue, schema, name]);
  return rows[0]!.ok;
}

export async function removeSequence(client: pg.Client, queue: string, schema: string, name: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pgconvey.remove_sequence($1, $2, $3) AS ok', [queue, schema, name]);
  return rows[0]!.ok;
}

/**
 * Moves every sequence the queue carries forward on the subscriber to the
 * provider's current value plus `margin` increments (never backwards) — the
 * last push before a switchover. Returns how many sequences it looked at.
 */
export async function syncSequences(provider: pg.Client, subscriber: pg.Client, queue: string, margin = 0): Promise<number> {
  const values = await provider.query<{ seq_schema: string; seq_name: string; last_value: string; is_called: boolean }>('SELECT * FROM pgconvey.sequence_values($1)', [queue]);
  if (!values.rows.length) return 0;
  await subscriber.query('SELECT pgconvey.advance_sequence(s, n, v, c, $5) FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[]) AS x(s, n, v, c)', [
    values.rows.map((r) => r.seq_schema),
    values.rows.map((r) => r.seq_name),
    values.rows.map((r) => r.last_value),
    values.rows.map((r) => r.is_called),
    margin,
  ]);
  return values.rows.length;
}

export interface TableStatus {
  schema: string;
  table: string;
  state: TableState;
  since: Date;
  rowsCopied: number;
  bytesCopied: number;
  /** The provider's estimate of the table's rows (pg_class.reltuples) when the copy began. */
  rowsExpected: number | null;
  /** Rows per second of the copy so far (while copying) or overall (after it). */
  rowsPerSecond: number | null;
  /** Seconds left for a copy in progress, estimated from its rate and the expected rows. */
  etaSeconds: number | null;
  lastError: string | null;
  /** When the last copy attempt failed, and how many failed since the last good copy (engine version 7). */
  lastErrorAt?: Date | null;
  copyFailures?: number;
  /** The copy the state belongs to: its pin on the provider and generation (engine version 7). */
  copyPin?: string | null;
  copyGeneration?: string | null;
  /** The copy's snapshot while the table merges. */
  copySnapshot?: string | null;
  /** What the table waits for, when it waits (filled in by `status`: a lock holder, the next tick or batch). */
  waitingFor?: string | null;
}

/** Per table of a subscription: its state, and for copies the progress, rate and estimated time left. */
export async function tableStatus(subscriber: pg.Client, queue: string, consumer: string): Promise<TableStatus[]> {
  const { rows } = await subscriber.query(
    `SELECT table_schema, table_name, state, state_since, rows_copied, bytes_copied, rows_expected, last_error, copy_snapshot,
            (to_jsonb(t) ->> 'last_error_at')::timestamptz AS last_error_at, coalesce((to_jsonb(t) ->> 'copy_failures')::int, 0) AS copy_failures,
            to_jsonb(t) ->> 'copy_pin' AS copy_pin, to_jsonb(t) ->> 'copy_generation' AS copy_generation,
            extract(epoch FROM coalesce(copy_finished_at, now()) - copy_started_at) AS seconds
       FROM pgconvey.subscriber_table t WHERE queue_name = $1 AND consumer_name = $2 ORDER BY table_schema, table_name`,
    [queue, consumer],
  );
  return rows.map((r) => {
    const state = tableStateOf(r.state);
    const rowsCopied = Number(r.rows_copied);
    const seconds = r.seconds === null ? null : Number(r.seconds);
    const rate = seconds && seconds > 0 && rowsCopied > 0 ? rowsCopied / seconds : null;
    // reltuples is 0 (or -1) for a table never analyzed: then nothing is known of its size.
    const expected = r.rows_expected === null || Number(r.rows_expected) <= 0 ? null : Number(r.rows_expected);
    return {
      schema: r.table_schema,
      table: r.table_name,
      state,
      since: r.state_since,
      rowsCopied,
      bytesCopied: Number(r.bytes_copied),
      rowsExpected: expected,
      rowsPerSecond: rate,
      etaSeconds: state === 'copying' && rate && expected !== null ? Math.max(0, (expected - rowsCopied) / rate) : null,
      lastError: r.last_error,
      lastErrorAt: r.last_error_at,
      copyFailures: Number(r.copy_failures),
      copyPin: r.copy_pin,
      copyGeneration: r.copy_generation,
      copySnapshot: r.copy_snapshot,
    };
  });
}
