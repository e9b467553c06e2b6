/**
 * Reading one batch from the provider: the events whose transaction is
 * visible in the end tick's snapshot and not in the start tick's — an index
 * range on the transaction id from the start's xmax to the end's xmax, plus
 * the exact list of transactions that were running at the start and had
 * finished by the end — from every event table of the queue, in event order,
 * through a cursor fetched in chunks so memory stays bounded however large
 * the batch (or one transaction in it) is.
 */
import { sqlFormat } from '../kernel/index.js';
import type pg from 'pg';
import { lateTransactions, parseSnapshot } from './snapshot.js';
import { NO_PHASES, type Phases } from './worker-profile.js';

export interface BatchInfo {
  queueId: number;
  startTick: string;
  endTick: string;
  startSnapshot: string;
  endSnapshot: string;
  startTime: Date;
  endTime: Date;
  eventEstimate: string;
}

export type EventOp = 'I' | 'U' | 'D' | 'T';

export interface QueueEvent {
  txid: string;
  table: number;
  op: EventOp;
  /** The row shape (pgconvey.table_shape) the event was written with; null for T. */
  shape: number | null;
  /** D: the old key as the text of a row of the shape's key columns; null otherwise. */
  key: string | null;
  /** I, U: the row as the text of the whole row (record_out); null otherwise. */
  data: string | null;
}

export async function nextBatch(provider: pg.Client, queue: string, consumer: string, maxEvents: number): Promise<BatchInfo | null> {
  const { rows } = await provider.query('SELECT * FROM pgconvey.next_batch($1, $2, $3)', [queue, consumer, maxEvents]);
  return batchFromRow(rows[0]);
}

/** A row of pgconvey.next_batch() as a batch (none: null). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function batchFromRow(r: any): BatchInfo | null {
  if (!r) return null;
  return {
    queueId: r.queue_id,
    startTick: r.start_tick,
    endTick: r.end_tick,
    startSnapshot: r.start_snapshot,
    endSnapshot: r.end_snapshot,
    startTime: r.start_time,
    endTime: r.end_time,
    eventEstimate: r.event_estimate,
  };
}

export async function finishBatch(provider: pg.Client, queue: string, consumer: string, endTick: string): Promise<boolean> {
  const { rows } = await provider.query<{ ok: boolean }>('SELECT pgconvey.finish_batch($1, $2, $3) AS ok', [queue, consumer, endTick]);
  return rows[0]!.ok;
}

/** Tables to read, by table id; null: every table. */
export type TableIds = ReadonlySet<number> | null;

/**
 * The SELECT returning a batch's events, with every value inlined as a literal
 * (for DECLARE CURSOR). Events written before engine migration 0006 (JSON
 * rows, no shape) are turned into row text on the way by
 * pgconvey.legacy_event().
 */
export function batchEventsSql(batch: BatchInfo, tables: TableIds, skipVisibleIn: ReadonlyMap<number, string> = new Map()): string {
  const tableIds = tables === null ? null : [...tables];
  const start = parseSnapshot(batch.startSnapshot);
  const end = parseSnapshot(batch.endSnapshot);
  const late = lateTransactions(start, end).map(String);
  const tableFilter = tableIds === null ? '' : tableIds.length === 0 ? ' AND false' : sqlFormat(' AND ev_table IN (%s)', tableIds.map(String));
  const columns = 'ev_id, ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data';
  const parts: string[] = [];
  for (let n = 0; n < 3; n++) {
    const table = sqlFormat('pgconvey.%I', `event_${batch.queueId}_${n}`);
    parts.push(
      sqlFormat(
        `SELECT ${columns} FROM %s WHERE ev_txid >= %L AND ev_txid < %L AND pg_catalog.txid_visible_in_snapshot(ev_txid, %L)%s`,
        table,
        String(start.xmax),
        String(end.xmax),
        batch.endSnapshot,
        tableFilter,
      ),
    );
    if (late.length) parts.push(sqlFormat(`SELECT ${columns} FROM %s WHERE ev_txid IN (%s)%s`, table, late, tableFilter));
  }
  // A copied table still merging: its copy already has the transactions visible in the copy's snapshot.
  // One condition per distinct snapshot (the tables of one copy batch share theirs), not one per table.
  const bySnapshot = new Map<string, number[]>();
  for (const [id, snap] of skipVisibleIn) bySnapshot.set(snap, [...(bySnapshot.get(snap) ?? []), id]);
  const skip = [...bySnapshot].map(([snap, ids]) =>
    ids.length === 1
      ? sqlFormat('NOT (ev_table = %s AND pg_catalog.txid_visible_in_snapshot(ev_txid, %L))', ids[0]!, snap)
      : sqlFormat('NOT (ev_table IN (%s) AND pg_catalog.txid_visible_in_snapshot(ev_txid, %L))', ids.map(String), snap),
  );
  const where = skip.length ? ` WHERE ${skip.join(' AND ')}` : '';
  const legacy = (field: string) => `(pgconvey.legacy_event(e.ev_table, e.ev_op, e.ev_key, e.ev_data)).${field}`;
  const isLegacy = "e.ev_shape IS NULL AND e.ev_op <> 'T'";
  return (
    `SELECT e.ev_txid, e.ev_table, e.ev_op, CASE WHEN ${isLegacy} THEN ${legacy('shape')} ELSE e.ev_shape END, ` +
    `CASE WHEN ${isLegacy} THEN ${legacy('key')} ELSE e.ev_key END, CASE WHEN ${isLegacy} THEN ${legacy('data')} ELSE e.ev_data END ` +
    `FROM (${parts.join(' UNION ALL ')}) e${where} ORDER BY e.ev_id`
  );
}

