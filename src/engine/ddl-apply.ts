/**
 * The worker's side of `pgconvey execute`: a batch's events go to the
 * EventApplier as before, except at a script event (table 0, op X), where the
 * rows before it are flushed (pending TRUNCATEs included), the script runs on
 * the subscriber in the batch's transaction (pgconvey.apply_script: under the
 * exact settings, the provider's search_path, the batch's
 * session_replication_role and the worker's role; recorded there, once per
 * name and checksum), and the worker's knowledge of the subscriber's tables
 * (prepared statements' column lists, composite types, keys) is thrown away
 * and read again, so the rows after it apply to the new shape. Copies in
 * flight whose rows may predate the script start again (their tables go back
 * to `pending`), and so do tables held on a schema mismatch (table-hold.ts): their replay would otherwise apply rows of the old shape
 * after the new one. A script that fails makes the batch fail
 * (ScriptApplyError): the worker retries the same batch, nothing after the
 * script is applied before it.
 */
import type pg from 'pg';
import type { EventApplier, RowShape, TableStatements } from './apply.js';
import type { QueueEvent } from './batch-reader.js';
import { SCRIPT_EVENT_OP, SCRIPT_EVENT_TABLE, ScriptError, scriptChecksum, scriptErrorOf, type ScriptHeader } from './ddl.js';
import { SchemaMismatchError, ShapeGuard } from './ddl-mismatch.js';
import { sqlStates } from './table-state.js';

/** A script failed on the subscriber: code `script_failed_on_subscriber`; replication of the queue waits at the script. */
export class ScriptApplyError extends ScriptError {
  constructor(
    readonly script: string,
    readonly endTick: string,
    reason: string,
    cause: unknown,
  ) {
    super(
      'script_failed_on_subscriber',
      `script "${script}" (pgconvey execute) failed on the subscriber: ${reason}; replication of this queue waits at the script (batch ending at tick ${endTick})`,
      'make the subscriber able to run it (e.g. create the object it needs there); the worker retries by itself and goes on. If its effect is already there, record it as applied: pgconvey execute SCRIPT --file FILE --mark-applied NODE',
      { cause },
    );
  }
}

export function isScriptEvent(e: QueueEvent): boolean {
  return e.table === SCRIPT_EVENT_TABLE && e.op === (SCRIPT_EVENT_OP as QueueEvent['op']);
}

export interface ScriptRunnerOptions {
  queue: string;
  consumer: string;
  /** The batch being applied (its end tick is recorded with a script). */
  startTick: string;
  endTick: string;
  /** The provider (for the types of columns a subscriber lacks). */
  provider: pg.Client;
  statements: (tableId: number) => TableStatements | undefined;
  shapes: (shapeId: number) => RowShape | undefined;
  /** The tables this batch applies (read and locked at its start: a merging one has replayed its skipped range already). */
  appliedTables: () => ReadonlyArray<{ schema: string; name: string }>;
  /** Forget every cached statement and read the subscriber's tables again (the worker's caches). */
  refresh: () => Promise<void>;
  /** Told of each script met (applied or skipped), for logs. */
  onScript?: (name: string, outcome: 'applied' | 'skipped') => void;
}

/** Splits a batch's chunks at script events; one per batch. */
export class ScriptRunner {
  readonly ran: Array<{ name: string; outcome: 'applied' | 'skipped' }> = [];
  private readonly guard: ShapeGuard;

  constructor(
    private readonly subscriber: pg.Client,
    private readonly options: ScriptRunnerOptions,
  ) {
    this.guard = new ShapeGuard(options.provider, subscriber, options.queue, { start: options.startTick, end: options.endTick });
  }

