/**
 * The apply worker of one subscription: takes the next batch from the
 * provider, applies it on the subscriber in ONE transaction that also stores
 * the batch's end tick as the subscriber's position, then finishes the batch
 * on the provider. After a crash the position decides: the batch was applied
 * (skip it and finish it), it follows the position (apply it), or neither
 * (the position is lost: stop and say so). Exactly once, whatever is killed
 * when.
 *
 * Under the engine guard (daemons/engine-guard.ts; step(guards)), the
 * install lock costs no round trip of its own: the subscriber's opening
 * takes it for the batch's transaction, the provider's poll for its own;
 * provider work beyond the poll (a batch read by cursor, copies merging,
 * new shapes or tables, pins, a branch's re-queue, a skipped batch's
 * finish) takes the provider's session lock first (lockedProvider), once
 * per step, and subscriber work outside the batch's transaction takes the
 * subscriber's around it.
 */
import type pg from 'pg';
import { PgconveyError, sqlFormat as format } from '../kernel/index.js';
import { EventApplier, prepareTables, type ApplyStats, type CapturedTable, type RowShape, type TableStatements } from './apply.js';
import { syncSequences } from './api.js';
import { batchFromRow, closeHeld, finishBatch, readBatch, type BatchInfo, type HeldBatch, type QueueEvent } from './batch-reader.js';
import { EXACT_SESSION_SQL } from './session.js';
import { sqlStates, type TableState } from './table-state.js';
import { tryPieceLockSql } from './locks.js';
import type { StepGuard } from './engine-lock.js';
import { dropStalePins } from './copier.js';
import { parseSnapshot, snapshotSees } from './snapshot.js';
import { SCRIPT_EVENT_TABLE } from './ddl.js';
import { ScriptRunner } from './ddl-apply.js';
import { BranchOutOfStepError, BranchRequeue } from './branch.js';
import { Phases } from './worker-profile.js';
import { SchemaMismatchError } from './ddl-mismatch.js';
import { TableHolds, type HoldChange, type HoldRow } from './table-hold.js';

/** A table the worker applies; a copied table still merging carries its copy's snapshot and tick. */
interface AppliedTable {
  statements: TableStatements;
  copySnapshot: string | null;
  copyTick: string | null;
  /** The copy (or resync) the table's state belongs to, as read (and locked) by this batch. */
  copyGeneration: string;
}

/** The engine guards of a step's two connections (daemons/engine-guard.ts stepGuard). */
export interface StepGuards {
  provider: StepGuard;
  subscriber: StepGuard;
}

/** Results at the head of a guarded message (engine-lock.ts StepGuard.xactSql: the lock, the check). */
const GUARD_RESULTS = 2;

export interface WorkerOptions {
  queue: string;
  consumer: string;
  /** Upper bound on events merged into one batch when behind (at least one tick is taken). */
  maxBatchEvents?: number;
}

export type StepOutcome =
  | { kind: 'idle' }
  | { kind: 'applied'; batch: BatchInfo; stats: ApplyStats; lagMs: number; durationMs: number; /** #17: scripts run in the batch */ scripts?: ScriptRunner['ran']; /** #17: tables held, resumed */ holds?: HoldChange[] }
  | { kind: 'skipped'; batch: BatchInfo };

/** The subscriber's position is not where the provider's next batch starts (changed behind pgconvey's back): code `lost_position`. */
export class LostPositionError extends PgconveyError {
  constructor(
    readonly subscriberTick: string | null,
    readonly batch: BatchInfo,
  ) {
    super(
      'lost_position',
      `the subscriber's position (tick ${subscriberTick ?? 'none'}) does not match the provider's next batch (ticks ${batch.startTick} to ${batch.endTick}); ` +
        'events between them cannot be applied exactly once',
      'restarting does not help: re-add the subscriber (docs/operations.md, "A subscriber falls far behind")',
    );
  }
}

/** Code `not_subscribed`. */
export class NotSubscribedError extends PgconveyError {
  constructor(queue: string, consumer: string) {
    super('not_subscribed', `this database has no subscription "${consumer}" to queue "${queue}"`, 'run `pgconvey apply` with the file first');
  }
}

/** Another session holds the worker's lock: code `worker_busy`. */
export class WorkerBusyError extends PgconveyError {
  constructor(queue: string, consumer: string) {
    super('worker_busy', `another worker is already applying subscription "${consumer}" of queue "${queue}" on this subscriber`, 'one worker per subscription: `pgconvey status` names the process that runs it');
  }
}

/**
 * Session settings of both connections, whatever the server, database or
 * environment (PGOPTIONS, PGDATESTYLE) default to: values are read and
 * written as text under the exact settings.
 */
const SESSION_SQL = EXACT_SESSION_SQL;

