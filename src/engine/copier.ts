/**
 * The initial copy of a table, merged with the queue by snapshot. The capture
 * trigger exists before the copy starts. Each attempt takes a new generation
 * and marks the table `copying` under it; the rows stream (a large table's:
 * copy-stream.ts forwards the provider's CopyData frames as they come, in
 * COPY's binary format when every column allows it — copy-binary.ts; a
 * small batch's: forwarded the same way, in text, a chunk of tables in one statement each way; never buffered whole) into the subscriber
 * in ONE transaction that first
 * checks that the table's subscriber_table row is still this attempt's, then
 * sets aside secondary indexes and empties the table — steps that may wait
 * for the subscriber's readers — and only then touches the provider: a pin
 * consumer named after the generation holds the queue's events from the copy's
 * tick T on, and a REPEATABLE READ transaction locks the source table
 * (ACCESS SHARE) before its snapshot S is fixed, so no rewriting ALTER TABLE
 * can come between S and the COPY. The load records S and T with the state
 * `catching-up` — only if the row is still this attempt's (a resync, a
 * removal or another copier since it began voids it: rolled back). From then on the apply worker applies the table's events only
 * for transactions not visible in S (replaying the range from T to its own
 * position once if it is already past T), and marks the table `ok` once a
 * batch ends at a tick whose snapshot sees everything S saw (docs/engine.md).
 * A batch reads and locks (FOR SHARE) the rows of the tables it applies
 * inside its own transaction, so a resync (which must update the row) waits
 * for it, and a copy — which starts only from `pending` — never runs while a
 * batch applies to its table: copy, resync and batch never interleave.
 *
 * Every session sets its own timeouts (none: the server's statement_timeout
 * must not cancel a COPY of hours). A copy killed at any point leaves the table
 * in `copying`; a copy that fails goes back to `pending` with its error, its
 * failure count and time (retried with backoff), and removes its pin.
 *
 * A large table is split (copyTable with a range plan, copyRanges): key ranges read by
 * several provider sessions that import the copy's exported snapshot S, loaded
 * by as many subscriber sessions, each range in its own transaction that
 * locks the table and re-checks the generation; the emptying and the indexes
 * set aside (on record in `copy_indexes`) commit before, the state flips to
 * `catching-up` only after every range and index is done — so a split table's
 * rows are visible while it is `copying` (not to anything that respects the
 * state). Small tables are copied in batches under one snapshot and pin
 * (copyTableBatch), each in its own subscriber transaction as above: nothing
 * half-loaded of them is ever visible. docs/engine.md has the why.
 */
import type pg from 'pg';
import { copyPinName, quoteIdent, quoteQualified, sqlFormat, stalePins, type PinHolder } from '../kernel/index.js';
import { forceTick, registerConsumer, unregisterConsumer } from './api.js';
import { branchTablesNotReady, ProviderTableNotReadyError } from './branch.js';
import { EXACT_SESSION_SQL, NO_TIMEOUTS_SQL } from './session.js';
import { openGroupLoads, recordGroupCopied, type LoadedTable, type OpenedLoad } from './copy-batch-load.js';
import { binaryCopySafe, readColumnTypes, typesSignature } from './copy-binary.js';
import { forwardCopies, forwardCopy, ForwardCopiesError, type CopyItem, type CopyTally } from './copy-stream.js';
import { dropSetAside, indexesToSetAside, rebuildSetAside, type SetAsideIndex } from './set-aside-indexes.js';
import { holdsEvents, sqlStates, tableStateOf, type TableState } from './table-state.js';

export type OpenClient = () => Promise<pg.Client>;

export interface CopyProgress {
  schema: string;
  table: string;
  rows: number;
  bytes: number;
  rowsExpected: number | null;
  startedAt: Date;
  /** A split copy's ranges, each with its rows and bytes so far and whether it is loaded. */
  ranges?: Array<{ rows: number; bytes: number; done: boolean }>;
}

export interface CopyResult {
  rows: number;
  bytes: number;
  durationMs: number;
  snapshot: string;
  tick: string;
  generation: string;
  /** How many key ranges the table was copied in (1: one stream). */
  ranges: number;
  /** COPY's format: binary when every column's type has the same binary form on both sides (copy-binary.ts), else text. */
  format?: 'binary' | 'text';
  /** A large table's phases (ms): the rows' stream (every range), and the indexes and keys built again after it. */
  streamMs?: number;
  indexMs?: number;
  /** When each step of a one-table copy ended, in ms since the copy began (the copy's timeline: bench/copy-probe.ts). */
  phasesMs?: Record<string, number>;
}

export interface CopyOptions {
  queue: string;
  consumer: string;
  schema: string;
  table: string;
  /** Called about every `progressEveryMs` (and at the end) with rows and bytes so far. */
  onProgress?: (p: CopyProgress) => void;
  progressEveryMs?: number;
  /** Range streams of a split copy at a time (default DEFAULT_COPY_RANGES; 1: never split). Each takes a provider and a subscriber connection. */
  ranges?: number;
  /** Tables smaller than this on the provider (bytes) are copied in one stream (default SPLIT_MIN_BYTES). */
  splitMinBytes?: number;
  /** Abandons the copy (rolled back; the table stays waiting and is copied again next time). */
  signal?: AbortSignal;
  /** Binary COPY where every column allows it (default true; false: always text). */
  binary?: boolean;
}

/** The table's row changed since this copy began (a resync, a removal, another copier): this copy stops. */
export class CopySupersededError extends Error {
  constructor(qualified: string) {
    super(`the copy of ${qualified} was superseded (resynced, removed or copied by another process since it began)`);
    this.name = 'CopySupersededError';
  }
}

/** Session settings of every copy connection: exact text I/O, and none of the server's timeouts. */
const COPY_SESSION_SQL = `${EXACT_SESSION_SQL}; ${NO_TIMEOUTS_SQL}`;

/** One stream's rows and bytes as copy-stream.ts counts them, and whether its range is loaded and committed. */
interface CopyCounter extends CopyTally {
  done: boolean;
}

/**
 * Closes a connection at once, whatever it is doing: a client whose COPY
 * failed half-way may never answer a queued ROLLBACK (the stream is paused),
 * so the socket is destroyed and the server rolls back on its own.
 */
