/**
 * The initial copy of a table, merged with the queue by snapshot. The capture
 * trigger exists before the copy starts. A pin consumer on the provider holds
 * the queue's events from the copy's tick T on; the provider is read with
 * COPY inside a REPEATABLE READ transaction whose snapshot S is recorded; the
 * rows stream (pg-copy-streams, never buffered whole) into the subscriber in
 * ONE transaction that empties the table first, sets aside its secondary
 * indexes and rebuilds them after the load, and records S and T with the
 * table's new state `catching-up`. From then on the apply worker applies the
 * table's events only for transactions not visible in S (replaying the range
 * from T to its own position once if it is already past T), and marks the
 * table `ok` once no later batch can hold a transaction visible in S.
 *
 * A copy killed at any point leaves the table in `copying`: it starts again
 * from scratch, and nothing half-loaded is ever visible.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sqlFormat as format } from '../kernel/index.js';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type pg from 'pg';
import { forceTick, registerConsumer, unregisterConsumer } from './api.js';

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

/** Session settings of both ends: COPY's text form is then unambiguous. */
const COPY_SESSION_SQL = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3";

/** The provider consumer that holds the queue's events for a copy until the worker has merged it. */
export function copyPinName(consumer: string, schema: string, table: string): string {
  return `copy:${consumer}:${schema}.${table}`;
}

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
 * Copies one table from the provider into the subscriber and leaves it
 * `catching-up`. The table must be registered on the subscriber
 * (subscriber_table) and captured on the provider.
 */