const CURSOR = 'pgconvey_batch';

/**
 * work_mem of the cursor's transaction: the batch is sorted by event id
 * before its first row comes (no index on ev_id: the capture keeps one index
 * per event table), and a 50,000-event batch of pgbench rows (~10 MB) spilled
 * to disk at the default 4 MB. SET LOCAL: the session's setting is back after
 * the batch; a larger batch still spills, it is only slower.
 */
const SORT_MEMORY = '64MB';

/**
 * Streams a batch's events in chunks to `onChunk`, inside a provider
 * transaction that is closed afterwards (a batch of at most the first
 * chunk's rows: one statement, its own transaction). The chunk size adapts to the size of
 * the rows so that a chunk stays near `chunkBytes` (three chunks are in
 * memory at most: the one whose statements run on the subscriber, the one
 * being decoded, and the one read ahead).
 */
export async function readBatch(
  provider: pg.Client,
  batch: BatchInfo,
  tables: TableIds,
  onChunk: (events: QueueEvent[]) => Promise<void>,
  options: {
    maxRows?: number;
    chunkBytes?: number;
    skipVisibleIn?: ReadonlyMap<number, string>;
    phases?: Phases;
    /** A batch the provider computed ahead (readAhead of the previous read): read from it when it holds exactly this read; closed in any case. */
    held?: HeldBatch;
    /** After the read, the provider computes the next batch of the same tables ahead, unless it is small (see readAhead). */
    readAhead?: { maxEvents: number; minEvents: number; onHeld: (next: Promise<HeldBatch | undefined>) => void };
    /** Called when the batch is read from `held`. */
    onHeldRead?: () => void;
  } = {},
): Promise<number> {
  const maxRows = options.maxRows ?? 10_000;
  const chunkBytes = options.chunkBytes ?? 32 * 1024 * 1024;
  let fetchRows = Math.min(500, maxRows);
  let total = 0;
  const phases = options.phases ?? NO_PHASES;
  // Rows come as arrays (no per-row objects from pg) in the column order of batchEventsSql.
  const toEvent = (r: unknown[]): QueueEvent => ({
    txid: r[0] as string,
    table: r[1] as number,
    op: r[2] as EventOp,
    shape: r[3] as number | null,
    key: r[4] as string | null,
    data: r[5] as string | null,
  });
  const sql = batchEventsSql(batch, tables, options.skipVisibleIn);
  const held = options.held;
  if (held && held.sql !== sql) await closeHeld(provider, held);
  const stream = async (first: unknown[][], requestedFirst: number, fetch: (n: number) => Promise<pg.QueryResult<unknown[]>>) => {
    let rows = first;
    let requested = requestedFirst;
    // Read ahead: the next chunk is fetched from the provider while this one is applied.
    for (;;) {
      const events = rows.map(toEvent);
      const widest = events.reduce((m, e) => Math.max(m, (e.data?.length ?? 0) + (e.key?.length ?? 0) + 64), 1);
      fetchRows = Math.max(1, Math.min(maxRows, Math.floor(chunkBytes / widest)));
      const more = rows.length === requested;
      requested = fetchRows;
      const next = more ? fetch(requested) : undefined;
      // Keep a rejection of the read-ahead from going unhandled while the chunk is applied.
      next?.catch(() => undefined);
      if (events.length) {
        total += events.length;
        await onChunk(events);
      }
      if (!next) break;
      rows = (await phases.time('read', () => next)).rows;
    }
  };
  const ahead = () => {
    const r = options.readAhead;
    if (!r) return;
    const next = holdNextBatch(provider, batch, tables, options.skipVisibleIn ?? new Map(), r.maxEvents, r.minEvents);
    r.onHeld(next);
  };
  if (held && held.sql === sql) {
    // Computed by the provider while the previous batch was finishing: fetched outside a transaction
    // (a held cursor's rows are stored), then closed.
    const first = await phases.time('read', () => provider.query<unknown[]>({ text: `FETCH ${fetchRows} FROM ${held.cursor}`, rowMode: 'array' })).catch(() => undefined);
    if (first) {
      options.onHeldRead?.();
      try {
        await stream(first.rows, fetchRows, (n) => provider.query<unknown[]>({ text: `FETCH ${n} FROM ${held.cursor}`, rowMode: 'array' }));
      } finally {
        await closeHeld(provider, held);
      }
      ahead();
      return total;
    }
    // The cursor is gone (nothing of it was read): the batch is read as usual.
    await closeHeld(provider, held);
  }
  // A small batch (a subscriber keeping up) in one statement, no transaction or cursor: one round trip
  // instead of two. At most as many rows as the cursor's first FETCH; a batch found larger than its count
  // of event ids says (a transaction that took its ids before the start tick) is read by the cursor below.
  if (BigInt(batch.eventEstimate) <= BigInt(fetchRows)) {
    const { rows } = await phases.time('read', () => provider.query<unknown[]>({ text: `${sql} LIMIT ${fetchRows + 1}`, rowMode: 'array' }));
    if (rows.length <= fetchRows) {
      if (rows.length) await onChunk(rows.map(toEvent));
      return rows.length;
    }
  }
  try {
    // One round trip opens the transaction, declares the cursor and fetches the first chunk.
    const results = (await phases.time('read', () => provider.query({
      text: `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL work_mem = '${SORT_MEMORY}'; DECLARE ${CURSOR} NO SCROLL CURSOR FOR ${sql}; FETCH ${fetchRows} FROM ${CURSOR}`,
      rowMode: 'array',
    }))) as unknown as pg.QueryResult<unknown[]>[];
    await stream(results[results.length - 1]!.rows, fetchRows, (n) => provider.query<unknown[]>({ text: `FETCH ${n} FROM ${CURSOR}`, rowMode: 'array' }));
    await phases.time('read', () => provider.query('COMMIT'));
  } catch (err) {
    await provider.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  ahead();
  return total;
}

/**
 * A batch's events computed ahead by the provider and held there (a cursor
 * WITH HOLD: its rows are stored when its transaction commits), for the step
 * that takes that batch. It is read only when the read it holds is exactly
 * the one asked for (the same SQL text: queue, ticks and their snapshots,
 * tables, skipped copies), so it changes what is read never, only when.
 */
export interface HeldBatch {
  cursor: string;
  sql: string;
}

let heldCursors = 0;

/**
 * The next batch after `batch` as pgconvey.next_batch will choose it once
 * `batch` is finished (the ticks after its end tick, up to `maxEvents`
 * event ids, at least one tick), computed and held on the provider; none when
 * there is no later tick or it is small (at most `minEvents` event ids: the
 * poll's round trip reads it). Never fails: a problem only means no batch is
 * held (the step then reads as usual). Runs in its own transaction, after
 * the read of `batch` committed.
 */
async function holdNextBatch(provider: pg.Client, batch: BatchInfo, tables: TableIds, skipVisibleIn: ReadonlyMap<number, string>, maxEvents: number, minEvents: number): Promise<HeldBatch | undefined> {
  try {
    const { rows } = await provider.query<{ tick_id: string; snap: string; tick_time: Date; estimate: string }>(
      `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL work_mem = '${SORT_MEMORY}';
       SELECT e.tick_id, e.tick_snapshot::text AS snap, e.tick_time, e.tick_event_seq - s.tick_event_seq AS estimate
         FROM pgconvey.tick s
         CROSS JOIN LATERAL (SELECT min(t.tick_id) AS first, max(t.tick_id) FILTER (WHERE t.tick_event_seq - s.tick_event_seq <= ${Math.trunc(maxEvents)}) AS last
                               FROM pgconvey.tick t WHERE t.queue_id = s.queue_id AND t.tick_id > s.tick_id) x
         JOIN pgconvey.tick e ON e.queue_id = s.queue_id AND e.tick_id = greatest(x.first, coalesce(x.last, x.first))
        WHERE s.queue_id = ${Number(batch.queueId)} AND s.tick_id = ${BigInt(batch.endTick)}`.replace(/\s+/g, ' '),
    ).then((r) => (r as unknown as pg.QueryResult[])[2]!);
    const row = rows[0];
    if (!row || BigInt(row.estimate) <= BigInt(minEvents)) {
      await provider.query('ROLLBACK');
      return undefined;
    }
    const next: BatchInfo = {
      queueId: batch.queueId,
      startTick: batch.endTick,
      endTick: String(row.tick_id),
      startSnapshot: batch.endSnapshot,
      endSnapshot: row.snap,
      startTime: batch.endTime,
      endTime: row.tick_time,
      eventEstimate: String(row.estimate),
    };
    const held: HeldBatch = { cursor: `pgconvey_next_${++heldCursors}`, sql: batchEventsSql(next, tables, skipVisibleIn) };
    await provider.query(`DECLARE ${held.cursor} NO SCROLL CURSOR WITH HOLD FOR ${held.sql}; COMMIT`);
    return held;
  } catch {
    await provider.query('ROLLBACK').catch(() => undefined);
    return undefined;
  }
}

/** Closes a held batch's cursor (best effort: a cursor left open goes with the session). */
export async function closeHeld(provider: pg.Client, held: HeldBatch): Promise<void> {
  await provider.query(`CLOSE ${held.cursor}`).catch(() => undefined);
}
