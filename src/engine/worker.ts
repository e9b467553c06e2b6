/**
 * The apply worker of one subscription: takes the next batch from the
 * provider, applies it on the subscriber in ONE transaction that also stores
 * the batch's end tick as the subscriber's position, then finishes the batch
 * on the provider. After a crash the position decides: the batch was applied
 * (skip it and finish it), it follows the position (apply it), or neither
 * (the position is lost: stop and say so). Exactly once, whatever is killed
 * when.
 */
import format from 'pg-format';
import type pg from 'pg';
import { EventApplier, prepareTable, type ApplyStats, type CapturedTable, type TableStatements } from './apply.js';
import { finishBatch, nextBatch, readBatch, type BatchInfo } from './batch-reader.js';

export interface WorkerOptions {
  queue: string;
  consumer: string;
  /** Upper bound on events merged into one batch when behind (at least one tick is taken). */
  maxBatchEvents?: number;
}

export type StepOutcome =
  | { kind: 'idle' }
  | { kind: 'applied'; batch: BatchInfo; stats: ApplyStats; lagMs: number; durationMs: number }
  | { kind: 'skipped'; batch: BatchInfo };

export class LostPositionError extends Error {
  constructor(
    readonly subscriberTick: string | null,
    readonly batch: BatchInfo,
  ) {
    super(
      `the subscriber's position (tick ${subscriberTick ?? 'none'}) does not match the provider's next batch (ticks ${batch.startTick} to ${batch.endTick}); ` +
        'events between them cannot be applied exactly once',
    );
    this.name = 'LostPositionError';
  }
}

export class NotSubscribedError extends Error {
  constructor(queue: string, consumer: string) {
    super(`this database has no subscription "${consumer}" to queue "${queue}"`);
    this.name = 'NotSubscribedError';
  }
}

export class WorkerBusyError extends Error {
  constructor(queue: string, consumer: string) {
    super(`another worker is already applying subscription "${consumer}" of queue "${queue}" on this subscriber`);
    this.name = 'WorkerBusyError';
  }
}

/**
 * Session settings of both connections, whatever the server, database or
 * environment (PGOPTIONS, PGDATESTYLE) default to, so text input and output
 * are unambiguous.
 */
const SESSION_SQL = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3";

export class ApplyWorker {
  private statements = new Map<string, TableStatements>();
  private notified: (() => void) | undefined;

  constructor(
    private readonly provider: pg.Client,
    private readonly subscriber: pg.Client,
    private readonly options: WorkerOptions,
  ) {}

  /** Takes the subscription's worker lock, sets the session up, and listens for ticks. */
  async start(): Promise<void> {
    const { rows } = await this.subscriber.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(1885823862, hashtext('worker:' || $1 || ':' || $2)) AS ok", [
      this.options.queue,
      this.options.consumer,
    ]);
    if (!rows[0]!.ok) throw new WorkerBusyError(this.options.queue, this.options.consumer);
    await this.subscriber.query(SESSION_SQL);
    await this.provider.query(SESSION_SQL);
    this.provider.on('notification', () => {
      const wake = this.notified;
      this.notified = undefined;
      wake?.();
    });
    await this.provider.query('LISTEN pgconvey_tick');
  }

  /** Resolves after `ms`, or earlier when the provider announces a tick. */
  waitForTick(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.notified = undefined;
        resolve();
      }, ms);
      this.notified = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Processes at most one batch. */
  async step(): Promise<StepOutcome> {
    const { queue, consumer } = this.options;
    const batch = await nextBatch(this.provider, queue, consumer, this.options.maxBatchEvents ?? 50_000);
    if (!batch) return { kind: 'idle' };
    const started = Date.now();

    const opened = (await this.subscriber.query(
      format(
        'BEGIN; SET LOCAL session_replication_role = replica; SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = %L AND consumer_name = %L FOR UPDATE',
        queue,
        consumer,
      ),
    )) as unknown as pg.QueryResult[];
    const position = opened[2]!.rows[0] as { completed_tick: string | null } | undefined;
    try {
      if (!position) throw new NotSubscribedError(queue, consumer);
      if (position.completed_tick === batch.endTick) {
        await this.subscriber.query('ROLLBACK');
        await finishBatch(this.provider, queue, consumer, batch.endTick);
        return { kind: 'skipped', batch };
      }
      if (position.completed_tick !== batch.startTick) throw new LostPositionError(position.completed_tick, batch);

      const tables = await this.appliedTables(batch.queueId);
      const applier = new EventApplier(this.subscriber, (id) => tables.get(id));
      await readBatch(this.provider, batch, new Map([...tables].map(([id, st]) => [id, st.table.keyColumns])), (events) => applier.apply(events));
      await this.subscriber.query(
        format('UPDATE pgconvey.subscription SET completed_tick = %L, applied_at = now() WHERE queue_name = %L AND consumer_name = %L; COMMIT', batch.endTick, queue, consumer),
      );
      await finishBatch(this.provider, queue, consumer, batch.endTick);
      return { kind: 'applied', batch, stats: applier.takeStats(), lagMs: Date.now() - batch.endTime.getTime(), durationMs: Date.now() - started };
    } catch (err) {
      await this.subscriber.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** Tables this subscriber applies (state 'ok'), by provider table id, with their statements. */
  private async appliedTables(queueId: number): Promise<Map<number, TableStatements>> {
    const captured = await this.provider.query<{ table_id: number; table_schema: string; table_name: string; key_columns: string[]; columns: string[] }>(
      'SELECT table_id, table_schema, table_name, key_columns, columns FROM pgconvey.captured_table WHERE queue_id = $1',
      [queueId],
    );
    const applied = await this.subscriber.query<{ table_schema: string; table_name: string }>(
      "SELECT table_schema, table_name FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state = 'ok'",
      [this.options.queue, this.options.consumer],
    );
    const wanted = new Set(applied.rows.map((r) => `${r.table_schema}\u0000${r.table_name}`));
    const out = new Map<number, TableStatements>();
    for (const r of captured.rows) {
      if (!wanted.has(`${r.table_schema}\u0000${r.table_name}`)) continue;
      const table: CapturedTable = { tableId: r.table_id, schema: r.table_schema, name: r.table_name, keyColumns: r.key_columns, columns: r.columns };
      const cacheKey = JSON.stringify(table);
      let st = this.statements.get(cacheKey);
      if (!st) {
        st = await prepareTable(this.subscriber, table);
        this.statements.set(cacheKey, st);
      }
      out.set(r.table_id, st);
    }
    return out;
  }
}