/**
 * The apply statements (named, over `unnest($1)` of a chunk's rows) planned
 * once for any number of rows. From PostgreSQL 12 a custom plan knows the
 * array's length, and for a few thousand keys it chose a merge join that
 * walks the table's whole key index (about 0.5 s per statement on a
 * 500k-row table, 90% of a batch's time); the generic plan looks each key up
 * in the index, as a row-by-row apply does. Before 12 the estimate is fixed
 * (100 rows) and plan_cache_mode does not exist.
 */
const GENERIC_PLANS_SQL = `DO $$ BEGIN IF pg_catalog.current_setting('server_version_num')::int >= 120000 THEN PERFORM pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', false); END IF; END $$`;

/**
 * The version of a queue's captured tables (pgconvey.captured_version, the
 * same the poll gets from pgconvey.poll_state): a hash of what the worker
 * uses of every row, so any committed change gives another value and the
 * rows are read again.
 */
export const CAPTURED_VERSION_SQL = 'SELECT pgconvey.captured_version(%L) AS v';

/** A pgconvey.poll_state row (the poll's, while a batch is open). */
interface PollState {
  v: string;
  pins: boolean;
  seq_schema: string[];
  seq_name: string[];
  seq_value: string[];
  seq_called: boolean[];
}

interface CapturedRow {
  table_id: number;
  table_schema: string;
  table_name: string;
  key_columns: string[];
  columns: string[];
}

/** A pgconvey.table_shape row. */
interface ShapeRow {
  shape_id: number;
  table_id: number;
  columns: string[];
  key_columns: string[];
  generated: string[];
}

/** A subscriber_table row as the batch's opening round trip reads it (the row table-hold.ts works on). */
type SubscriberTableRow = Required<HoldRow>;

/** A provider sequence's value (pgconvey.sequence_values). */
interface SequenceValue {
  seq_schema: string;
  seq_name: string;
  last_value: string;
  is_called: boolean;
}

const sequenceKey = (v: SequenceValue) => `${v.seq_schema}\u0000${v.seq_name}`;
const sequenceValue = (v: SequenceValue) => `${v.last_value}:${v.is_called}`;

/** The statement moving the subscriber's sequences forward to these values (advance_sequence; never backwards). */
function advanceSequencesSql(values: readonly SequenceValue[]): string {
  const array = (items: readonly string[]) => `{${items.map((i) => `"${i.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
  return format(
    'SELECT pgconvey.advance_sequence(s, n, v, c, 0) FROM ROWS FROM (pg_catalog.unnest(%L::text[]), pg_catalog.unnest(%L::text[]), pg_catalog.unnest(%L::bigint[]), pg_catalog.unnest(%L::boolean[])) AS x(s, n, v, c)',
    array(values.map((v) => v.seq_schema)),
    array(values.map((v) => v.seq_name)),
    array(values.map((v) => v.last_value)),
    array(values.map((v) => String(v.is_called))),
  );
}

export class ApplyWorker {
  /** The queue's captured tables as last read, with their version (CAPTURED_VERSION_SQL). */
  private captured: { queueId: number; version: string; rows: CapturedRow[] } | undefined;
  /** The end tick of the batch applied by the last step, still to finish on the provider. */
  private pendingFinish: string | undefined;
  /** Per sequence, the provider value the subscriber's was last moved to (by a committed batch). */
  private sequencesSent = new Map<string, string>();
  private statements = new Map<string, TableStatements>();
  /** Row shapes by id (immutable once written on the provider). */
  private shapes = new Map<number, RowShape>();
  /** Composite types known to exist on the subscriber (cleared when a batch rolls back). */
  private createdTypes = new Map<string, number>();
  private notified: (() => void) | undefined;
  /** Cascades: a branch re-queues each batch for its own subscribers (engine/branch.ts). */
  private readonly branch = new BranchRequeue();
  /** A tick was announced since the last step began polling (no one was waiting for it). */
  private tickAnnounced = false;
  /** The ids of the tables the last batch read (sorted, comma-separated), when none was merging a copy: the poll reads a small batch of them. */
  private smallTables: string | undefined;
  /** Per-phase milliseconds of each batch (PGCONVEY_WORKER_PROFILE; off by default). */
  private readonly phases = new Phases();
  /** #17 part 3: tables held alone on a schema mismatch (engine/table-hold.ts). */
  private readonly holds: TableHolds;
  /**
   * The next batch being computed ahead on the provider (batch-reader.ts holdNextBatch) while this one
   * finishes on the subscriber. Its round trips are in flight on the provider connection: every other
   * use of that connection waits for it first (providerFree), so nothing else runs inside its transaction.
   */
  private heldNext: Promise<HeldBatch | undefined> | undefined;
  /** Batches computed ahead on the provider, and how many of them the next step read (the others were closed unread). */
  readonly readAhead = { held: 0, read: 0 };
  /** The engine guards of the step in progress; none: unguarded (a test driving the worker alone). */
  private guards: StepGuards | undefined;
  /** The step in progress holds the provider's session lock (work beyond the poll's transaction). */
  private providerLocked = false;