function closeNow(c: pg.Client): Promise<void> {
  const stream = (c as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
  stream?.destroy?.();
  return Promise.race([c.end().catch(() => undefined), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
}

/** A table's row in subscriber_table: the WHERE clause of every statement on it ($1–$4). */
const WHERE = 'queue_name = $1 AND consumer_name = $2 AND table_schema = $3 AND table_name = $4';

/** Whether a table is partitioned (its rows are its partitions'). */
const isPartitioned = async (c: pg.Client, qualified: string) =>
  (await c.query<{ p: boolean }>("SELECT c.relkind = 'p' AS p FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)", [qualified])).rows[0]?.p === true;

/**
 * Inside a subscriber transaction (replica role): empties the table unless it
 * is empty already — TRUNCATE (a new file for the table and each index: the
 * largest cost of copying a small table), or DELETE when foreign keys point
 * at it. The EXCLUSIVE lock taken first (writers wait; readers see the old
 * rows until the load commits) makes "empty" hold until then.
 */
async function emptyTable(target: pg.Client, qualified: string, partitioned: boolean): Promise<void> {
  const only = partitioned ? '' : 'ONLY ';
  const results = (await target.query(`LOCK TABLE ${only}${qualified} IN EXCLUSIVE MODE; SELECT EXISTS (SELECT 1 FROM ${only}${qualified}) AS has`)) as unknown as pg.QueryResult<{ has: boolean }>[];
  if (!results[1]!.rows[0]!.has) return;
  await target.query('SAVEPOINT pgconvey_empty');
  try {
    await target.query(`TRUNCATE ${only}${qualified}`);
  } catch {
    await target.query('ROLLBACK TO SAVEPOINT pgconvey_empty');
    await target.query(`DELETE FROM ${only}${qualified}`);
  }
}

/**
 * Opens a copy's load transaction on the subscriber (replica role), checks
 * the table's row is still this attempt's (no batch applies a `copying`
 * table; a resync since would make it another's), sets aside the indexes of
 * a `large` table and its keys (set-aside-indexes.ts; none of a partitioned
 * one, whose pg_get_indexdef says ON ONLY, and none of a `small` one, where
 * maintaining them costs less than building them again) and empties it.
 * Returns the indexes to rebuild after the load: those dropped now and those
 * an earlier attempt set aside and recorded.
 */
async function beginLoad(target: pg.Client, key: unknown[], generation: string, qualified: string, size: 'large' | 'small'): Promise<SetAsideIndex[]> {
  await target.query(BEGIN_LOAD_SQL);
  return openLoad(target, key, generation, qualified, size);
}

/** The subscriber transaction of a load: replica role (no trigger, no foreign key check fires for the copied rows). */
const BEGIN_LOAD_SQL = 'BEGIN; SET LOCAL session_replication_role = replica';

/** beginLoad inside a transaction open already (see there). */
async function openLoad(target: pg.Client, key: unknown[], generation: string, qualified: string, size: 'large' | 'small'): Promise<SetAsideIndex[]> {
  const mine = await target.query<{ copy_indexes: SetAsideIndex[] | null; partitioned: boolean | null }>(
    `SELECT copy_indexes, (SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($6)) AS partitioned
       FROM pgconvey.subscriber_table WHERE ${WHERE} AND state = ${sqlStates('copying')} AND copy_generation = $5`,
    [...key, generation, qualified],
  );
  if (mine.rowCount === 0) throw new CopySupersededError(qualified);
  const partitioned = mine.rows[0]!.partitioned === true;
  const current = partitioned || size === 'small' ? [] : await indexesToSetAside(target, qualified, { keys: true });
  await dropSetAside(target, current);
  await emptyTable(target, qualified, partitioned);
  const byName = new Map<string, SetAsideIndex>();
  for (const ix of [...(mine.rows[0]!.copy_indexes ?? []), ...current]) byName.set(`${ix.schema}\u0000${ix.name}`, ix);
  return [...byName.values()];
}

/** Records a loaded copy — its snapshot S and tick T, state `catching-up` — only if the row is still this attempt's (in the caller's transaction). */
async function recordCopied(
  target: pg.Client,
  key: unknown[],
  generation: string,
  qualified: string,
  copy: { snapshot: string; tick: string; rows: number; bytes: number; rowsExpected: number | null },
): Promise<void> {
  const recorded = await target.query(
    `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('catching-up')}, state_since = now(), copy_snapshot = $5, copy_tick = $6,
            rows_copied = $7, bytes_copied = $8, rows_expected = $9, copy_finished_at = clock_timestamp(),
            last_error = NULL, last_error_at = NULL, copy_failures = 0, copy_indexes = NULL
      WHERE ${WHERE} AND copy_generation = $10 AND state = ${sqlStates('copying')}`,
    [...key, copy.snapshot, copy.tick, copy.rows, copy.bytes, copy.rowsExpected, generation],
  );
  if (recorded.rowCount === 0) throw new CopySupersededError(qualified);
}

/** Sums the rows and bytes of a copy's streams (one per range) and keeps them on the table's row. */
class CopyMeter {
  readonly counters: CopyCounter[] = [];
  private reporting: Promise<unknown> | undefined;
  private timer: NodeJS.Timeout | undefined;
  rowsExpected: number | null = null;
  constructor(
    private readonly progress: pg.Client,
    private readonly key: unknown[],
    private readonly generation: string,
    private readonly options: CopyOptions,
    private readonly startedAt: Date,
  ) {}
  counter(): CopyCounter {
    const c: CopyCounter = { rows: 0, bytes: 0, done: false };
    this.counters.push(c);
    return c;
  }
  get rows(): number {
    return this.counters.reduce((n, c) => n + c.rows, 0);
  }
  get bytes(): number {
    return this.counters.reduce((n, c) => n + c.bytes, 0);
  }
  snapshot(): CopyProgress {
    const { schema, table } = this.options;
    const ranges = this.counters.length > 1 ? this.counters.map((c) => ({ rows: c.rows, bytes: c.bytes, done: c.done })) : undefined;
    return { schema, table, rows: this.rows, bytes: this.bytes, rowsExpected: this.rowsExpected, startedAt: this.startedAt, ...(ranges ? { ranges } : {}) };
  }
  report = (): void => {
    this.options.onProgress?.(this.snapshot());
    if (this.reporting) return; // the previous update is still on its way
    this.reporting = this.progress
      .query(`UPDATE pgconvey.subscriber_table SET rows_copied = $5, bytes_copied = $6, rows_expected = $7 WHERE ${WHERE} AND copy_generation = $8`, [
        ...this.key,
        this.rows,
        this.bytes,
        this.rowsExpected,
        this.generation,
      ])
      .catch(() => undefined)
      .finally(() => (this.reporting = undefined));
  };
  start(): void {
    this.report(); // the expected row count is on record from the first row on
    this.timer = setInterval(this.report, this.options.progressEveryMs ?? 1000);
  }
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.reporting;
  }
}

/** Tables at least this large (bytes on disk, provider) are copied in key ranges by default. */
export const SPLIT_MIN_BYTES = 32 * 2 ** 20;
/** Default number of parallel range streams of one split copy. */
export const DEFAULT_COPY_RANGES = 2;

/** How a table is split: the key column and the boundaries between its ranges (literals of the column's type). */
interface RangePlan {
  column: string;
  type: string;
  bounds: string[];
}

/**
 * The range plan of a table: by its first key column when a valid btree
 * index starts with it (each range is then an index range scan on every
 * PostgreSQL from 10 on), boundaries at quantiles of a block sample. Null: one
 * stream (too small, partitioned, no usable index, or too few distinct keys).
 * The boundaries need not be accurate — only in order and the same literal on
 * both sides of each (equal values with other texts make an empty range).
 */
async function planRanges(admin: pg.Client, qualified: string, keyColumn: string, streams: number, minBytes: number): Promise<RangePlan | null> {
  if (streams < 2) return null;
  const rel = await admin.query<{ kind: string; bytes: string; pages: number; type: string | null; indexed: boolean | null }>(
    `SELECT c.relkind::text AS kind, pg_catalog.pg_relation_size(c.oid)::text AS bytes, c.relpages::int AS pages,
            pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid JOIN pg_catalog.pg_am am ON am.oid = ic.relam
                     WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum AND am.amname = 'btree' AND i.indpred IS NULL AND i.indisvalid) AS indexed
       FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped
      WHERE c.oid = pg_catalog.to_regclass($1)`,
    [qualified, keyColumn],
  );
  const r = rel.rows[0];
  if (!r || r.kind !== 'r' || !r.type || !r.indexed || Number(r.bytes) < minBytes) return null;
  const ranges = streams * 4; // more ranges than streams: uneven ranges still keep every stream busy
  const fractions = Array.from({ length: ranges - 1 }, (_, i) => (i + 1) / ranges);
  const pages = Math.max(Number(r.pages), Math.ceil(Number(r.bytes) / 8192));
  const percent = pages <= 400 ? 100 : Math.max(0.001, (100 * 400) / pages);
  const col = quoteIdent(keyColumn);
  let bounds: string[];
  try {
    // In the order percentile_disc gives them: sorted by the column's own ordering and collation (an ORDER BY
    // here could sort with another collation, and bounds out of order would put rows in two ranges).
    const b = await admin.query<{ b: string }>(
      `SELECT x.v::text AS b FROM pg_catalog.unnest((SELECT percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY t.${col})
                                                      FROM ONLY ${qualified} t TABLESAMPLE SYSTEM (${percent}) WHERE t.${col} IS NOT NULL))
                                  WITH ORDINALITY AS x(v, i) ORDER BY x.i`,
      [fractions],
    );
    bounds = b.rows.map((x) => x.b).filter((x, i, all) => i === 0 || x !== all[i - 1]);
  } catch {
    return null; // a key type without an ordering usable here: one stream
  }
  return bounds.length ? { column: keyColumn, type: r.type, bounds } : null;
}

/** The WHERE clauses of a plan's ranges: (-∞, b1) with the NULL keys, [b1, b2), …, [bn, +∞) — every row in exactly one. */
function rangePredicates(plan: RangePlan): string[] {
  const col = quoteIdent(plan.column);
  const lit = (b: string) => `${sqlFormat('%L', b)}::${plan.type}`;
  const out = [`(${col} < ${lit(plan.bounds[0]!)} OR ${col} IS NULL)`];
  for (let i = 1; i < plan.bounds.length; i++) out.push(`(${col} >= ${lit(plan.bounds[i - 1]!)} AND ${col} < ${lit(plan.bounds[i]!)})`);
  out.push(`${col} >= ${lit(plan.bounds[plan.bounds.length - 1]!)}`);
  return out;
}

/**
 * Copies one table from the provider into the subscriber and leaves it
 * `catching-up`. The table must be registered on the subscriber
 * (subscriber_table) and captured on the provider. A large table (`splitMinBytes`)
 * is copied in key ranges, `ranges` streams at a time, in one provider snapshot
 * (copySplit); any other in one stream and one subscriber transaction.
 */
export async function copyTable(openProvider: OpenClient, openSubscriber: OpenClient, options: CopyOptions): Promise<CopyResult> {
  const { queue, consumer, schema, table } = options;
  const qualified = quoteQualified(schema, table);
  const key = [queue, consumer, schema, table];
  const started = new Date();
  const phasesMs: Record<string, number> = {};
  const mark = (name: string) => (phasesMs[name] = Date.now() - started.getTime());
  const [admin, source, target, progress] = await openAll([openProvider, openProvider, openSubscriber, openSubscriber]);
  mark('connected');
  const all = [admin, source, target, progress];
  // Connections of the range streams (split copies only), opened later.
  const streams: pg.Client[] = [];
  // Abandoning closes the connections: whatever the copy waits on (a lock, the stream) fails at once,
  // and the servers roll its transactions back.
  const abandon = () => void Promise.all([source, target, ...streams].map(closeNow));
  options.signal?.addEventListener('abort', abandon, { once: true });
  let meter: CopyMeter | undefined;
  let generation: string | undefined;
  let pin: string | undefined;
  let pinned = false;
  let setAside: SetAsideIndex[] = [];
  try {
    if (options.signal?.aborted) throw new Error('abandoned at shutdown');
    await Promise.all(all.map((c) => c.query(COPY_SESSION_SQL)));
    const captured = await admin.query<{ columns: string[]; key_columns: string[] }>(
      `SELECT t.columns, t.key_columns FROM pgconvey.captured_table t JOIN pgconvey.queue q USING (queue_id)
        WHERE q.queue_name = $1 AND t.table_schema = $2 AND t.table_name = $3`,
      [queue, schema, table],
    );
    if (!captured.rows[0]) throw new Error(`table ${qualified} is not captured by queue "${queue}" on the provider`);
    const columns = captured.rows[0].columns.map(quoteIdent).join(', ');
    const columnNames = captured.rows[0].columns;
    const plan = await planRanges(admin, qualified, captured.rows[0].key_columns[0]!, options.ranges ?? DEFAULT_COPY_RANGES, options.splitMinBytes ?? SPLIT_MIN_BYTES);
    mark('planned');

    generation = (await progress.query<{ g: string }>("SELECT pg_catalog.nextval('pgconvey.copy_generation_seq')::text AS g")).rows[0]!.g;
    pin = copyPinName(consumer, generation, schema, table);
    // The pin's name is on record before the pin exists: a worker sweeping stale pins keeps it.
    const marked = await progress.query(
      `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('copying')}, state_since = now(), copy_started_at = now(), copy_finished_at = NULL,
              rows_copied = 0, bytes_copied = 0, rows_expected = NULL, copy_snapshot = NULL, copy_tick = NULL,
              copy_generation = $5, copy_pin = $6
        WHERE ${WHERE} AND state IN (${sqlStates('pending', 'copying')})`,
      [...key, generation, pin],
    );
    if (marked.rowCount === 0) throw new Error(`table ${qualified} is not waiting for a copy in subscription "${consumer}" of queue "${queue}" on the subscriber`);
    meter = new CopyMeter(progress, key, generation, options, started);
    mark('marked');

    // The subscriber first: everything here may wait (for a batch holding the row, for readers of the table).
    setAside = await beginLoad(target, key, generation, qualified, 'large');
    // The subscriber's column types, read under the load's lock (a split copy's ranges check them again under theirs).
    const targetTypes = options.binary === false ? null : await readColumnTypes(target, qualified, columnNames);
    if (plan) {
      // The ranges load in other sessions: the indexes set aside are on record before their drop commits.
      const kept = await target.query(`UPDATE pgconvey.subscriber_table SET copy_indexes = $5::jsonb WHERE ${WHERE} AND copy_generation = $6 AND state = ${sqlStates('copying')}`, [
        ...key,
        JSON.stringify(setAside),
        generation,
      ]);
      if (kept.rowCount === 0) throw new CopySupersededError(qualified);
      await target.query('COMMIT');
    }

    mark('emptied');
    // Pin the queue at the latest tick T before the copy's snapshot is taken.
    const tick = await registerConsumer(admin, queue, pin);
    pinned = true;
    mark('pinned');
    // The source table is locked before the snapshot is fixed (LOCK takes no snapshot): an ALTER TABLE
    // that rewrites it has committed before S, or waits until the COPY is done.
    // A partitioned source: all its rows (every partition's), locked with its partitions (LOCK recurses without ONLY).
    const sourcePartitioned = await isPartitioned(source, qualified);
    const sourceOnly = sourcePartitioned ? '' : 'ONLY ';
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`LOCK TABLE ${sourceOnly}${qualified} IN ACCESS SHARE MODE`);
    const info = await source.query<{ snapshot: string; expected: string | null; exported: string | null }>(
      `SELECT pg_catalog.txid_current_snapshot()::text AS snapshot, CASE WHEN $3 THEN pg_catalog.pg_export_snapshot() END AS exported,
              (SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_catalog.pg_class c
                WHERE c.oid = pg_catalog.to_regclass($1) OR ($2 AND c.relkind = 'r' AND c.oid IN (SELECT pgconvey.partition_tree(pg_catalog.to_regclass($1))))) AS expected`,
      [qualified, sourcePartitioned, plan !== null],
    );
    const snapshot = info.rows[0]!.snapshot;
    mark('snapshot');
    // Cascades: a branch provider must have the table whole as of this snapshot (engine/branch.ts).
    if ((await branchTablesNotReady(source, queue, [{ schema: options.schema, table: options.table }])).length) throw new ProviderTableNotReadyError([qualified]);
    // Binary where both sides' types allow it, read with both tables locked against ALTER TABLE (copy-binary.ts).
    const binary = targetTypes !== null && binaryCopySafe(await readColumnTypes(source, qualified, columnNames), targetTypes, columnNames);
    const format = binary ? ' (FORMAT binary)' : '';
    meter.rowsExpected = info.rows[0]!.expected === null || Number(info.rows[0]!.expected) <= 0 ? null : Number(info.rows[0]!.expected);
    const select = (where: string) => `COPY (SELECT ${columns} FROM ${sourceOnly}${qualified}${where ? ` WHERE ${where}` : ''}) TO STDOUT${format}`;
    const load = `COPY ${qualified} (${columns}) FROM STDIN${format}`;

    meter.start();
    mark('stream_start');
    const streamStarted = Date.now();
    let indexStarted: number;
    if (!plan) {
      await forwardCopy(source, target, select(''), load, meter.counter(), { binary });
      await meter.stop();
      // S is recorded: the provider's transaction (and its lock) can end before the indexes are rebuilt.
      await source.query('COMMIT');
      indexStarted = Date.now();
      await rebuildSetAside([target], setAside);
    } else {
      await copyRanges({ openProvider, openSubscriber, streams, n: options.ranges ?? DEFAULT_COPY_RANGES, exported: info.rows[0]!.exported!, predicates: rangePredicates(plan), select, load, binary: binary ? { columns: columnNames, signature: typesSignature(targetTypes!) } : null, qualified, key, generation, meter, signal: options.signal });
      await meter.stop();
      // Every range is loaded and committed: the snapshot (and the lock that kept the source's file) can go.
      await source.query('COMMIT');
      indexStarted = Date.now();
      // The indexes set aside, built in parallel (each its own session; on record until the state flips).
      await rebuildSetAside(streams.filter((_, i) => i % 2 === 1), setAside);
      await target.query('BEGIN');
    }
    const indexMs = Date.now() - indexStarted;
    const streamMs = indexStarted - streamStarted;
    phasesMs.stream_end = indexStarted - started.getTime();
    mark('indexed');
    // Recorded only if the row is still this attempt's (a resync during the load makes this copy void).
    await recordCopied(target, key, generation, qualified, { snapshot, tick, rows: meter.rows, bytes: meter.bytes, rowsExpected: meter.rowsExpected });
    await target.query('COMMIT');
    // A tick after the copy lets the worker finish merging now rather than at the next idle tick.
    mark('recorded');
    await forceTick(admin, queue).catch(() => undefined);
    mark('ticked');
    options.onProgress?.(meter.snapshot());
    return { rows: meter.rows, bytes: meter.bytes, durationMs: Date.now() - started.getTime(), snapshot, tick, generation, ranges: plan ? plan.bounds.length + 1 : 1, format: binary ? 'binary' : 'text', streamMs, indexMs, phasesMs };
  } catch (err) {
    await meter?.stop().catch(() => undefined);
    // The load's transactions may be stuck mid-COPY: close them, and the servers roll back.
    await Promise.all([source, target, ...streams].map(closeNow));
    if (pinned && pin) await unregisterConsumer(admin, queue, pin).catch(() => undefined);
    if (options.signal?.aborted) throw new Error(`copy of ${qualified} abandoned at shutdown; it starts again from the beginning next time`);
    if (generation !== undefined && !(err instanceof CopySupersededError)) {
      await progress
        .query(
          `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('pending')}, state_since = now(), copy_pin = NULL, last_error = $5,
                  last_error_at = clock_timestamp(), copy_failures = copy_failures + 1
            WHERE ${WHERE} AND copy_generation = $6 AND state = ${sqlStates('copying')}`,
          [...key, errorMessage(err).slice(0, 2000), generation],
        )
        .catch(() => undefined);
    }
    await restoreIfRemoved(progress, key, setAside).catch(() => undefined);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abandon);
    await Promise.all([...all, ...streams].map(closeNow));
  }
}

