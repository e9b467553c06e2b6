/**
 * A table held alone on a schema mismatch (#17 part 3). When a batch meets
 * rows of one table that the subscriber's table cannot take (columns added on
 * the provider without `pgconvey execute`, found by ddl-mismatch.ts), the
 * worker rolls the batch back and, in a transaction of its own, sets that
 * table `held` from the batch's start tick (nothing of the table in the batch
 * was applied), with the columns it waits for and the ALTER to run as its
 * last_error; then takes the batch again without it, so the other tables go
 * on. Before any later batch is applied, the table's pin (a copy pin,
 * kernel/copy-pins.ts) is registered on the provider AT the held tick, so the
 * queue keeps the table's events from there (rotation included). Each batch
 * checks in one statement whether the subscriber's tables now have the
 * columns; a table that has them goes `catching-up` from its held tick with a
 * snapshot that sees nothing, so the worker's replay of a skipped tick range
 * (worker.ts) applies every held event, in the batch's transaction, and the
 * table is `ok` at its end; the pin then goes (dropStalePins).
 *
 * Held alone only when that is exact: an `ok` table, or one replaying its held
 * events (held again at its held tick). A table merging a copy, and any table
 * of a branch node (its own queue re-queues each batch as applied), keep the
 * whole-queue stop. A script applied by `pgconvey execute` while a table is
 * held sends the table to a new copy (ddl-apply.ts), since its held events
 * predate the script.
 */
import type pg from 'pg';
import { copyPinName, quoteQualified } from '../kernel/index.js';
import type { SchemaMismatchError } from './ddl-mismatch.js';
import { sqlStates, type TableState } from './table-state.js';

/**
 * The copy snapshot of a table resumed from a hold: a snapshot that sees no
 * transaction (txid_visible_in_snapshot is false for every txid ≥ 1), so the
 * replay skips none of the table's events, and any batch's end sees all it
 * saw (the table is `ok` after one batch).
 */
export const HOLD_NO_SNAPSHOT = '1:1:';

/** A subscriber_table row as the worker's batch reads it. */
export interface HoldRow {
  table_schema: string;
  table_name: string;
  state: TableState;
  copy_snapshot: string | null;
  copy_tick: string | null;
  copy_generation: string;
  copy_pin?: string | null;
}

/** A table of the failed batch that may be held: as that batch read it. */
export interface HoldCandidate {
  schema: string;
  name: string;
  /** Null for a table applied whole by the batch (`ok`). */
  copySnapshot: string | null;
  copyTick: string | null;
  copyGeneration: string;
}

/** What changed, for the worker's log: once per change, never per retry. */
export interface HoldChange {
  kind: 'held' | 'resumed' | 'lost';
  table: string;
  tick: string;
  columns: string[];
  /** What to run on the subscriber (held). */
  alter: string[];
}

const smaller = (a: string, b: string) => (BigInt(a) < BigInt(b) ? a : b);

/** The tick a table is held at, or null when it cannot be held alone exactly (a copy merging). */
export function holdTickOf(c: HoldCandidate, startTick: string): string | null {
  if (c.copySnapshot === null) return startTick;
  // Resumed from a hold and still replaying: held again where its replay starts.
  if (c.copySnapshot === HOLD_NO_SNAPSHOT && c.copyTick !== null) return smaller(c.copyTick, startTick);
  return null;
}

/** The table's last_error while held: what it waits for and what to run. */
export function holdMessage(err: SchemaMismatchError, tick: string): string {
  return (
    `held since tick ${tick}: the subscriber's table lacks the column(s) ${err.columns.join(', ')} that the provider's rows carry (a schema change made on the provider without pgconvey execute); ` +
    `its events are kept on the provider and the other tables go on; run on the subscriber: ${err.alter.join(' ')} — the worker then applies the held events by itself`
  );
}

/** Per worker: holds tables, keeps their pins, resumes them. */
export class TableHolds {
  /** Pins registered (or found) by this worker at their table's held tick. */
  private readonly ensured = new Set<string>();
  private changes: HoldChange[] = [];

  constructor(
    private readonly queue: string,
    private readonly consumer: string,
  ) {}

