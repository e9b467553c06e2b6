/**
 * Cascades: what a branch does with each batch it applies. Inside the
 * subscriber's batch transaction (the one that also stores its position) the
 * branch re-queues every event of the provider's batch — all tables, whatever
 * the branch itself applies — into its own queue verbatim (same ev_id, table
 * id, shape id, key and row text; ev_txid becomes this transaction's), after
 * mirroring the provider's captured_table, table_shape and captured_sequence
 * rows with the provider's ids, and inserts the tick of the batch's end tick
 * id (`pgconvey.branch_tick`). So the branch's subscribers get exactly the
 * provider's batches, and a crash anywhere repeats the whole batch or
 * nothing. Events stream provider → branch by COPY (text format, exact).
 * A subscriber without a branch queue here (a leaf) re-queues nothing.
 */
import type pg from 'pg';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { PgconveyError, sqlFormat } from '../kernel/index.js';
import { configureQueue, type QueueSettings } from './api.js';
import type { BatchInfo } from './batch-reader.js';
import { lateTransactions, parseSnapshot } from './snapshot.js';

/** The branch's queue is not at the start of the batch it re-queues: code `branch_out_of_step`. */
export class BranchOutOfStepError extends PgconveyError {
  constructor(message: string) {
    super('branch_out_of_step', message, "the branch queue and the branch's position went apart (changed behind pgconvey's back); re-create the branch (docs/operations.md, \"Cascades\")");
  }
}

/** A provider's table or shape id is taken here by another queue: code `branch_id_conflict`. */
export class BranchIdConflictError extends PgconveyError {
  constructor(message: string) {
    super('branch_id_conflict', message, 'a branch mirrors its provider\'s table and shape ids; a database that is a branch must not capture tables for another queue of its own');
  }
}

/** The SELECT of every event of a batch on the provider, with the columns a branch event table is loaded with. */
export function requeueEventsSql(batch: BatchInfo): string {
  const start = parseSnapshot(batch.startSnapshot);
  const end = parseSnapshot(batch.endSnapshot);
  const late = lateTransactions(start, end).map(String);
  const columns = 'ev_id, ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data';
  const parts: string[] = [];
  for (let n = 0; n < 3; n++) {
    const table = sqlFormat('pgconvey.%I', `event_${batch.queueId}_${n}`);
    parts.push(
      sqlFormat(`SELECT ${columns} FROM %s WHERE ev_txid >= %L AND ev_txid < %L AND pg_catalog.txid_visible_in_snapshot(ev_txid, %L)`, table, String(start.xmax), String(end.xmax), batch.endSnapshot),
    );
    if (late.length) parts.push(sqlFormat(`SELECT ${columns} FROM %s WHERE ev_txid IN (%s)`, table, late));
  }
  // Events queued before engine migration 0006 (JSON rows) travel as row text, as the reader gives them.
  const legacy = (field: string) => `(pgconvey.legacy_event(e.ev_table, e.ev_op, e.ev_key, e.ev_data)).${field}`;
  const isLegacy = "e.ev_shape IS NULL AND e.ev_op <> 'T'";
  return (
    `SELECT e.ev_id, e.ev_table, e.ev_op, CASE WHEN ${isLegacy} THEN ${legacy('shape')} ELSE e.ev_shape END, ` +
    `CASE WHEN ${isLegacy} THEN ${legacy('key')} ELSE e.ev_key END, CASE WHEN ${isLegacy} THEN ${legacy('data')} ELSE e.ev_data END ` +
    `FROM (${parts.join(' UNION ALL ')}) e`
  );
}

export class BranchRequeue {
  /** What was mirrored last (JSON texts), so unchanged rows are not sent every batch. */
  private mirrored: { tables: string; sequences: string; shapes: Set<number> } = { tables: '', sequences: '', shapes: new Set() };

  /** The mirror cache may hold rows of a rolled-back transaction: forget it. */
  forget(): void {
    this.mirrored = { tables: '', sequences: '', shapes: new Set() };
  }