/**
 * A table removed from the subscription during a split copy whose indexes
 * were set aside gets them back (no later copy would): the row that recorded
 * them is gone.
 */
async function restoreIfRemoved(progress: pg.Client, key: unknown[], setAside: SetAsideIndex[]): Promise<void> {
  if (!setAside.length) return;
  const row = await progress.query(`SELECT 1 FROM pgconvey.subscriber_table WHERE ${WHERE}`, key);
  if (row.rowCount) return; // the next attempt rebuilds them (they are on record)
  await rebuildSetAside([progress], setAside).catch(() => undefined);
}

/**
 * The range streams of a split copy: `n` provider sessions import the
 * exported snapshot S (so every range reads the same rows S saw, and nothing
 * else), `n` subscriber sessions load the ranges, each range in its own
 * transaction that first locks the table (ROW EXCLUSIVE) and only then checks
 * that the row is still `copying` under this generation: a newer attempt's
 * TRUNCATE either waits for the range's commit (and removes its rows), or
 * commits before, and the range sees the newer generation and stops. One
 * failing range closes every stream (the others fail at once).
 */
async function copyRanges(o: {
  openProvider: OpenClient;
  openSubscriber: OpenClient;
  streams: pg.Client[];
  n: number;
  exported: string;
  predicates: string[];
  select: (where: string) => string;
  load: string;
  /** Binary: the columns and the subscriber's types it was chosen for (each range checks them under its lock). */
  binary: { columns: string[]; signature: string } | null;
  qualified: string;
  key: unknown[];
  generation: string;
  meter: CopyMeter;
  signal?: AbortSignal;
}): Promise<void> {
  const n = Math.min(o.n, o.predicates.length);
  const opened = await openAll(Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? o.openProvider : o.openSubscriber)));
  o.streams.push(...opened);
  if (o.signal?.aborted) throw new Error('abandoned at shutdown');
  await Promise.all(opened.map((c) => c.query(COPY_SESSION_SQL)));
  const readers = opened.filter((_, i) => i % 2 === 0);
  const loaders = opened.filter((_, i) => i % 2 === 1);
  // Every reader in S before the first range starts (the exporting transaction stays open until all are loaded).
  for (const r of readers) {
    await r.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await r.query(`SET TRANSACTION SNAPSHOT ${sqlFormat('%L', o.exported)}`);
  }
  const todo = o.predicates.map((where, i) => ({ where, counter: o.meter.counter(), i }));
  let failure: unknown;
  await Promise.allSettled(
    readers.map(async (reader, lane) => {
      const loader = loaders[lane]!;
      try {
        for (let range = todo.shift(); range && failure === undefined; range = todo.shift()) {
          await loader.query('BEGIN');
          await loader.query('SET LOCAL session_replication_role = replica');
          await loader.query(`LOCK TABLE ONLY ${o.qualified} IN ROW EXCLUSIVE MODE`);
          const mine = await loader.query(`SELECT 1 FROM pgconvey.subscriber_table WHERE ${WHERE} AND state = ${sqlStates('copying')} AND copy_generation = $5`, [...o.key, o.generation]);
          if (mine.rowCount === 0) throw new CopySupersededError(o.qualified);
          if (o.binary && typesSignature(await readColumnTypes(loader, o.qualified, o.binary.columns)) !== o.binary.signature) {
            throw new Error(`the columns of ${o.qualified} on the subscriber changed during its copy (ALTER TABLE); it is copied again`);
          }
          await forwardCopy(reader, loader, o.select(range.where), o.load, range.counter, { binary: o.binary !== null });
          await loader.query('COMMIT');
          range.counter.done = true;
        }
      } catch (err) {
        // The first failure is what the copy failed of; the other streams then fail of its closing them.
        if (failure === undefined) {
          failure = err;
          await Promise.all(opened.map(closeNow));
        }
      }
    }),
  );
  if (failure !== undefined) throw failure;
  if (todo.length) throw new Error(`copy of ${o.qualified}: ${todo.length} ranges were not copied`);
  await Promise.all(readers.map((r) => r.query('COMMIT')));
}