  constructor(
    private readonly provider: pg.Client,
    private readonly subscriber: pg.Client,
    private readonly options: WorkerOptions,
  ) {
    this.holds = new TableHolds(options.queue, options.consumer);
  }

  /** Takes the subscription's worker lock, sets the session up, and listens for ticks. */
  async start(): Promise<void> {
    const { rows } = await this.subscriber.query<{ ok: boolean }>(tryPieceLockSql("'worker:' || $1 || ':' || $2"), [
      this.options.queue,
      this.options.consumer,
    ]);
    if (!rows[0]!.ok) throw new WorkerBusyError(this.options.queue, this.options.consumer);
    await this.subscriber.query(SESSION_SQL);
    await this.subscriber.query(GENERIC_PLANS_SQL);
    await this.provider.query(SESSION_SQL);
    // The poll (its own tick: keep_up_tick) and a small batch's read run as single implicit transactions:
    // READ COMMITTED, as the ticks and the cursor's transaction are, whatever the server's default.
    await this.provider.query("SET default_transaction_isolation = 'read committed'");
    this.provider.on('notification', () => {
      const wake = this.notified;
      this.notified = undefined;
      // A tick announced while a step runs (after its poll found nothing) must not wait for the timer.
      if (!wake) this.tickAnnounced = true;
      wake?.();
    });
    await this.provider.query('LISTEN pgconvey_tick');
  }

