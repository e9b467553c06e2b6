/**
 * The initial copy of a table, merged with the queue by snapshot. The capture
 * trigger exists before the copy starts. Each attempt takes a new generation
 * and marks the table `copying` under it; the rows stream (pg-copy-streams,
 * never buffered whole) into the subscriber in ONE transaction that first
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
 * failure count and time (retried with backoff), and removes its pin. Nothing
 * half-loaded is ever visible.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type pg from 'pg';
import { copyPinName, quoteIdent, quoteQualified, stalePins, type PinHolder } from '../kernel/index.js';
import { forceTick, registerConsumer, unregisterConsumer } from './api.js';
import { EXACT_SESSION_SQL, NO_TIMEOUTS_SQL } from './session.js';
import { isCopyInProgress, sqlStates, tableStateOf, type TableState } from './table-state.js';

export type OpenClient = () => Promise<pg.Client>;

export interface CopyProgress {
  schema: string;
  table: string;
  rows: number;
  bytes: number;
  rowsExpected: number | null;
  startedAt: Date;
}

export interface CopyResult {
  rows: number;
  bytes: number;
  durationMs: number;
  snapshot: string;
  tick: string;
  generation: string;
}

export interface CopyOptions {
  queue: string;
  consumer: string;
  schema: string;
  table: string;
  /** Called about every `progressEveryMs` (and at the end) with rows and bytes so far. */
  onProgress?: (p: CopyProgress) => void;
  progressEveryMs?: number;
  /** Abandons the copy (rolled back; the table stays waiting and is copied again next time). */
  signal?: AbortSignal;
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

/** Counts bytes and rows (COPY text rows end with a newline; newlines inside values are escaped). */
class CopyCounter extends Transform {
  bytes = 0;
  rows = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.rows++;
    done(null, chunk);
  }
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

/**
 * Copies one table from the provider into the subscriber and leaves it
 * `catching-up`. The table must be registered on the subscriber
 * (subscriber_table) and captured on the provider.
 */