export async function copyTable(openProvider: OpenClient, openSubscriber: OpenClient, options: CopyOptions): Promise<CopyResult> {
  const { queue, consumer, schema, table } = options;
  const qualified = format('%I.%I', schema, table);
  const where = format('queue_name = %L AND consumer_name = %L AND table_schema = %L AND table_name = %L', queue, consumer, schema, table);
  const started = new Date();
  const [admin, source, target, progress] = await openAll([openProvider, openProvider, openSubscriber, openSubscriber]);
  // Abandoning closes the connections: whatever the copy waits on (a lock, the stream) fails at once,
  // and the servers roll its transactions back.
  const abandon = () => void Promise.all([admin, source, target, progress].map((c) => c.end().catch(() => undefined)));
  options.signal?.addEventListener('abort', abandon, { once: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    if (options.signal?.aborted) throw new Error('abandoned at shutdown');
    const marked = await progress.query(
      `UPDATE pgconvey.subscriber_table SET state = 'copying', state_since = now(), copy_started_at = now(), copy_finished_at = NULL,
              rows_copied = 0, bytes_copied = 0, copy_snapshot = NULL, copy_tick = NULL, last_error = NULL WHERE ${where}`,
    );
    if (marked.rowCount === 0) throw new Error(`table ${qualified} is not registered for subscription "${consumer}" of queue "${queue}" on the subscriber`);

    const captured = await admin.query<{ columns: string[] }>(
      `SELECT t.columns FROM pgconvey.captured_table t JOIN pgconvey.queue q USING (queue_id)
        WHERE q.queue_name = $1 AND t.table_schema = $2 AND t.table_name = $3`,
      [queue, schema, table],
    );
    if (!captured.rows[0]) throw new Error(`table ${qualified} is not captured by queue "${queue}" on the provider`);
    const columns = captured.rows[0].columns.map((c) => format('%I', c)).join(', ');

    // Pin the queue at the latest tick T before the copy's snapshot is taken.
    const pin = copyPinName(consumer, schema, table);
    await unregisterConsumer(admin, queue, pin);
    const tick = await registerConsumer(admin, queue, pin);

    await source.query(COPY_SESSION_SQL);
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const info = await source.query<{ snapshot: string; expected: string | null }>(
      'SELECT txid_current_snapshot()::text AS snapshot, (SELECT greatest(reltuples, 0)::bigint FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)) AS expected',
      [qualified],
    );
    const snapshot = info.rows[0]!.snapshot;
    const rowsExpected = info.rows[0]!.expected === null ? null : Number(info.rows[0]!.expected);

    await target.query(COPY_SESSION_SQL);
    await target.query('BEGIN');
    await target.query('SET LOCAL session_replication_role = replica');
    // Secondary indexes (not behind a constraint, not unique) are rebuilt after the load.
    const indexes = await target.query<{ name: string; def: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS def
         FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE i.indrelid = pg_catalog.to_regclass($1) AND NOT i.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)`,
      [qualified],
    );
    for (const ix of indexes.rows) await target.query(`DROP INDEX ${ix.name}`);
    // Empty the table: TRUNCATE, or DELETE when foreign keys point at it (their checks are off in replica mode).
    await target.query('SAVEPOINT pgconvey_empty');
    try {
      await target.query(`TRUNCATE ONLY ${qualified}`);
    } catch {
      await target.query('ROLLBACK TO SAVEPOINT pgconvey_empty');
      await target.query(`DELETE FROM ONLY ${qualified}`);
    }

    const counter = new CopyCounter();
    let reporting: Promise<unknown> | undefined;
    const report = () => {
      options.onProgress?.({ schema, table, rows: counter.rows, bytes: counter.bytes, rowsExpected, startedAt: started });
      if (reporting) return; // the previous update is still on its way
      reporting = progress
        .query(`UPDATE pgconvey.subscriber_table SET rows_copied = $1, bytes_copied = $2, rows_expected = $3 WHERE ${where}`, [counter.rows, counter.bytes, rowsExpected])
        .catch(() => undefined)
        .finally(() => (reporting = undefined));
    };
    timer = setInterval(report, options.progressEveryMs ?? 1000);
    await pipeline(
      source.query(copyTo(`COPY (SELECT ${columns} FROM ONLY ${qualified}) TO STDOUT`)),
      counter,
      target.query(copyFrom(`COPY ${qualified} (${columns}) FROM STDIN`)),
    );
    clearInterval(timer);
    timer = undefined;
    await reporting;
    for (const ix of indexes.rows) await target.query(ix.def);
    await target.query(
      `UPDATE pgconvey.subscriber_table SET state = 'catching-up', state_since = now(), copy_snapshot = $1, copy_tick = $2,
              rows_copied = $3, bytes_copied = $4, rows_expected = $5, copy_finished_at = clock_timestamp() WHERE ${where}`,
      [snapshot, tick, counter.rows, counter.bytes, rowsExpected],
    );
    await target.query('COMMIT');
    await source.query('COMMIT');
    // A tick after the copy lets the worker finish merging now rather than at the next idle tick.
    await forceTick(admin, queue);
    options.onProgress?.({ schema, table, rows: counter.rows, bytes: counter.bytes, rowsExpected, startedAt: started });
    return { rows: counter.rows, bytes: counter.bytes, durationMs: Date.now() - started.getTime(), snapshot, tick };
  } catch (err) {
    if (timer) clearInterval(timer);
    await target.query('ROLLBACK').catch(() => undefined);
    await source.query('ROLLBACK').catch(() => undefined);
    if (options.signal?.aborted) throw new Error(`copy of ${qualified} abandoned at shutdown; it starts again from the beginning next time`);
    await progress.query(`UPDATE pgconvey.subscriber_table SET last_error = $1 WHERE ${where}`, [String((err as Error).message ?? err)]).catch(() => undefined);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abandon);
    await Promise.all([admin, source, target, progress].map((c) => c.end().catch(() => undefined)));
  }
}

/** Tables of a subscription waiting for a copy (`pending`, or `copying` after a crash), largest first. */
export async function tablesToCopy(provider: pg.Client, subscriber: pg.Client, queue: string, consumer: string): Promise<Array<{ schema: string; table: string }>> {
  const { rows } = await subscriber.query<{ table_schema: string; table_name: string }>(
    "SELECT table_schema, table_name FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state IN ('pending', 'copying')",
    [queue, consumer],
  );
  if (!rows.length) return [];
  const sizes = await provider.query<{ name: string; bytes: string }>(
    `SELECT x.name, coalesce(pg_catalog.pg_relation_size(pg_catalog.to_regclass(x.name)), 0) AS bytes FROM unnest($1::text[]) AS x(name)`,
    [rows.map((r) => format('%I.%I', r.table_schema, r.table_name))],
  );
  const size = new Map(sizes.rows.map((r) => [r.name, Number(r.bytes)]));
  return rows
    .map((r) => ({ schema: r.table_schema, table: r.table_name, bytes: size.get(format('%I.%I', r.table_schema, r.table_name)) ?? 0 }))
    .sort((a, b) => b.bytes - a.bytes)
    .map(({ schema, table }) => ({ schema, table }));
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
 * Returns when all are copied; the first failure is thrown after the others finish.
 */
export async function copyPendingTables(
  openProvider: OpenClient,
  openSubscriber: OpenClient,
  queue: string,
  consumer: string,
  options: { parallel?: number; onProgress?: (p: CopyProgress) => void; onCopied?: (schema: string, table: string, r: CopyResult) => void; signal?: AbortSignal } = {},
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
        failure ??= err;
      }
    }
  });
  await Promise.all(lanes);
  if (failure) throw failure;
  return copied;
}