  /** Resolves after `ms`, or earlier when the provider announces a tick. */
  waitForTick(ms: number): Promise<void> {
    if (this.tickAnnounced) {
      this.tickAnnounced = false;
      return Promise.resolve();
    }
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

  /**
   * Closes on the provider the batch the last step applied, if that is still
   * to do (normally the next step's first round trip does it). Best called
   * before the connections close; a batch left open is finished by the next
   * worker (its position says it was applied).
   */
  async finishPending(): Promise<void> {
    const held = await this.providerFree();
    if (held) await closeHeld(this.provider, held);
    const end = this.pendingFinish;
    if (end === undefined) return;
    await finishBatch(this.provider, this.options.queue, this.options.consumer, end);
    this.pendingFinish = undefined;
  }

  /** Waits until the provider connection has no read-ahead in flight; takes the batch it held, if any (the caller reads or closes it). */
  private async providerFree(): Promise<HeldBatch | undefined> {
    const next = this.heldNext;
    this.heldNext = undefined;
    return next ? await next : undefined;
  }

  /**
   * Processes at most one batch; under `guards`, with the install lock held
   * shared wherever it touches engine SQL (see the module's header).
   */
  async step(guards?: StepGuards): Promise<StepOutcome> {
    this.guards = guards;
    let done = false;
    try {
      const outcome = await this.stepOnce();
      done = true;
      return outcome;
    } finally {
      this.guards = undefined;
      if (this.providerLocked) {
        this.providerLocked = false;
        // Queued behind a read-ahead in flight, as any use of the connection; a broken one is closed by the caller anyway.
        const unlock = guards!.provider.unlockSession();
        if (done) await unlock;
        else await unlock.catch(() => undefined);
      }
    }
  }

  /** The provider for work beyond the poll's transaction: its session lock taken first, once per step. Not while a read-ahead is in flight (providerFree). */
  private async lockedProvider(): Promise<pg.Client> {
    const g = this.guards?.provider;
    if (g && !this.providerLocked) {
      this.providerLocked = true; // held even when the check throws: the step's end unlocks
      await g.lockSession();
    }
    return this.provider;
  }

  /** Runs subscriber work outside the batch's transaction under the subscriber's session lock (the connection is idle). */
  private async underSubscriberLock<T>(body: () => Promise<T>): Promise<T> {
    const g = this.guards?.subscriber;
    if (!g) return body();
    try {
      await g.lockSession();
      const r = await body();
      await g.unlockSession();
      return r;
    } catch (err) {
      await g.unlockSession().catch(() => undefined);
      throw err;
    }
  }

  private async stepOnce(): Promise<StepOutcome> {
    const { queue, consumer } = this.options;
    const ph = this.phases;
    ph.reset();
    // A batch computed ahead: read by this step if it is the one the poll gives, else closed.
    let held = await ph.time('ahead', () => this.providerFree());
    const dropHeld = async () => {
      const h = held;
      held = undefined;
      if (h) await closeHeld(this.provider, h);
    };
    // The poll sees every tick committed before it: only announcements from now on wake the next wait.
    this.tickAnnounced = false;
    // Busy (the last step applied a batch): the next batch starts at that batch's end, so the subscriber's
    // opening round trip runs beside the provider's poll instead of after it (rolled back when there is none).
    const expected = this.pendingFinish;
    const early = expected !== undefined ? this.open(expected) : undefined;
    early?.catch(() => undefined);
    let polled: Awaited<ReturnType<ApplyWorker['poll']>>;
    try {
      polled = await ph.time('next', () => this.poll());
    } catch (err) {
      if (early) await early.then(() => this.subscriber.query('ROLLBACK'), () => undefined).catch(() => undefined);
      await dropHeld();
      // Its transaction is over: an engine changed under the worker is what the poll's guard failed on.
      throw (await this.guards?.provider.explain()) ?? err;
    }
    const batch = polled.batch;
    if (!batch || batch.startTick !== expected) {
      if (early) {
        await early; // a failed open throws here (rolled back already)
        await this.subscriber.query('ROLLBACK');
      }
      if (!batch) {
        await dropHeld();
        return { kind: 'idle' };
      }
    }
    const started = Date.now();
    const opened = await ph.time('open', () => (early && batch.startTick === expected ? early : this.open(batch.startTick)));
    const at = this.guards ? GUARD_RESULTS : 0;
    const position = opened[at + 3]!.rows[0] as { completed_tick: string | null } | undefined;
    let states = opened[at + 4]!.rows as SubscriberTableRow[];
    let applied: Map<number, AppliedTable> | undefined; // #17 part 3: the tables a mismatch may hold
    const isBranch = ((opened[at + 5]!.rows[0] as { t: string | null } | undefined)?.t ?? null) !== null;
    /** Stops the applier's statements still in flight (a chunk's flush overlaps the next chunk's decoding). */
    let abandon: (() => Promise<void>) | undefined;
    try {
      if (!position) throw new NotSubscribedError(queue, consumer);
      if (position.completed_tick === batch.endTick) {
        await dropHeld();
        await this.subscriber.query('ROLLBACK');
        await finishBatch(await this.lockedProvider(), queue, consumer, batch.endTick);
        return { kind: 'skipped', batch };
      }
      if (position.completed_tick !== batch.startTick) throw new LostPositionError(position.completed_tick, batch);

      // #17 part 3: held tables keep their pins and are left out; those the subscriber now can take replay from their held tick.
      const prepared = states.some((r) => r.state === 'held') ? await this.holds.prepare(await this.lockedProvider(), this.subscriber, states, batch.startTick) : { rows: states, resumed: false };
      if (prepared.resumed) this.statements.clear();
      states = prepared.rows as SubscriberTableRow[];
      const tables = await ph.time('tables', () => this.appliedTables(batch.queueId, polled.capturedVersion, states));
      applied = tables;
      const applier = new EventApplier(this.subscriber, (id) => tables.get(id)?.statements, (id) => this.shapes.get(id), this.createdTypes, ph);
      abandon = () => applier.abandon();
      // #17 `pgconvey execute`: scripts run at their place in the batch, then the table caches are read again (ddl-apply.ts).
      const scripts = new ScriptRunner(this.subscriber, {
        queue,
        consumer,
        startTick: batch.startTick,
        endTick: batch.endTick,
        // Only the provider's catalog (a missing column's type, when a shape does not fit): no engine SQL.
        provider: this.provider,
        statements: (id) => tables.get(id)?.statements,
        shapes: (id) => this.shapes.get(id),
        appliedTables: () => [...tables.values()].map((t) => t.statements.table),
        refresh: async () => {
          this.statements.clear();
          const list = [...tables.values()];
          const prepared = await prepareTables(this.subscriber, list.map((t) => t.statements.table));
          list.forEach((t, i) => (t.statements = prepared[i]!));
        },
      });
      const apply = async (events: QueueEvent[]) => {
        await ph.time('shapes', () => this.loadShapes(events));
        await ph.time('apply', () => scripts.apply(events, applier));
      };
      const merging = [...tables.values()].filter((t) => t.copySnapshot !== null);
      // A copy that finished while this worker was past its tick: replay the table's events it skipped.
      // Tables of one copy batch share its tick T: their skipped ranges are the same, read together (each
      // table's events still filtered by its own snapshot; across tables in event order, as any batch).
      // How far they are applied is recorded with the others' below, in this transaction.
      await ph.time('replay', async () => {
        for (const [copyTick, group] of replayGroups(merging, batch.startTick)) {
          const skipped = await this.tickRange(batch.queueId, copyTick, batch.startTick);
          await readBatch(await this.lockedProvider(), skipped, new Set(group.map((t) => t.statements.table.tableId)), apply, {
            phases: ph,
            skipVisibleIn: new Map(group.map((t) => [t.statements.table.tableId, t.copySnapshot!])),
          });
          await applier.finish();
        }
      });
      const skipVisibleIn = new Map(merging.map((t) => [t.statements.table.tableId, t.copySnapshot!]));
      const read = new Set([...tables.keys(), SCRIPT_EVENT_TABLE]); // + script events (#17)
      const readKey = merging.length ? undefined : tableIdsKey(read);
      // Read by the poll already when small and of the same tables (their states locked by this batch's opening).
      if (polled.small !== undefined && readKey !== undefined && polled.small.tables === readKey) {
        if (polled.small.events.length) await apply(polled.small.events);
      } else {
        // Behind (a large batch, nothing merging, a leaf): the provider computes the next batch while this
        // one finishes on the subscriber; the next step reads it if the poll gives that batch.
        const readAhead =
          !merging.length && !isBranch && BigInt(batch.eventEstimate) > BigInt(SMALL_BATCH)
            ? {
                maxEvents: this.maxBatchEvents,
                minEvents: SMALL_BATCH,
                onHeld: (next: Promise<HeldBatch | undefined>) => {
                  this.heldNext = next.then((h) => {
                    if (h) this.readAhead.held++;
                    return h;
                  });
                },
              }
            : undefined;
        const given = held;
        held = undefined; // readBatch reads or closes it
        await readBatch(await this.lockedProvider(), batch, read, apply, { skipVisibleIn, phases: ph, held: given, readAhead, onHeldRead: () => {
            this.readAhead.read++;
            ph.add('ahead_read', 1);
          } });
      }
      await dropHeld();
      this.smallTables = readKey;
      // With nothing to do on the subscriber between the last statement and the commit (no table merging
      // a copy, not a branch), the last statements go out with the position and COMMIT (one round trip).
      const foldCommit = !merging.length && !isBranch;
      await ph.time('apply', () => (foldCommit ? applier.finishHolding() : applier.finish()));
      // A copied table is merged once no later batch can hold a transaction its copy already has:
      // later batches start at this end tick, so it is enough that its snapshot sees all the copy saw.
      const end = parseSnapshot(batch.endSnapshot);
      // Every merging table records how far its events are applied, so that a restarted worker
      // replays exactly the range it skipped while the table was being copied, and nothing twice.
      // One statement for all of them (a round trip per table was most of a batch's time while thousands merged).
      if (merging.length) {
        const states = merging.map((t) => ({ t, state: snapshotSees(end, parseSnapshot(t.copySnapshot!)) ? ('ok' as const) : ('catching-up' as const) }));
        await ph.time('states', () => this.setTableStates(states, batch.endTick));
      }
      // One round trip: the subscriber's sequences moved to the provider's values (read after the
      // batch's end tick existed, so never behind it), the position, and the commit — after the batch's
      // last held apply statements when foldCommit.
      const sequences = this.changedSequences(polled.sequences);
      // Cascades: on a branch, the batch's events and its tick go into the branch's queue in this transaction.
      if (isBranch) await this.branch.requeue(await this.lockedProvider(), this.subscriber, queue, batch);
      // From here on the provider connection may be computing the next batch: wait for it before using it.
      const storePosition = format('UPDATE pgconvey.subscription SET completed_tick = %L, applied_at = now() WHERE queue_name = %L AND consumer_name = %L', batch.endTick, queue, consumer);
      const closing = [storePosition, ...(sequences.length ? [advanceSequencesSql(sequences)] : []), 'COMMIT'];
      await ph.time('commit', async () => {
        if (foldCommit) await applier.commit(closing);
        else await this.subscriber.query(closing.join('; '));
      });
      for (const v of sequences) this.sequencesSent.set(sequenceKey(v), sequenceValue(v));
      // Finished on the provider by the next poll (in its round trip), or by finishPending().
      this.pendingFinish = batch.endTick;
      // Our own position now holds the events the merged copies' pins held; leaked pins go too.
      if (polled.copyPins) {
        // The read-ahead's transaction must be over first; the batch it held stays for the next step.
        const next = await this.providerFree();
        this.heldNext = next ? Promise.resolve(next) : undefined;
        const provider = await this.lockedProvider();
        await ph.time('pins', () => this.underSubscriberLock(() => dropStalePins(provider, this.subscriber, queue, consumer)));
      }
      const stats = applier.takeStats();
      ph.flush({ events: stats.events, total: Date.now() - started, lag: Date.now() - batch.endTime.getTime() });
      const holds = this.holds.take();
      return { kind: 'applied', batch, stats, lagMs: Date.now() - batch.endTime.getTime(), durationMs: Date.now() - started, scripts: scripts.ran, ...(holds.length ? { holds } : {}) };
    } catch (err) {
      // No statement of the batch may reach the subscriber after its ROLLBACK (it would run outside the batch).
      await abandon?.();
      // A batch computed ahead is of no use after a failure: closed (readBatch closed the one it was given).
      const next = await this.providerFree();
      if (next) await closeHeld(this.provider, next);
      await dropHeld();
      await this.subscriber.query('ROLLBACK').catch(() => undefined);
      // Types made in the rolled-back transaction are gone with it.
      this.createdTypes.clear();
      this.branch.forget();
      this.holds.forget();
      // #17 part 3: rows one table cannot take hold that table alone, when exact; the batch is taken again without it.
      const candidates = [...(applied?.values() ?? [])].map((t) => ({ schema: t.statements.table.schema, name: t.statements.table.name, copySnapshot: t.copySnapshot, copyTick: t.copyTick, copyGeneration: t.copyGeneration }));
      if (err instanceof SchemaMismatchError && (await this.underSubscriberLock(() => this.holds.hold(this.subscriber, err, candidates, batch.startTick)))) {
        this.statements.clear();
        return this.stepOnce();
      }
      throw err;
    }
  }

  /**
   * One subscriber round trip opens a batch starting at `startTick`: the
   * transaction, the position (locked) and the applied tables' states, locked
   * FOR SHARE until the batch ends: a resync or a copy of one of them waits
   * for this batch, and this batch never applies to a table being copied.
   * Cascades: the same round trip asks whether this subscriber is a branch
   * (its re-queue target, see engine/branch.ts), only when the position is
   * the batch's start (the batch is to be applied) and a branch queue exists
   * here: a leaf then calls no function and makes no further round trip. A
   * failed round trip is rolled back.
   */
  private async open(startTick: string): Promise<pg.QueryResult[]> {
    const { queue, consumer } = this.options;
    // Guarded: the install lock for the batch's transaction and the engine check first (READ COMMITTED:
    // the check's snapshot is taken once the lock is granted, whatever the session's default).
    const guard = this.guards?.subscriber;
    const begin = guard ? `BEGIN ISOLATION LEVEL READ COMMITTED; ${guard.xactSql}; ` : 'BEGIN; ';
    try {
      return (await this.subscriber.query(
        begin +
        format(
          `SET LOCAL session_replication_role = replica; SET LOCAL work_mem = '${APPLY_SORT_MEMORY}'; SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = %L AND consumer_name = %L FOR UPDATE; ` +
            `SELECT table_schema, table_name, state, copy_snapshot, copy_tick, copy_generation::text AS copy_generation, copy_pin FROM pgconvey.subscriber_table
              WHERE queue_name = %L AND consumer_name = %L AND state IN (${sqlStates('ok', 'catching-up', 'held')}) FOR SHARE; ` +
            // A leaf (no branch queue here) skips the function call: no row, the same answer as its NULL.
            'SELECT pgconvey.branch_requeue_target(s.queue_name, s.completed_tick) AS t FROM pgconvey.subscription s WHERE s.queue_name = %L AND s.consumer_name = %L AND s.completed_tick = %L ' +
            'AND EXISTS (SELECT FROM pgconvey.queue q WHERE q.queue_name = s.queue_name AND q.branch_provider IS NOT NULL)',
          queue,
          consumer,
          queue,
          consumer,
          queue,
          consumer,
          startTick,
        ),
      )) as unknown as pg.QueryResult[];
    } catch (err) {
      await this.subscriber.query('ROLLBACK').catch(() => undefined);
      const mismatch = guard ? await guard.explain() : null;
      if (mismatch) throw mismatch;
      const e = err as { code?: string; message?: string };
      throw e?.code === 'PCB01' ? new BranchOutOfStepError(e.message ?? 'branch out of step') : err;
    }
  }

  /**
   * One provider round trip (one transaction): ticks when this subscriber
   * keeps up and events wait (keep_up_tick), finishes the batch the last
   * step applied, takes the next batch, and — only when there is one — the
   * version of the queue's captured tables, whether copy pins exist, and the
   * sequences' values.
   */
  private async poll(): Promise<{ batch: BatchInfo | null; capturedVersion: string; copyPins: boolean; sequences: SequenceValue[]; small?: { tables: string; events: QueueEvent[] } }> {
    const { queue, consumer } = this.options;
    const finishing = this.pendingFinish;
    const statements = [
      // Guarded: the install lock for the poll's transaction (the session's default is READ COMMITTED) and the engine check.
      ...(this.guards ? [this.guards.provider.xactSql] : []),
      // A subscriber that keeps up ticks the events written since its last batch itself (keep_up_tick), in this
      // round trip: its next batch does not wait for the ticker's next call, its commit and its NOTIFY.
      format('SELECT pgconvey.keep_up_tick(%L, %L, %s)', queue, consumer, finishing === undefined ? 'NULL' : String(BigInt(finishing))),
      ...(finishing !== undefined ? [format('SELECT pgconvey.finish_batch(%L, %L, %L)', queue, consumer, finishing)] : []),
      format('SELECT * FROM pgconvey.next_batch(%L, %L, %s)', queue, consumer, String(this.maxBatchEvents)),
      // Only with a batch open: the captured tables' version, whether copy pins exist, the sequence values.
      format('SELECT * FROM pgconvey.poll_state(%L, %L)', queue, consumer),
    ];
    // The tables the last batch read (none merging a copy): a small next batch of them is read in this round trip.
    const smallTables = this.smallTables;
    if (smallTables !== undefined) statements.push(format('SELECT * FROM pgconvey.small_batch_events(%L, %L, %L::int[], %s)', queue, consumer, `{${smallTables}}`, String(SMALL_BATCH)));
    const results = (await this.provider.query(statements.join('; '))) as unknown as pg.QueryResult[];
    // Finished (or found finished already): a failure above leaves it to the next worker's skip path.
    this.pendingFinish = undefined;
    const at = (this.guards ? GUARD_RESULTS : 0) + (finishing !== undefined ? 2 : 1);
    const state = results[at + 1]!.rows[0] as PollState | undefined;
    return {
      batch: batchFromRow(results[at]!.rows[0]),
      capturedVersion: state?.v ?? '',
      copyPins: state?.pins === true,
      sequences: state ? state.seq_schema.map((schema, i) => ({ seq_schema: schema, seq_name: state.seq_name[i]!, last_value: state.seq_value[i]!, is_called: state.seq_called[i]! })) : [],
      small: smallBatch(smallTables, results[at + 2], results[at]!.rows[0]?.event_estimate),
    };
  }

  private get maxBatchEvents(): number {
    return Math.trunc(this.options.maxBatchEvents ?? 50_000);
  }

  /** The sequences whose provider value differs from what this worker last moved the subscriber's to. */
  private changedSequences(values: readonly SequenceValue[]): SequenceValue[] {
    return values.filter((v) => this.sequencesSent.get(sequenceKey(v)) !== sequenceValue(v));
  }

  /** Fetches from the provider the row shapes of these events that are not known yet. */
  private async loadShapes(events: readonly QueueEvent[]): Promise<void> {
    const wanted = new Set<number>();
    for (const e of events) if (e.shape !== null && !this.shapes.has(e.shape)) wanted.add(e.shape);
    if (!wanted.size) return;
    const provider = await this.lockedProvider();
    const { rows } = await provider.query<ShapeRow>('SELECT shape_id, table_id, columns, key_columns, generated FROM pgconvey.table_shape WHERE shape_id = ANY ($1::int[])', [[...wanted]]);
    this.keepShapes(rows);
  }

  private keepShapes(rows: readonly ShapeRow[]): void {
    for (const r of rows) {
      if (!this.shapes.has(r.shape_id)) this.shapes.set(r.shape_id, { shapeId: r.shape_id, tableId: r.table_id, columns: r.columns, keyColumns: r.key_columns, generated: r.generated });
    }
  }

  /** Moves the subscriber's sequences forward to the provider's values (see syncSequences). */
  advanceSequences(margin: number): Promise<number> {
    return syncSequences(this.provider, this.subscriber, this.options.queue, margin);
  }

  /**
   * Records how far the events of these merging tables are applied (`tick`) and their state, in one
   * statement; each row only under the copy generation this batch read (and locked) for it. The rows'
   * whole key comes from the arrays: with the queue and consumer as parameters of their own, the
   * session's generic plan (GENERIC_PLANS_SQL) expected one row of the table for them, and joined by
   * scanning the arrays once per row of the subscription (400 tables of 2,000: 150 ms).
   */
  private async setTableStates(tables: ReadonlyArray<{ t: AppliedTable; state: Extract<TableState, 'ok' | 'catching-up'> }>, tick: string): Promise<void> {
    const { queue, consumer } = this.options;
    await this.subscriber.query(
      `UPDATE pgconvey.subscriber_table t SET state = x.state, copy_tick = $1, state_since = CASE WHEN t.state = x.state THEN t.state_since ELSE now() END
         FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]),
                         pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::bigint[])) AS x(q, c, s, n, state, g)
        WHERE t.queue_name = x.q AND t.consumer_name = x.c AND t.table_schema = x.s AND t.table_name = x.n AND t.copy_generation = x.g`,
      [
        tick,
        tables.map(() => queue),
        tables.map(() => consumer),
        tables.map(({ t }) => t.statements.table.schema),
        tables.map(({ t }) => t.statements.table.name),
        tables.map(({ state }) => state),
        tables.map(({ t }) => t.copyGeneration),
      ],
    );
  }

  /** The events between two ticks, as a batch. */
  private async tickRange(queueId: number, startTick: string, endTick: string): Promise<BatchInfo> {
    const provider = await this.lockedProvider();
    const { rows } = await provider.query<{ tick_id: string; snap: string; tick_time: Date; seq: string }>(
      'SELECT tick_id, tick_snapshot::text AS snap, tick_time, tick_event_seq AS seq FROM pgconvey.tick WHERE queue_id = $1 AND tick_id IN ($2, $3)',
      [queueId, startTick, endTick],
    );
    const start = rows.find((r) => r.tick_id === startTick);
    const end = rows.find((r) => r.tick_id === endTick);
    if (!start || !end) throw new Error(`ticks ${startTick} and ${endTick} of the queue are needed to merge a copy, and one is gone`);
    return {
      queueId,
      startTick,
      endTick,
      startSnapshot: start.snap,
      endSnapshot: end.snap,
      startTime: start.tick_time,
      endTime: end.tick_time,
      eventEstimate: String(BigInt(end.seq) - BigInt(start.seq)),
    };
  }

  /** Tables this subscriber applies (`ok`, and copied ones merging), by provider table id. */
  private async appliedTables(queueId: number, capturedVersion: string, states: readonly SubscriberTableRow[]): Promise<Map<number, AppliedTable>> {
    if (this.captured?.version !== capturedVersion || this.captured.queueId !== queueId) {
      // The version first, then the rows, in one statement's snapshot each: a change committed in
      // between gives a newer version than the one kept, so the next batch reads the rows again;
      // never older rows under a newer version.
      // The row shapes of those tables come in the same round trip (immutable: kept; loadShapes fetches newer
      // ones): a batch's first chunk then never waits for them behind the cursor's read-ahead FETCH.
      const provider = await this.lockedProvider();
      const read = (await provider.query(
        `${format(CAPTURED_VERSION_SQL, this.options.queue)}; SELECT table_id, table_schema, table_name, key_columns, columns FROM pgconvey.captured_table WHERE queue_id = ${Number(queueId)}; ` +
          `SELECT s.shape_id, s.table_id, s.columns, s.key_columns, s.generated FROM pgconvey.table_shape s WHERE s.table_id IN (SELECT c.table_id FROM pgconvey.captured_table c WHERE c.queue_id = ${Number(queueId)})`,
      )) as unknown as pg.QueryResult[];
      this.captured = { queueId, version: read[0]!.rows[0].v as string, rows: read[1]!.rows as CapturedRow[] };
      this.keepShapes(read[2]!.rows as ShapeRow[]);
    }
    const captured = this.captured;
    const applied = { rows: states };
    const wanted = new Map(applied.rows.map((r) => [`${r.table_schema}\u0000${r.table_name}`, r]));
    const out = new Map<number, AppliedTable>();
    const found: Array<{ r: CapturedRow; sub: SubscriberTableRow; table: CapturedTable; cacheKey: string }> = [];
    for (const r of captured.rows) {
      const sub = wanted.get(`${r.table_schema}\u0000${r.table_name}`);
      if (!sub) continue;
      const table: CapturedTable = { tableId: r.table_id, schema: r.table_schema, name: r.table_name, keyColumns: r.key_columns, columns: r.columns };
      found.push({ r, sub, table, cacheKey: JSON.stringify(table) });
    }
    // The tables not prepared yet (all of them in the first batch), in the same few catalog round trips.
    const missing = found.filter((f) => !this.statements.has(f.cacheKey));
    const prepared = await prepareTables(this.subscriber, missing.map((f) => f.table));
    missing.forEach((f, i) => this.statements.set(f.cacheKey, prepared[i]!));
    for (const { r, sub, cacheKey } of found) {
      const st = this.statements.get(cacheKey)!;
      const merging = sub.state === 'catching-up' && sub.copy_snapshot !== null;
      out.set(r.table_id, { statements: st, copySnapshot: merging ? sub.copy_snapshot : null, copyTick: merging ? sub.copy_tick : null, copyGeneration: sub.copy_generation });
    }
    return out;
  }
}

/** work_mem of a batch's subscriber transaction: a chunk's rows are sorted by key before they are applied (apply.ts inKeyOrder). */
const APPLY_SORT_MEMORY = '64MB';

/** Batches of at most this many event ids are read by the poll's round trip (as the cursor's first FETCH would). */
const SMALL_BATCH = 500;

/**
 * The merging tables whose copy's tick is before `startTick` (their events from it to `startTick` were
 * skipped while they were copied), grouped by that tick, earliest first.
 */
function replayGroups(merging: readonly AppliedTable[], startTick: string): Array<[string, AppliedTable[]]> {
  const groups = new Map<string, AppliedTable[]>();
  for (const t of merging) {
    if (BigInt(t.copyTick!) >= BigInt(startTick)) continue;
    const g = groups.get(t.copyTick!);
    if (g) g.push(t);
    else groups.set(t.copyTick!, [t]);
  }
  return [...groups].sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
}

/** A set of table ids as small_batch_events takes them (sorted, comma-separated). */
function tableIdsKey(ids: ReadonlySet<number>): string {
  return [...ids].sort((a, b) => a - b).join(',');
}

/** The poll's small_batch_events rows as the batch's events, when they are the whole batch (else: read it by the cursor). */
function smallBatch(tables: string | undefined, result: pg.QueryResult | undefined, estimate: string | undefined): { tables: string; events: QueueEvent[] } | undefined {
  if (tables === undefined || result === undefined || estimate === undefined || BigInt(estimate) > BigInt(SMALL_BATCH) || result.rows.length > SMALL_BATCH) return undefined;
  const events = result.rows.map((r): QueueEvent => ({ txid: r.ev_txid, table: r.ev_table, op: r.ev_op, shape: r.ev_shape, key: r.ev_key, data: r.ev_data }));
  return { tables, events };
}