export async function copyTable(openProvider: OpenClient, openSubscriber: OpenClient, options: CopyOptions): Promise<CopyResult> {
  const { queue, consumer, schema, table } = options;
  const qualified = quoteQualified(schema, table);
  const key = [queue, consumer, schema, table];
  const where = 'queue_name = $1 AND consumer_name = $2 AND table_schema = $3 AND table_name = $4';
  const started = new Date();
  const [admin, source, target, progress] = await openAll([openProvider, openProvider, openSubscriber, openSubscriber]);
  const all = [admin, source, target, progress];
  // Abandoning closes the connections: whatever the copy waits on (a lock, the stream) fails at once,
  // and the servers roll its transactions back.
  const abandon = () => void Promise.all([source, target].map(closeNow));
  options.signal?.addEventListener('abort', abandon, { once: true });
  let timer: NodeJS.Timeout | undefined;
  let generation: string | undefined;
  let pin: string | undefined;
  let pinned = false;
  try {
    if (options.signal?.aborted) throw new Error('abandoned at shutdown');
    await Promise.all(all.map((c) => c.query(COPY_SESSION_SQL)));
    generation = (await progress.query<{ g: string }>("SELECT pg_catalog.nextval('pgconvey.copy_generation_seq')::text AS g")).rows[0]!.g;
    pin = copyPinName(consumer, generation, schema, table);
    // The pin's name is on record before the pin exists: a worker sweeping stale pins keeps it.
    const marked = await progress.query(
      `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('copying')}, state_since = now(), copy_started_at = now(), copy_finished_at = NULL,
              rows_copied = 0, bytes_copied = 0, rows_expected = NULL, copy_snapshot = NULL, copy_tick = NULL,
              copy_generation = $5, copy_pin = $6
        WHERE ${where} AND state IN (${sqlStates('pending', 'copying')})`,
      [...key, generation, pin],
    );
    if (marked.rowCount === 0) throw new Error(`table ${qualified} is not waiting for a copy in subscription "${consumer}" of queue "${queue}" on the subscriber`);

    const captured = await admin.query<{ columns: string[] }>(
      `SELECT t.columns FROM pgconvey.captured_table t JOIN pgconvey.queue q USING (queue_id)
        WHERE q.queue_name = $1 AND t.table_schema = $2 AND t.table_name = $3`,
      [queue, schema, table],
    );
    if (!captured.rows[0]) throw new Error(`table ${qualified} is not captured by queue "${queue}" on the provider`);
    const columns = captured.rows[0].columns.map(quoteIdent).join(', ');

    // The subscriber first: everything here may wait (for a batch holding the row, for readers of the table).
    await target.query('BEGIN');
    await target.query('SET LOCAL session_replication_role = replica');
    // Still this attempt's? (No batch applies a `copying` table; a resync since would make it another's.)
    const mine = await target.query(`SELECT 1 FROM pgconvey.subscriber_table WHERE ${where} AND state = ${sqlStates('copying')} AND copy_generation = $5`, [...key, generation]);
    if (mine.rowCount === 0) throw new CopySupersededError(qualified);
    // A partitioned table is loaded through the parent (PostgreSQL routes each row to its partition) and emptied
    // with its partitions: no ONLY. Its indexes stay (pg_get_indexdef of a partitioned index says ON ONLY).
    const partitioned = async (c: pg.Client) =>
      (await c.query<{ p: boolean }>("SELECT c.relkind = 'p' AS p FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)", [qualified])).rows[0]?.p === true;
    const targetPartitioned = await partitioned(target);
    const targetOnly = targetPartitioned ? '' : 'ONLY ';
    // Secondary indexes (not behind a constraint, not unique) are rebuilt after the load.
    const indexes = await target.query<{ schema: string; name: string; def: string }>(
      `SELECT n.nspname AS schema, c.relname AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS def
         FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE i.indrelid = pg_catalog.to_regclass($1) AND NOT i.indisunique AND NOT $2
          -- Not a partition's index attached to its parent's: PostgreSQL refuses to drop it alone (a rebuilt one would be detached).
          AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)`,
      [qualified, targetPartitioned],
    );
    for (const ix of indexes.rows) await target.query(`DROP INDEX ${quoteQualified(ix.schema, ix.name)}`);
    // Empty the table: TRUNCATE, or DELETE when foreign keys point at it (their checks are off in replica mode).
    await target.query('SAVEPOINT pgconvey_empty');
    try {
      await target.query(`TRUNCATE ${targetOnly}${qualified}`);
    } catch {
      await target.query('ROLLBACK TO SAVEPOINT pgconvey_empty');
      await target.query(`DELETE FROM ${targetOnly}${qualified}`);
    }

    // Pin the queue at the latest tick T before the copy's snapshot is taken.
    const tick = await registerConsumer(admin, queue, pin);
    pinned = true;
    // The source table is locked before the snapshot is fixed (LOCK takes no snapshot): an ALTER TABLE
    // that rewrites it has committed before S, or waits until the COPY is done.
    // A partitioned source: all its rows (every partition's), locked with its partitions (LOCK recurses without ONLY).
    const sourcePartitioned = await partitioned(source);
    const sourceOnly = sourcePartitioned ? '' : 'ONLY ';
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`LOCK TABLE ${sourceOnly}${qualified} IN ACCESS SHARE MODE`);
    const info = await source.query<{ snapshot: string; expected: string | null }>(
      `SELECT pg_catalog.txid_current_snapshot()::text AS snapshot,
              (SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_catalog.pg_class c
                WHERE c.oid = pg_catalog.to_regclass($1) OR ($2 AND c.relkind = 'r' AND c.oid IN (SELECT pgconvey.partition_tree(pg_catalog.to_regclass($1))))) AS expected`,
      [qualified, sourcePartitioned],
    );
    const snapshot = info.rows[0]!.snapshot;
    const rowsExpected = info.rows[0]!.expected === null || Number(info.rows[0]!.expected) <= 0 ? null : Number(info.rows[0]!.expected);

    const counter = new CopyCounter();
    let reporting: Promise<unknown> | undefined;
    const report = () => {
      options.onProgress?.({ schema, table, rows: counter.rows, bytes: counter.bytes, rowsExpected, startedAt: started });
      if (reporting) return; // the previous update is still on its way
      reporting = progress
        .query(`UPDATE pgconvey.subscriber_table SET rows_copied = $5, bytes_copied = $6, rows_expected = $7 WHERE ${where} AND copy_generation = $8`, [
          ...key,
          counter.rows,
          counter.bytes,
          rowsExpected,
          generation,
        ])
        .catch(() => undefined)
        .finally(() => (reporting = undefined));
    };
    report(); // the expected row count is on record from the first row on
    timer = setInterval(report, options.progressEveryMs ?? 1000);
    await pipeline(
      source.query(copyTo(`COPY (SELECT ${columns} FROM ${sourceOnly}${qualified}) TO STDOUT`)),
      counter,
      target.query(copyFrom(`COPY ${qualified} (${columns}) FROM STDIN`)),
    );
    clearInterval(timer);
    timer = undefined;
    // S is recorded: the provider's transaction (and its lock) can end before the indexes are rebuilt.
    await source.query('COMMIT');
    await reporting;
    for (const ix of indexes.rows) await target.query(ix.def);
    // Recorded only if the row is still this attempt's (a resync during the load makes this copy void).
    const recorded = await target.query(
      `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('catching-up')}, state_since = now(), copy_snapshot = $5, copy_tick = $6,
              rows_copied = $7, bytes_copied = $8, rows_expected = $9, copy_finished_at = clock_timestamp(),
              last_error = NULL, last_error_at = NULL, copy_failures = 0
        WHERE ${where} AND copy_generation = $10`,
      [...key, snapshot, tick, counter.rows, counter.bytes, rowsExpected, generation],
    );
    if (recorded.rowCount === 0) throw new CopySupersededError(qualified);
    await target.query('COMMIT');
    // A tick after the copy lets the worker finish merging now rather than at the next idle tick.
    await forceTick(admin, queue).catch(() => undefined);
    options.onProgress?.({ schema, table, rows: counter.rows, bytes: counter.bytes, rowsExpected, startedAt: started });
    return { rows: counter.rows, bytes: counter.bytes, durationMs: Date.now() - started.getTime(), snapshot, tick, generation };
  } catch (err) {
    if (timer) clearInterval(timer);
    // The load's transactions may be stuck mid-COPY: close them, and the servers roll back.
    await Promise.all([source, target].map(closeNow));
    if (pinned && pin) await unregisterConsumer(admin, queue, pin).catch(() => undefined);
    if (options.signal?.aborted) throw new Error(`copy of ${qualified} abandoned at shutdown; it starts again from the beginning next time`);
    if (generation !== undefined && !(err instanceof CopySupersededError)) {
      await progress
        .query(
          `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('pending')}, state_since = now(), copy_pin = NULL, last_error = $5,
                  last_error_at = clock_timestamp(), copy_failures = copy_failures + 1
            WHERE ${where} AND copy_generation = $6 AND state = ${sqlStates('copying')}`,
          [...key, errorMessage(err).slice(0, 2000), generation],
        )
        .catch(() => undefined);
    }
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abandon);
    await Promise.all(all.map(closeNow));
  }
}