function errorMessage(err: unknown): string {
  const e = err as { message?: string; code?: string };
  return `${e.message ?? String(err)}${e.code && /^[0-9A-Z]{5}$/.test(e.code) ? ` (SQLSTATE ${e.code})` : ''}`;
}

/**
 * Removes the copy pins of a subscription that no copy needs any more: the
 * pin of a table that is `ok`, `pending` or no longer subscribed (a `held`
 * table keeps its pin: table-hold.ts), of a copy
 * superseded by a newer one, and of a merging table whose copy tick the
 * worker's own position has reached (its consumer holds the events from
 * there). Pins are read before the rows, so a copy that registers its pin in
 * between is not touched. Returns the pins removed. The worker calls this
 * after every batch.
 */
export async function dropStalePins(provider: pg.Client, subscriber: pg.Client, queue: string, consumer: string): Promise<string[]> {
  const prefix = `copy:${consumer}:`;
  const pins = await provider.query<{ name: string }>(
    `SELECT c.consumer_name AS name FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id)
      WHERE q.queue_name = $1 AND left(c.consumer_name, length($2)) = $2`,
    [queue, prefix],
  );
  if (!pins.rows.length) return [];
  const rows = await subscriber.query<{ state: string; copy_pin: string | null; copy_generation: string; reached: boolean }>(
    `SELECT t.state, t.copy_pin, t.copy_generation::text AS copy_generation,
            (t.state = ${sqlStates('catching-up')} AND t.copy_tick IS NOT NULL AND t.copy_tick >= s.completed_tick) AS reached
       FROM pgconvey.subscriber_table t JOIN pgconvey.subscription s USING (queue_name, consumer_name)
      WHERE t.queue_name = $1 AND t.consumer_name = $2`,
    [queue, consumer],
  );
  const holders: PinHolder<TableState>[] = rows.rows.map((r) => ({ state: r.reached ? 'ok' : tableStateOf(r.state), copyPin: r.copy_pin, copyGeneration: r.copy_generation }));
  const stale = stalePins(
    pins.rows.map((r) => r.name),
    new Map([[consumer, holders]]),
    holdsEvents,
  );
  for (const p of stale) await unregisterConsumer(provider, queue, p);
  return stale;
}