  /**
   * Re-queues `batch` into this subscriber's branch queue, in the subscriber's open transaction; false when
   * the subscriber has no branch queue (a leaf).
   */
  async requeue(provider: pg.Client, subscriber: pg.Client, queue: string, batch: BatchInfo): Promise<boolean> {
    let target: string | null;
    try {
      target = (await subscriber.query<{ t: string | null }>('SELECT pgconvey.branch_requeue_target($1, $2) AS t', [queue, batch.startTick])).rows[0]!.t;
    } catch (err) {
      throw translate(err);
    }
    if (target === null) return false;

    const providerState = await provider.query<{ tables: string; shape_ids: number[]; sequences: string; tick_time: string; tick_event_seq: string }>(
      `SELECT (SELECT coalesce(json_agg(json_build_object('table_id', table_id, 'table_schema', table_schema, 'table_name', table_name,
                                         'key_columns', key_columns, 'columns', columns, 'shape_id', shape_id) ORDER BY table_id), '[]')::text
                 FROM pgconvey.captured_table WHERE queue_id = $1) AS tables,
              (SELECT coalesce(array_agg(s.shape_id ORDER BY s.shape_id), '{}') FROM pgconvey.table_shape s
                WHERE s.table_id IN (SELECT table_id FROM pgconvey.captured_table WHERE queue_id = $1)) AS shape_ids,
              (SELECT coalesce(json_agg(json_build_object('seq_schema', seq_schema, 'seq_name', seq_name) ORDER BY seq_schema, seq_name), '[]')::text
                 FROM pgconvey.captured_sequence WHERE queue_id = $1) AS sequences,
              t.tick_time::text AS tick_time, t.tick_event_seq::text AS tick_event_seq
         FROM pgconvey.tick t WHERE t.queue_id = $1 AND t.tick_id = $2`,
      [batch.queueId, batch.endTick],
    );
    const state = providerState.rows[0];
    if (!state) throw new Error(`internal: the provider's tick ${batch.endTick} of queue "${queue}" is gone while its batch is open`);
    const newShapes = state.shape_ids.filter((id) => !this.mirrored.shapes.has(id));
    let shapes: string | null = null;
    if (newShapes.length) {
      const r = await provider.query<{ shapes: string }>(
        `SELECT coalesce(json_agg(json_build_object('shape_id', shape_id, 'table_id', table_id, 'attnums', attnums, 'columns', columns,
                                                    'key_columns', key_columns, 'generated', generated)), '[]')::text AS shapes
           FROM pgconvey.table_shape WHERE shape_id = ANY ($1::int[])`,
        [newShapes],
      );
      shapes = r.rows[0]!.shapes;
    }
    const tables = state.tables !== this.mirrored.tables ? state.tables : null;
    const sequences = state.sequences !== this.mirrored.sequences ? state.sequences : null;
    if (tables !== null || shapes !== null || sequences !== null) {
      try {
        await subscriber.query('SELECT pgconvey.branch_mirror($1, $2::jsonb, $3::jsonb, $4::jsonb)', [queue, tables, shapes, sequences]);
      } catch (err) {
        throw translate(err);
      }
      this.mirrored = { tables: state.tables, sequences: state.sequences, shapes: new Set([...this.mirrored.shapes, ...newShapes]) };
    }

    await pipeline(
      provider.query(copyTo(`COPY (${requeueEventsSql(batch)}) TO STDOUT`)),
      subscriber.query(copyFrom(`COPY ${target} (ev_id, ev_table, ev_op, ev_shape, ev_key, ev_data) FROM STDIN`)),
    );
    await subscriber.query('SELECT pgconvey.branch_tick($1, $2, $3::timestamptz, $4)', [queue, batch.endTick, state.tick_time, state.tick_event_seq]);
    return true;
  }
}

function translate(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'PCB01') return new BranchOutOfStepError(e.message ?? 'branch out of step');
  if (e?.code === 'PCB02') return new BranchIdConflictError(e.message ?? 'branch id conflict');
  return err;
}

/**
 * Makes the queue of a branch that is subscribed (consumer `consumer`) to its provider's queue: it starts at
 * the branch's position, and takes the rotation and tick retention of `settings` (a branch does not tick).
 * Idempotent; a root's queue of that name here is refused.
 */
export async function createBranchQueue(client: pg.Client, queue: string, consumer: string, provider: string, settings: Partial<QueueSettings> = {}): Promise<number> {
  const { rows } = await client.query<{ id: number }>('SELECT pgconvey.create_branch_queue($1, $2, $3) AS id', [queue, consumer, provider]);
  await configureQueue(client, queue, { rotationTxids: settings.rotationTxids, tickRetentionMs: settings.tickRetentionMs });
  return rows[0]!.id;
}

/** A leaf under a branch copies a table only once the branch has it whole: code `provider_table_not_ready`. */
export class ProviderTableNotReadyError extends PgconveyError {
  constructor(tables: string[]) {
    super(
      'provider_table_not_ready',
      `the provider is a branch whose own copy of ${tables.join(', ')} is not done yet (not \`ok\` there)`,
      'nothing to do: the copy starts again once the branch has the table (`pgconvey status` on the branch)',
    );
  }
}

/**
 * Of `tables`, those a copy must not read from this provider yet: when the provider is a branch of `queue`,
 * the ones its own subscription does not have `ok` (being copied or merged there, its rows are not yet the
 * root's as of any tick). Run inside the copy's snapshot for the answer the copy relies on. [] on a root.
 */
export async function branchTablesNotReady(provider: pg.Client, queue: string, tables: Array<{ schema: string; table: string }>): Promise<Array<{ schema: string; table: string }>> {
  if (!tables.length) return [];
  const { rows } = await provider.query<{ s: string; t: string }>(
    `SELECT x.s, x.t FROM unnest($2::text[], $3::text[]) AS x(s, t)
      WHERE EXISTS (SELECT 1 FROM pgconvey.queue q WHERE q.queue_name = $1 AND q.branch_provider IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM pgconvey.subscriber_table st JOIN pgconvey.queue q ON q.queue_name = st.queue_name AND q.branch_consumer = st.consumer_name
                         WHERE st.queue_name = $1 AND st.table_schema = x.s AND st.table_name = x.t AND st.state = 'ok')`,
    [queue, tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  return rows.map((r) => ({ schema: r.s, table: r.t }));
}
