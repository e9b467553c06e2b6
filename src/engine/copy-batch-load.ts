/**
 * The subscriber side of a small-table batch's group (copier.ts,
 * copyTableBatch): the statements copyTable runs per table, run once for the
 * group's tables inside its load transaction — which rows are still this
 * attempt's (`copying` under the generation), with any indexes an earlier
 * attempt set aside; one LOCK of every table (EXCLUSIVE, as emptyTable) and
 * one query naming those that hold rows, which are then emptied (TRUNCATE, or
 * DELETE when foreign keys point at them); and after the loads one UPDATE
 * recording S, T and `catching-up` for every table loaded, only where the row
 * is still this attempt's. The COPYs themselves go in one statement each way
 * for the chunk (copy-stream.ts forwardCopies).
 */
import type pg from 'pg';
import { quoteQualified } from '../kernel/index.js';
import type { SetAsideIndex } from './set-aside-indexes.js';
import { sqlStates } from './table-state.js';

export interface GroupTable {
  schema: string;
  table: string;
}

export interface OpenedLoad {
  /** Partitioned on the subscriber (loaded through the parent). */
  partitioned: boolean;
  /** Indexes an earlier attempt set aside (on record), to rebuild after the load. */
  indexes: SetAsideIndex[];
}

/**
 * Inside the group's load transaction: the tables whose row is still this attempt's (the others are
 * superseded: not in the map), each locked and emptied.
 */
export async function openGroupLoads(target: pg.Client, queue: string, consumer: string, generation: string, tables: readonly GroupTable[]): Promise<Map<string, OpenedLoad>> {
  const mine = await target.query<{ schema: string; table: string; copy_indexes: SetAsideIndex[] | null; partitioned: boolean | null }>(
    `SELECT t.table_schema AS schema, t.table_name AS table, t.copy_indexes,
            (SELECT c.relkind = 'p' FROM pg_catalog.pg_class c
              WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t.table_schema) || '.' || pg_catalog.quote_ident(t.table_name))) AS partitioned
       FROM pgconvey.subscriber_table t JOIN unnest($3::text[], $4::text[]) AS x(s, n) ON t.table_schema = x.s AND t.table_name = x.n
      WHERE t.queue_name = $1 AND t.consumer_name = $2 AND t.state = ${sqlStates('copying')} AND t.copy_generation = $5`,
    [queue, consumer, tables.map((t) => t.schema), tables.map((t) => t.table), generation],
  );
  const opened = new Map<string, OpenedLoad>();
  for (const r of mine.rows) opened.set(quoteQualified(r.schema, r.table), { partitioned: r.partitioned === true, indexes: r.copy_indexes ?? [] });
  if (!opened.size) return opened;
  // In the group's order (the batch's), as emptyTable locks one: writers wait; readers see the old rows until commit.
  const names = tables.map((t) => quoteQualified(t.schema, t.table)).filter((q) => opened.has(q));
  const target_ = (q: string) => `${opened.get(q)!.partitioned ? '' : 'ONLY '}${q}`;
  const results = (await target.query(
    `LOCK TABLE ${names.map(target_).join(', ')} IN EXCLUSIVE MODE;
     SELECT x.q FROM (VALUES ${names.map((q, i) => `(${i}, EXISTS (SELECT 1 FROM ${target_(q)}))`).join(', ')}) AS x(q, has) WHERE x.has`,
  )) as unknown as pg.QueryResult<{ q: number }>[];
  for (const { q: i } of results[1]!.rows) {
    const q = names[i]!;
    await target.query('SAVEPOINT pgconvey_empty');
    try {
      await target.query(`TRUNCATE ${target_(q)}`);
    } catch {
      await target.query('ROLLBACK TO SAVEPOINT pgconvey_empty');
      await target.query(`DELETE FROM ${target_(q)}`);
    }
  }
  return opened;
}

export interface LoadedTable extends GroupTable {
  rows: number;
  bytes: number;
  rowsExpected: number | null;
}

/**
 * Records the group's loads — S, T, `catching-up` — where each row is still this attempt's; returns the
 * tables whose row no longer is (superseded since the group opened: the caller rolls the group back).
 */
export async function recordGroupCopied(target: pg.Client, queue: string, consumer: string, generation: string, copy: { snapshot: string; tick: string }, loaded: readonly LoadedTable[]): Promise<GroupTable[]> {
  if (!loaded.length) return [];
  const recorded = await target.query<{ schema: string; table: string }>(
    `UPDATE pgconvey.subscriber_table t SET state = ${sqlStates('catching-up')}, state_since = now(), copy_snapshot = $3, copy_tick = $4,
            rows_copied = x.r, bytes_copied = x.b, rows_expected = x.e, copy_finished_at = clock_timestamp(),
            last_error = NULL, last_error_at = NULL, copy_failures = 0, copy_indexes = NULL
       FROM unnest($5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[]) AS x(s, n, r, b, e)
      WHERE t.queue_name = $1 AND t.consumer_name = $2 AND t.table_schema = x.s AND t.table_name = x.n
        AND t.copy_generation = $10 AND t.state = ${sqlStates('copying')}
      RETURNING t.table_schema AS schema, t.table_name AS table`,
    [queue, consumer, copy.snapshot, copy.tick, loaded.map((l) => l.schema), loaded.map((l) => l.table), loaded.map((l) => l.rows), loaded.map((l) => l.bytes), loaded.map((l) => l.rowsExpected), generation],
  );
  const done = new Set(recorded.rows.map((r) => quoteQualified(r.schema, r.table)));
  return loaded.filter((l) => !done.has(quoteQualified(l.schema, l.table)));
}