/**
 * Backoff after a failed copy: 2^failures seconds, at most 5 minutes. A table
 * whose last attempt failed more recently is not copied yet.
 */
const COPY_DUE_SQL = `(last_error_at IS NULL OR last_error_at <= clock_timestamp() - least(300, power(2, least(copy_failures, 9))) * interval '1 second')`;

/** Tables of a subscription waiting for a copy (`pending`, or `copying` after a crash) and due, largest first, with their size on the provider. */
export async function tablesToCopy(
  provider: pg.Client,
  subscriber: pg.Client,
  queue: string,
  consumer: string,
): Promise<Array<{ schema: string; table: string; bytes: number; batchable: boolean }>> {
  const { rows } = await subscriber.query<{ table_schema: string; table_name: string }>(
    `SELECT table_schema, table_name FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state IN (${sqlStates('pending', 'copying')}) AND ${COPY_DUE_SQL}`,
    [queue, consumer],
  );
  if (!rows.length) return [];
  // Cascades: from a branch, only tables the branch has whole (checked again inside the copy's snapshot).
  const waiting = new Set((await branchTablesNotReady(provider, queue, rows.map((r) => ({ schema: r.table_schema, table: r.table_name })))).map((t) => quoteQualified(t.schema, t.table)));
  if (waiting.size) rows.splice(0, rows.length, ...rows.filter((r) => !waiting.has(quoteQualified(r.table_schema, r.table_name))));
  if (!rows.length) return [];
  // A partitioned table's parent has no storage of its own: its partitions' size counts, and it is never batched.
  const sizes = await provider.query<{ name: string; bytes: string; kind: string | null }>(
    `SELECT x.name, c.relkind::text AS kind,
            coalesce(CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_catalog.pg_relation_size(p)) FROM pgconvey.partition_tree(c.oid) AS p)
                          ELSE pg_catalog.pg_relation_size(c.oid) END, 0)::text AS bytes
       FROM unnest($1::text[]) AS x(name) LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(x.name)`,
    [rows.map((r) => quoteQualified(r.table_schema, r.table_name))],
  );
  const size = new Map(sizes.rows.map((r) => [r.name, { bytes: Number(r.bytes), batchable: r.kind === 'r' }]));
  return rows
    .map((r) => ({ schema: r.table_schema, table: r.table_name, ...(size.get(quoteQualified(r.table_schema, r.table_name)) ?? { bytes: 0, batchable: false }) }))
    .sort((a, b) => b.bytes - a.bytes);
}