function errorMessage(err: unknown): string {
  const e = err as { message?: string; code?: string };
  return `${e.message ?? String(err)}${e.code && /^[0-9A-Z]{5}$/.test(e.code) ? ` (SQLSTATE ${e.code})` : ''}`;
}

/**
 * Removes the copy pins of a subscription that no copy needs any more: the
 * pin of a table that is `ok`, `pending` or no longer subscribed, of a copy
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
    isCopyInProgress,
  );
  for (const p of stale) await unregisterConsumer(provider, queue, p);
  return stale;
}

/**
 * Backoff after a failed copy: 2^failures seconds, at most 5 minutes. A table
 * whose last attempt failed more recently is not copied yet.
 */
const COPY_DUE_SQL = `(last_error_at IS NULL OR last_error_at <= clock_timestamp() - least(300, power(2, least(copy_failures, 9))) * interval '1 second')`;

/** Tables of a subscription waiting for a copy (`pending`, or `copying` after a crash) and due, largest first. */
export async function tablesToCopy(provider: pg.Client, subscriber: pg.Client, queue: string, consumer: string): Promise<Array<{ schema: string; table: string }>> {
  const { rows } = await subscriber.query<{ table_schema: string; table_name: string }>(
    `SELECT table_schema, table_name FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state IN (${sqlStates('pending', 'copying')}) AND ${COPY_DUE_SQL}`,
    [queue, consumer],
  );
  if (!rows.length) return [];
  const sizes = await provider.query<{ name: string; bytes: string }>(
    `SELECT x.name, coalesce(pg_catalog.pg_relation_size(pg_catalog.to_regclass(x.name)), 0) AS bytes FROM unnest($1::text[]) AS x(name)`,
    [rows.map((r) => quoteQualified(r.table_schema, r.table_name))],
  );
  const size = new Map(sizes.rows.map((r) => [r.name, Number(r.bytes)]));
  return rows
    .map((r) => ({ schema: r.table_schema, table: r.table_name, bytes: size.get(quoteQualified(r.table_schema, r.table_name)) ?? 0 }))
    .sort((a, b) => b.bytes - a.bytes)
    .map(({ schema, table }) => ({ schema, table }));
}