  /** Applies a chunk of events in order, running the scripts among them at their place. */
  async apply(events: QueueEvent[], applier: EventApplier): Promise<void> {
    let from = 0;
    for (let i = 0; i < events.length; i++) {
      if (events[i]!.table !== SCRIPT_EVENT_TABLE || !isScriptEvent(events[i]!)) continue;
      if (i > from) await this.applyRows(events.slice(from, i), applier);
      // Everything before the script, pending TRUNCATEs included, is written before it runs.
      await applier.finish();
      await this.run(events[i]!);
      from = i + 1;
    }
    if (from === 0) await this.applyRows(events, applier);
    else if (from < events.length) await this.applyRows(events.slice(from), applier);
  }

  /** Row events with no script between them: their shapes are checked against the subscriber's tables as they are now, then applied. */
  private async applyRows(events: QueueEvent[], applier: EventApplier): Promise<void> {
    // A row shape the subscriber cannot take (a direct ALTER on the provider) stops the batch with what to run.
    try {
      await this.guard.check(events, this.options.statements, this.options.shapes);
    } catch (err) {
      // The next try reads the subscriber's tables afresh (the DBA may have mirrored the change meanwhile).
      if (err instanceof SchemaMismatchError) await this.options.refresh().catch(() => undefined);
      throw err;
    }
    await applier.apply(events);
  }


  private async run(e: QueueEvent): Promise<void> {
    const { queue, consumer, endTick } = this.options;
    let header: ScriptHeader;
    try {
      header = JSON.parse(e.key ?? '') as ScriptHeader;
    } catch (err) {
      throw new ScriptApplyError('?', endTick, `its event has no readable header (${String(err)})`, err);
    }
    const sql = e.data ?? '';
    if (scriptChecksum(sql) !== header.checksum) throw new ScriptApplyError(header.name, endTick, 'its text in the queue does not match its checksum', null);
    let outcome: 'applied' | 'skipped';
    // A savepoint keeps the session usable for the error's own reads; the batch is rolled back by the worker anyway.
    await this.subscriber.query('SAVEPOINT pgconvey_script');
    try {
      const { rows } = await this.subscriber.query<{ outcome: 'applied' | 'skipped' }>('SELECT pgconvey.apply_script($1, $2, $3, $4, $5, $6, $7) AS outcome', [
        queue,
        consumer,
        header.name,
        header.checksum,
        sql,
        header.search_path,
        endTick,
      ]);
      outcome = rows[0]!.outcome;
      await this.subscriber.query('RELEASE SAVEPOINT pgconvey_script');
    } catch (err) {
      await this.subscriber.query('ROLLBACK TO SAVEPOINT pgconvey_script').catch(() => undefined);
      const mapped = scriptErrorOf(err);
      if (mapped !== err) throw mapped;
      const x = err as { message?: string; code?: string };
      throw new ScriptApplyError(header.name, endTick, `${x.message ?? String(err)}${x.code ? ` (SQLSTATE ${x.code})` : ''}`, err);
    }
    if (outcome === 'applied') {
      // Copies whose rows (and skipped range) may be older than the script start again, after it.
      const applied = this.options.appliedTables();
      await this.subscriber.query(
        `UPDATE pgconvey.subscriber_table t SET state = ${sqlStates('pending')}, state_since = now(), copy_snapshot = NULL, copy_tick = NULL,
                copy_generation = pg_catalog.nextval('pgconvey.copy_generation_seq'), copy_pin = NULL, last_error = NULL, last_error_at = NULL, copy_failures = 0, hold_columns = NULL
          WHERE t.queue_name = $1 AND t.consumer_name = $2
            AND (t.state IN (${sqlStates('copying', 'held')}) OR (t.state = ${sqlStates('catching-up')} AND t.copy_snapshot IS NOT NULL
                 AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) a(s, n) WHERE a.s = t.table_schema AND a.n = t.table_name)))`,
        [queue, consumer, applied.map((t) => t.schema), applied.map((t) => t.name)],
      );
      await this.options.refresh();
      this.guard.reset();
    }
    this.ran.push({ name: header.name, outcome });
    this.options.onScript?.(header.name, outcome);
  }
}