/** Whether tables of the subscription wait for their initial copy and are due (see tablesToCopy). */
export async function copiesDue(subscriber: pg.Client, queue: string, consumer: string): Promise<boolean> {
  const { rows } = await subscriber.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state IN (${sqlStates('pending', 'copying')}) AND ${COPY_DUE_SQL}`,
    [queue, consumer],
  );
  return rows[0]!.n > 0;
}

/** Tables smaller than this (bytes on the provider) are copied in batches (copyTableBatch). */
export const BATCH_MAX_TABLE_BYTES = 8 * 2 ** 20;
/** A batch's loads commit together, at most this many tables or this long after the group's first. */
const GROUP_MAX_TABLES = 25;
const GROUP_MAX_MS = 1000;
/** A group's tables are checked, locked and emptied this many at a time (copy-batch-load.ts), then loaded together (forwardCopies). */
const CHUNK_TABLES = 25;
/** At most this many tables, and this many bytes, per batch. */
const BATCH_MAX_TABLES = 200;
const BATCH_MAX_BYTES = 64 * 2 ** 20;

export interface BatchOptions {
  queue: string;
  consumer: string;
  tables: Array<{ schema: string; table: string }>;
  onProgress?: (p: CopyProgress) => void;
  onCopied?: (schema: string, table: string, r: CopyResult) => void;
  onFailed?: (schema: string, table: string, err: unknown) => void;
  signal?: AbortSignal;
}

/**
 * Copies many small tables under ONE provider snapshot: one set of
 * connections, one generation, one pin (named after the first table; every
 * table's row names it, so it stays while any of them still merges), one
 * REPEATABLE READ transaction that locks every source table (ACCESS SHARE)
 * before its snapshot S. Each table is then loaded as copyTable loads one
 * (checks the row is still this attempt's, empties, COPYs, records S, T and
 * `catching-up`; nothing set aside for a small table), so each keeps its own
 * state row; the same S and T for all is what the merge rule needs, per
 * table. The loads share subscriber transactions of up to GROUP_MAX_TABLES
 * tables (a commit per small table cost more than its load). A table
 * superseded before its load is skipped; any other failure stops the batch:
 * that table goes back to `pending` with its error (backoff), the others
 * not committed yet to `pending` without one. Returns how many tables were
 * copied.
 */
export async function copyTableBatch(openProvider: OpenClient, openSubscriber: OpenClient, options: BatchOptions): Promise<number> {
  const { queue, consumer } = options;
  const started = new Date();
  const [admin, source, target, progress] = await openAll([openProvider, openProvider, openSubscriber, openSubscriber]);
  const all = [admin, source, target, progress];
  const abandon = () => void Promise.all([source, target].map(closeNow));
  options.signal?.addEventListener('abort', abandon, { once: true });
  let generation: string | undefined;
  let pin: string | undefined;
  let pinned = false;
  let copied = 0;
  const left = new Map(options.tables.map((t) => [quoteQualified(t.schema, t.table), t]));
  const fail = async (t: { schema: string; table: string }, err: unknown) => {
    left.delete(quoteQualified(t.schema, t.table));
    if (generation !== undefined && !(err instanceof CopySupersededError)) {
      await progress
        .query(
          `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('pending')}, state_since = now(), copy_pin = NULL, last_error = $5,
                  last_error_at = clock_timestamp(), copy_failures = copy_failures + 1
            WHERE ${WHERE} AND copy_generation = $6 AND state = ${sqlStates('copying')}`,
          [queue, consumer, t.schema, t.table, errorMessage(err).slice(0, 2000), generation],
        )
        .catch(() => undefined);
    }
    if (!options.signal?.aborted) options.onFailed?.(t.schema, t.table, err);
  };
  try {
    if (options.signal?.aborted) throw new Error('abandoned at shutdown');
    await Promise.all(all.map((c) => c.query(COPY_SESSION_SQL)));
    generation = (await progress.query<{ g: string }>("SELECT pg_catalog.nextval('pgconvey.copy_generation_seq')::text AS g")).rows[0]!.g;
    const first = options.tables[0]!;
    pin = copyPinName(consumer, generation, first.schema, first.table);
    const marked = await progress.query<{ schema: string; table: string }>(
      `UPDATE pgconvey.subscriber_table t SET state = ${sqlStates('copying')}, state_since = now(), copy_started_at = now(), copy_finished_at = NULL,
              rows_copied = 0, bytes_copied = 0, rows_expected = NULL, copy_snapshot = NULL, copy_tick = NULL, copy_generation = $5, copy_pin = $6
         FROM unnest($3::text[], $4::text[]) AS x(s, n)
        WHERE t.queue_name = $1 AND t.consumer_name = $2 AND t.table_schema = x.s AND t.table_name = x.n AND t.state IN (${sqlStates('pending', 'copying')})
        RETURNING t.table_schema AS schema, t.table_name AS table`,
      [queue, consumer, options.tables.map((t) => t.schema), options.tables.map((t) => t.table), generation, pin],
    );
    const isMarked = new Set(marked.rows.map((r) => quoteQualified(r.schema, r.table)));
    for (const [q, t] of [...left]) if (!isMarked.has(q)) await fail(t, new Error(`table ${q} is not waiting for a copy in subscription "${consumer}" of queue "${queue}" on the subscriber`));
    const captured = await admin.query<{ schema: string; table: string; columns: string[]; kind: string | null; expected: string | null }>(
      `SELECT t.table_schema AS schema, t.table_name AS table, t.columns, c.relkind::text AS kind, greatest(c.reltuples, 0)::bigint::text AS expected
         FROM pgconvey.captured_table t JOIN pgconvey.queue q USING (queue_id)
         LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t.table_schema) || '.' || pg_catalog.quote_ident(t.table_name))
        WHERE q.queue_name = $1 AND (t.table_schema, t.table_name) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
      [queue, [...left.values()].map((t) => t.schema), [...left.values()].map((t) => t.table)],
    );
    const info = new Map(captured.rows.map((r) => [quoteQualified(r.schema, r.table), r]));
    for (const [q, t] of [...left]) {
      const c = info.get(q);
      if (!c || c.kind === null) await fail(t, new Error(`table ${q} is not captured by queue "${queue}" on the provider`));
    }
    if (!left.size) return 0;

    const tick = await registerConsumer(admin, queue, pin);
    pinned = true;
    // Every source table locked before the snapshot is fixed (as copyTable does for one).
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`LOCK TABLE ${[...left.keys()].map((q) => `${info.get(q)!.kind === 'p' ? '' : 'ONLY '}${q}`).join(', ')} IN ACCESS SHARE MODE`);
    const snapshot = (await source.query<{ s: string }>('SELECT pg_catalog.txid_current_snapshot()::text AS s')).rows[0]!.s;
    // Cascades: a branch provider must have every table whole as of this snapshot (engine/branch.ts).
    const notReady = await branchTablesNotReady(source, queue, [...left.values()]);
    if (notReady.length) throw new ProviderTableNotReadyError(notReady.map((t) => quoteQualified(t.schema, t.table)));

    // Loads share a subscriber transaction, committed every few tables: a commit (a WAL flush) per 200-row
    // table cost more than its load. The checks, locks and emptying of a chunk of tables go in two round
    // trips, their COPYs in one statement each way (copy-stream.ts forwardCopies), their records in one at
    // the group's commit (copy-batch-load.ts). A
    // table is reported copied once its group has committed; a failure rolls the whole group back (its
    // tables wait again, without an error of theirs).
    let open = false;
    let groupStarted = 0;
    let loaded: Array<LoadedTable & { t: { schema: string; table: string }; q: string }> = [];
    const commitGroup = async () => {
      if (!open) return;
      const superseded = await recordGroupCopied(target, queue, consumer, generation!, { snapshot, tick }, loaded);
      if (superseded.length) throw Object.assign(new BatchTableError(new CopySupersededError(quoteQualified(superseded[0]!.schema, superseded[0]!.table))), { table: superseded[0]! });
      await target.query('COMMIT');
      open = false;
      for (const l of loaded) {
        left.delete(l.q);
        copied++;
        options.onProgress?.({ schema: l.t.schema, table: l.t.table, rows: l.rows, bytes: l.bytes, rowsExpected: l.rowsExpected, startedAt: started });
        options.onCopied?.(l.t.schema, l.t.table, { rows: l.rows, bytes: l.bytes, durationMs: Date.now() - started.getTime(), snapshot, tick, generation: generation!, ranges: 1 });
      }
      loaded = [];
    };
    const queued = [...left];
    while (queued.length && !options.signal?.aborted) {
      if (!open) {
        await target.query(BEGIN_LOAD_SQL);
        open = true;
        groupStarted = Date.now();
      }
      const chunk = queued.splice(0, Math.min(CHUNK_TABLES, GROUP_MAX_TABLES - loaded.length));
      let opened: Map<string, OpenedLoad>;
      try {
        opened = await openGroupLoads(target, queue, consumer, generation, chunk.map(([, t]) => t));
      } catch (err) {
        throw Object.assign(new BatchTableError(err), { table: chunk[0]![1] });
      }
      // Superseded (resynced or removed since it was marked): its row was only read; the group goes on.
      for (const [q] of chunk) if (!opened.has(q)) left.delete(q);
      const loads = chunk
        .filter(([q]) => opened.has(q))
        .map(([q, t]) => {
          const c = info.get(q)!;
          const columns = c.columns.map(quoteIdent).join(', ');
          const only = c.kind === 'p' ? '' : 'ONLY ';
          const item: CopyItem = { copyOut: `COPY (SELECT ${columns} FROM ${only}${q}) TO STDOUT`, copyIn: `COPY ${q} (${columns}) FROM STDIN`, tally: { rows: 0, bytes: 0 } };
          return { q, t, o: opened.get(q)!, item, rowsExpected: Number(c.expected) > 0 ? Number(c.expected) : null };
        });
      try {
        // The chunk's tables in one statement each way, their rows forwarded as they come (copy-stream.ts:
        // each table's three row counts must agree): two round trips for the chunk, not three per table.
        await forwardCopies(source, target, loads.map((l) => l.item));
      } catch (err) {
        const at = err instanceof ForwardCopiesError ? err.index : 0;
        throw Object.assign(new BatchTableError(err instanceof ForwardCopiesError ? err.inner : err), { table: loads[Math.min(at, loads.length - 1)]!.t });
      }
      for (const { q, t, o, item, rowsExpected } of loads) {
        try {
          await rebuildSetAside([target], o.indexes);
        } catch (err) {
          throw Object.assign(new BatchTableError(err), { table: t });
        }
        loaded.push({ t, q, schema: t.schema, table: t.table, rows: item.tally.rows, bytes: item.tally.bytes, rowsExpected });
      }
      if (loaded.length >= GROUP_MAX_TABLES || Date.now() - groupStarted >= GROUP_MAX_MS) await commitGroup();
    }
    await commitGroup();
    await source.query('COMMIT');
    if (copied) await forceTick(admin, queue).catch(() => undefined);
    return copied;
  } catch (err) {
    await Promise.all([source, target].map(closeNow));
    const cause = err instanceof BatchTableError ? err.inner : err;
    if (err instanceof BatchTableError && err.table) await fail(err.table, cause);
    // Failed before any load (a provider table gone, the pin): every table fails, with backoff.
    else if (!options.signal?.aborted) for (const t of [...left.values()]) await fail(t, cause);
    // The tables not loaded yet wait again (no failure of theirs: they are in the next round).
    if (generation !== undefined) {
      const rest = [...left.values()];
      await progress
        .query(
          `UPDATE pgconvey.subscriber_table t SET state = ${sqlStates('pending')}, state_since = now(), copy_pin = NULL
             FROM unnest($3::text[], $4::text[]) AS x(s, n)
            WHERE t.queue_name = $1 AND t.consumer_name = $2 AND t.table_schema = x.s AND t.table_name = x.n AND t.copy_generation = $5 AND t.state = ${sqlStates('copying')}`,
          [queue, consumer, rest.map((t) => t.schema), rest.map((t) => t.table), generation],
        )
        .catch(() => undefined);
    }
    if (options.signal?.aborted) throw new Error('copy batch abandoned at shutdown; its tables start again from the beginning next time');
    throw cause;
  } finally {
    if (pinned && pin && copied === 0) await unregisterConsumer(admin, queue, pin).catch(() => undefined);
    options.signal?.removeEventListener('abort', abandon);
    await Promise.all(all.map(closeNow));
  }
}