  /** The changes since the last call (for logs). */
  take(): HoldChange[] {
    const out = this.changes;
    this.changes = [];
    return out;
  }

  /**
   * Holds the table of `err` alone, in a transaction of its own on the
   * subscriber, when that is exact; false when the whole queue must wait
   * instead. The subscriber's position must still be the batch's start.
   */
  async hold(subscriber: pg.Client, err: SchemaMismatchError, candidates: readonly HoldCandidate[], startTick: string): Promise<boolean> {
    const c = candidates.find((x) => x.schema === err.table.schema && x.name === err.table.name);
    if (!c) return false;
    const tick = holdTickOf(c, startTick);
    if (tick === null) return false;
    const { queue, consumer } = this;
    await subscriber.query('BEGIN');
    try {
      const position = await subscriber.query<{ pos: string | null }>(
        'SELECT completed_tick::text AS pos FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2 FOR UPDATE',
        [queue, consumer],
      );
      const branch = await subscriber.query<{ b: boolean }>('SELECT EXISTS (SELECT FROM pgconvey.queue WHERE queue_name = $1 AND branch_provider IS NOT NULL) AS b', [queue]);
      if (branch.rows[0]!.b || position.rows[0]?.pos !== startTick) {
        await subscriber.query('ROLLBACK');
        return false;
      }
      // An `ok` table gets a pin of its own (a new generation); one replaying its held events keeps its pin
      // (and is `held` again here: its resume was rolled back with the batch).
      let generation = c.copyGeneration;
      let pin: string | null = null;
      if (c.copySnapshot === null) {
        generation = (await subscriber.query<{ g: string }>("SELECT pg_catalog.nextval('pgconvey.copy_generation_seq')::text AS g")).rows[0]!.g;
        pin = copyPinName(consumer, generation, c.schema, c.name);
      }
      const updated = await subscriber.query(
        `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('held')}, state_since = now(), copy_tick = $5, copy_snapshot = NULL,
                copy_generation = $6, copy_pin = coalesce($7::text, copy_pin), hold_columns = $8, last_error = $9, last_error_at = now()
          WHERE queue_name = $1 AND consumer_name = $2 AND table_schema = $3 AND table_name = $4 AND copy_generation = $10
            AND state IN (${sqlStates('ok', 'catching-up', 'held')})`,
        [queue, consumer, c.schema, c.name, tick, generation, pin, err.columns, holdMessage(err, tick), c.copyGeneration],
      );
      if (updated.rowCount !== 1) {
        await subscriber.query('ROLLBACK');
        return false;
      }
      await subscriber.query('COMMIT');
    } catch (e) {
      await subscriber.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
    this.changes.push({ kind: 'held', table: quoteQualified(c.schema, c.name), tick, columns: err.columns, alter: err.alter });
    return true;
  }

  /**
   * In the batch's open transaction (the rows read FOR SHARE): makes sure each
   * held table's pin holds its events from its held tick (a table whose events
   * are gone is sent to a new copy), and resumes those whose columns the
   * subscriber now has. Returns the rows the batch applies (held ones left
   * out, resumed ones as `catching-up`) and whether any table resumed (its
   * cached statements are stale).
   */
  async prepare(provider: pg.Client, subscriber: pg.Client, rows: readonly HoldRow[], startTick: string): Promise<{ rows: HoldRow[]; resumed: boolean }> {
    const held = rows.filter((r) => r.state === 'held');
    const out = rows.filter((r) => r.state !== 'held');
    if (!held.length) return { rows: out, resumed: false };
    const { queue, consumer } = this;
    const lost: HoldRow[] = [];
    for (const r of held) {
      const pin = r.copy_pin ?? null;
      if (pin !== null && this.ensured.has(pin)) continue;
      if (pin === null || r.copy_tick === null || !(await ensurePin(provider, queue, pin, r.copy_tick, startTick))) {
        lost.push(r);
        continue;
      }
      this.ensured.add(pin);
    }
    for (const r of lost) {
      // The held events are not all on the provider any more: only a new copy is exact.
      await subscriber.query(
        `UPDATE pgconvey.subscriber_table SET state = ${sqlStates('pending')}, state_since = now(), copy_snapshot = NULL, copy_tick = NULL, copy_pin = NULL,
                copy_generation = pg_catalog.nextval('pgconvey.copy_generation_seq'), hold_columns = NULL, copy_failures = 0, last_error_at = now(),
                last_error = 'its held events are gone from the provider (its pin was removed): the table is copied again'
          WHERE queue_name = $1 AND consumer_name = $2 AND table_schema = $3 AND table_name = $4 AND copy_generation = $5 AND state = ${sqlStates('held')}`,
        [queue, consumer, r.table_schema, r.table_name, r.copy_generation],
      );
      this.changes.push({ kind: 'lost', table: quoteQualified(r.table_schema, r.table_name), tick: r.copy_tick ?? '?', columns: [], alter: [] });
    }
    const lostSet = new Set(lost);
    if (held.every((r) => lostSet.has(r))) return { rows: out, resumed: false };
    // One statement: the held tables whose subscriber table now has every column they wait for go on.
    const resumed = await subscriber.query<HoldRow & { hold_columns: string[] }>(
      `UPDATE pgconvey.subscriber_table t SET state = ${sqlStates('catching-up')}, state_since = now(), copy_snapshot = $3, last_error = NULL, last_error_at = NULL
        WHERE t.queue_name = $1 AND t.consumer_name = $2 AND t.state = ${sqlStates('held')} AND t.hold_columns IS NOT NULL AND t.copy_tick IS NOT NULL
          AND NOT EXISTS (SELECT FROM pg_catalog.unnest(t.hold_columns) AS c(name)
                           WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                              WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(t.table_schema) || '.' || pg_catalog.quote_ident(t.table_name))
                                                AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped))
        RETURNING t.table_schema, t.table_name, t.state, t.copy_snapshot, t.copy_tick::text AS copy_tick, t.copy_generation::text AS copy_generation, t.copy_pin, t.hold_columns`,
      [queue, consumer, HOLD_NO_SNAPSHOT],
    );
    for (const r of resumed.rows) {
      out.push({ table_schema: r.table_schema, table_name: r.table_name, state: 'catching-up', copy_snapshot: r.copy_snapshot, copy_tick: r.copy_tick, copy_generation: r.copy_generation, copy_pin: r.copy_pin });
      this.changes.push({ kind: 'resumed', table: quoteQualified(r.table_schema, r.table_name), tick: r.copy_tick!, columns: r.hold_columns, alter: [] });
    }
    return { rows: out, resumed: resumed.rows.length > 0 };
  }

  /** The batch rolled back: its changes (resumes) did not happen. */
  forget(): void {
    this.changes = this.changes.filter((c) => c.kind === 'held');
  }
}

/**
 * Registers `pin` on the provider at `tick` (a consumer whose position is
 * that tick, so rotation keeps the events after it), or finds it registered
 * at or before it. A new pin is only exact at or after the subscription's own
 * position on the provider (`startTick`: the open batch's start), whose
 * consumer holds the events from there. False when the events are not known
 * to be kept.
 */
async function ensurePin(provider: pg.Client, queue: string, pin: string, tick: string, startTick: string): Promise<boolean> {
  const { rows } = await provider.query<{ inserted: string | null; existing: string | null }>(
    `WITH ins AS (
       INSERT INTO pgconvey.consumer (queue_id, consumer_name, last_tick)
       SELECT q.queue_id, $2::text, $3::bigint FROM pgconvey.queue q
        WHERE q.queue_name = $1 AND $3::bigint >= $4::bigint
          AND EXISTS (SELECT FROM pgconvey.tick t WHERE t.queue_id = q.queue_id AND t.tick_id = $3::bigint)
       ON CONFLICT (queue_id, consumer_name) DO NOTHING
       RETURNING last_tick)
     SELECT (SELECT last_tick::text FROM ins) AS inserted,
            (SELECT c.last_tick::text FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 AND c.consumer_name = $2) AS existing`,
    [queue, pin, tick, startTick],
  );
  const at = rows[0]?.inserted ?? rows[0]?.existing ?? null;
  return at !== null && BigInt(at) <= BigInt(tick);
}