/** Whether tables of the subscription wait for their initial copy and are due (see tablesToCopy). */
export async function copiesDue(subscriber: pg.Client, queue: string, consumer: string): Promise<boolean> {
  const { rows } = await subscriber.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state IN (${sqlStates('pending', 'copying')}) AND ${COPY_DUE_SQL}`,
    [queue, consumer],
  );
  return rows[0]!.n > 0;
}

/**
 * Opens every connection or none: when one fails (a server down), those that
 * opened are closed again before the error is thrown, so retries leak nothing.
 */
export async function openAll(openers: OpenClient[]): Promise<pg.Client[]> {
  const results = await Promise.allSettled(openers.map((open) => open()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return results.map((r) => (r as PromiseFulfilledResult<pg.Client>).value);
  await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.end().catch(() => undefined) : undefined)));
  throw failed.reason;
}

/**
 * Copies every table waiting for a copy, `parallel` at a time, largest first.
 * Returns when all are copied; the first failure is thrown after the others finish
 * (each failure is also reported to `onFailed` as it happens).
 */
export async function copyPendingTables(
  openProvider: OpenClient,
  openSubscriber: OpenClient,
  queue: string,
  consumer: string,
  options: {
    parallel?: number;
    onProgress?: (p: CopyProgress) => void;
    onCopied?: (schema: string, table: string, r: CopyResult) => void;
    /** Called for every failed copy (the table is retried later, with backoff). */
    onFailed?: (schema: string, table: string, err: unknown) => void;
    signal?: AbortSignal;
  } = {},
): Promise<number> {
  const [p, s] = await openAll([openProvider, openSubscriber]);
  let todo: Array<{ schema: string; table: string }>;
  try {
    todo = await tablesToCopy(p, s, queue, consumer);
  } finally {
    await Promise.all([p.end(), s.end()]);
  }
  let failure: unknown;
  let copied = 0;
  const lanes = Array.from({ length: Math.max(1, options.parallel ?? 2) }, async () => {
    for (let next = todo.shift(); next && !options.signal?.aborted; next = todo.shift()) {
      try {
        const r = await copyTable(openProvider, openSubscriber, { queue, consumer, ...next, onProgress: options.onProgress, signal: options.signal });
        copied++;
        options.onCopied?.(next.schema, next.table, r);
      } catch (err) {
        if (!options.signal?.aborted) options.onFailed?.(next.schema, next.table, err);
        failure ??= err;
      }
    }
  });
  await Promise.all(lanes);
  if (failure) throw failure;
  return copied;
}