/** A failure of one table's load inside a batch (the batch stops; that table gets the error). */
class BatchTableError extends Error {
  table?: { schema: string; table: string };
  constructor(readonly inner: unknown) {
    super(errorMessage(inner));
    this.name = 'BatchTableError';
  }
}

/** Groups the small tables of `todo` into batches (by size on the provider), the large ones alone. */
export function copyWorkItems(todo: Array<{ schema: string; table: string; bytes: number; batchable: boolean }>): Array<Array<{ schema: string; table: string }>> {
  const items: Array<Array<{ schema: string; table: string }>> = [];
  let batch: Array<{ schema: string; table: string }> = [];
  let bytes = 0;
  for (const t of todo) {
    if (!t.batchable || t.bytes >= BATCH_MAX_TABLE_BYTES) {
      items.push([{ schema: t.schema, table: t.table }]);
      continue;
    }
    if (batch.length >= BATCH_MAX_TABLES || bytes + t.bytes > BATCH_MAX_BYTES) {
      items.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push({ schema: t.schema, table: t.table });
    bytes += t.bytes;
  }
  if (batch.length) items.push(batch);
  return items;
}

/**
 * Opens every connection or none: when one fails (a server down), those that
 * opened are closed again before the error is thrown, so retries leak nothing.
 */
export async function openAll(openers: OpenClient[]): Promise<pg.Client[]> {
  const results = await Promise.allSettled(openers.map((open) => open()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) {
    const clients = results.map((r) => (r as PromiseFulfilledResult<pg.Client>).value);
    // A copy's connection may die under it (a stream closed, a backend terminated): the failing query reports it,
    // and the client's own 'error' event must not become an uncaught exception.
    for (const c of clients) if (c.listenerCount('error') === 0) c.on('error', () => undefined);
    return clients;
  }
  await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.end().catch(() => undefined) : undefined)));
  throw failed.reason;
}

/**
 * Copies every table waiting for a copy, `parallel` work items at a time,
 * largest first: a large table alone (split into `ranges` streams when it is
 * large enough), small tables in batches under one snapshot (copyTableBatch;
 * `batch: false` copies each alone). Returns when all are copied; the first
 * failure is thrown after the others finish (each failure is also reported to
 * `onFailed` as it happens).
 */
export async function copyPendingTables(
  openProvider: OpenClient,
  openSubscriber: OpenClient,
  queue: string,
  consumer: string,
  options: {
    parallel?: number;
    /** Range streams of one split copy (default DEFAULT_COPY_RANGES; 1: no split). */
    ranges?: number;
    splitMinBytes?: number;
    /** Small tables copied in batches (default true). */
    batch?: boolean;
    onProgress?: (p: CopyProgress) => void;
    onCopied?: (schema: string, table: string, r: CopyResult) => void;
    /** Called for every failed copy (the table is retried later, with backoff). */
    onFailed?: (schema: string, table: string, err: unknown) => void;
    signal?: AbortSignal;
  } = {},
): Promise<number> {
  const [p, s] = await openAll([openProvider, openSubscriber]);
  let todo: Array<Array<{ schema: string; table: string }>>;
  try {
    const tables = await tablesToCopy(p, s, queue, consumer);
    todo = copyWorkItems(options.batch === false ? tables.map((t) => ({ ...t, batchable: false })) : tables);
  } finally {
    await Promise.all([p.end(), s.end()]);
  }
  let failure: unknown;
  let copied = 0;
  const lanes = Array.from({ length: Math.max(1, options.parallel ?? 2) }, async () => {
    for (let next = todo.shift(); next && !options.signal?.aborted; next = todo.shift()) {
      if (next.length > 1) {
        try {
          // Not `copied += await …`: that reads `copied` before the await, and the lanes run at the same time.
          const n = await copyTableBatch(openProvider, openSubscriber, { queue, consumer, tables: next, onProgress: options.onProgress, onCopied: options.onCopied, onFailed: options.onFailed, signal: options.signal });
          copied += n;
        } catch (err) {
          failure ??= err;
        }
        continue;
      }
      const one = next[0]!;
      try {
        const r = await copyTable(openProvider, openSubscriber, {
          queue,
          consumer,
          ...one,
          ranges: options.ranges,
          splitMinBytes: options.splitMinBytes,
          onProgress: options.onProgress,
          signal: options.signal,
        });
        copied++;
        options.onCopied?.(one.schema, one.table, r);
      } catch (err) {
        if (!options.signal?.aborted) options.onFailed?.(one.schema, one.table, err);
        failure ??= err;
      }
    }
  });
  await Promise.all(lanes);
  if (failure) throw failure;
  return copied;
}
