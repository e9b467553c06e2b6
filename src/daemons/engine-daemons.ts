/**
 * The engine's ticker and apply worker as daemons: each wraps the engine
 * object in the shared run loop, with its own connections, structured logs,
 * and the errors that should stop it rather than be retried. Every step runs
 * under the engine guard (engine-guard.ts): an engine upgraded under a
 * daemon stops it instead of running this code against other SQL.
 */
import type pg from 'pg';
import type { ConnectionSpec } from '../config/connection.js';
import { connect } from '../db/index.js';
import {
  ApplyWorker,
  ENGINE_CONTENT,
  ENGINE_VERSION,
  LostPositionError,
  NotSubscribedError,
  SubscriberSchemaError,
  Ticker,
  clearPiece,
  copiesDue,
  copyPendingTables,
  publishWatermark,
  recordPieceBackoff,
  recordPieceRunning,
  recordWorkerError,
  ScriptApplyError,
  type StepGuards,
} from '../engine/index.js';
import { EngineMismatchError, checkEngine, engineMismatch, stepGuard, withEngine } from './engine-guard.js';
import type { LogFields, Logger } from './log.js';
import { errorText, runLoop, sleep } from './loop.js';
import type { DaemonEvents } from './metrics.js';

export interface TickerDaemonOptions {
  provider: ConnectionSpec;
  queue: string;
  /** The shortest wait between two of the ticker's calls (Ticker.waitAfter). */
  pollMs?: number;
  /** How often event tables are emptied and old ticks removed. */
  maintenanceEveryMs?: number;
  log: Logger;
  signal: AbortSignal;
  events?: Partial<DaemonEvents>;
}

export async function runTickerDaemon(options: TickerDaemonOptions): Promise<void> {
  const log = options.log.child('ticker');
  // Asking costs a read (no transaction id, nothing written) unless a tick is due; the shortest wait between
  // two calls (Ticker.waitAfter says how long each wait is).
  const pollMs = options.pollMs ?? 10;
  const database = options.provider.dbname ?? 'provider';
  await runLoop<{ client: pg.Client; ticker: Ticker }>({
    log,
    signal: options.signal,
    // An engine older than this code waits for its upgrade; one changed under the ticker stops it.
    isFatal: (err) => err instanceof EngineMismatchError && err.code === 'engine_changed',
    onError: () => options.events?.error?.('ticker'),
    onBackoff: (err, ms) => void withClient(options.provider, 'ticker', (c) => recordPieceBackoff(c, `ticker:${options.queue}`, errorText(err), ms)),
    async connect() {
      const client = await connect(options.provider, 'ticker');
      const ticker = new Ticker(client, options.queue, options.maintenanceEveryMs);
      try {
        await checkEngine(client, database);
        await ticker.start();
        await recordPieceRunning(client, `ticker:${options.queue}`).catch(() => undefined);
      } catch (err) {
        await client.end().catch(() => undefined);
        throw err;
      }
      log.info('ticking', { queue: options.queue });
      return { client, ticker };
    },
    async step({ client, ticker }) {
      // Most steps only ask for a tick: lock, engine check, ticker() and unlock in one round trip (guardedTick);
      // maintenance (every few seconds) and a database without the engine table take the long way.
      const quick = ticker.maintenanceDue() ? null : await ticker.guardedTick(ENGINE_VERSION, ENGINE_CONTENT, (installed) => {
        const problem = engineMismatch(installed, database);
        if (problem) throw problem;
      });
      const r = quick ?? (await withEngine([[client, database, 'idle']], () => ticker.step()));
      if (r.tick) options.events?.ticked?.(options.queue);
      if (r.maintenance?.tablesEmptied) log.info('emptied event tables', { queue: options.queue, tables: r.maintenance.tablesEmptied });
      if (r.maintenance?.ticksDeleted) log.debug('deleted old ticks', { queue: options.queue, count: r.maintenance.ticksDeleted });
      // Just ticked: nothing is due before the queue's min interval; else until the last tick is max_lag old
      // (Ticker.waitAfter: a subscriber that keeps up ticks for itself).
      return ticker.waitAfter(r, pollMs);
    },
    close: async ({ client }) => client.end(),
  });
  await withClient(options.provider, 'ticker', (c) => clearPiece(c, `ticker:${options.queue}`));
}

/** Runs `body` on a short-lived connection; best effort (the database may be what failed). */
async function withClient(spec: ConnectionSpec, role: string, body: (c: pg.Client) => Promise<void>): Promise<void> {
  try {
    const client = await connect({ ...spec, connect_timeout_ms: 5_000 }, role);
    try {
      await body(client);
    } finally {
      await client.end();
    }
  } catch {
    // The log line has it anyway.
  }
}

export interface WorkerDaemonOptions {
  provider: ConnectionSpec;
  subscriber: ConnectionSpec;
  queue: string;
  consumer: string;
  pollMs?: number;
  /** How many copies (a table, or a batch of small tables) run at the same time (default 2). */
  copyParallel?: number;
  /**
   * Range streams of one large table's copy (default 2; 1: never split). Each stream takes a provider and a
   * subscriber connection, so the copies use at most copyParallel × (4 + 2 × copyRanges) connections.
   */
  copyRanges?: number;
  maxBatchEvents?: number;
  log: Logger;
  signal: AbortSignal;
  events?: Partial<DaemonEvents>;
  /** First wait before reconnecting after an error (doubles up to a minute). */
  retryDelayMs?: number;
  /** Errors that mean "not set up yet" (not subscribed, table missing) are retried instead of stopping the worker. */
  waitForSetup?: boolean;
}

export function isFatalWorkerError(err: unknown): boolean {
  return err instanceof LostPositionError || err instanceof NotSubscribedError || err instanceof SubscriberSchemaError || err instanceof EngineMismatchError;
}

/** In `run` (waiting for setup): only a lost position, or an engine changed under the worker, stops it; an engine not yet upgraded is waited for. */
function isFatalWhileWaiting(err: unknown): boolean {
  return err instanceof LostPositionError || (err instanceof EngineMismatchError && err.code === 'engine_changed');
}

export async function runWorkerDaemon(options: WorkerDaemonOptions): Promise<void> {
  const log = options.log.child('worker');
  const pollMs = options.pollMs ?? 50;
  // Copies run only while this process holds the subscription's worker lock, so a second process
  // started for the same work (waiting for the lock) never copies the same tables at the same time.
  let holdsLock = false;
  // Wakes the copies the moment the worker takes its lock (a copy waits for it at every start).
  const lockTaken = new Set<() => void>();
  const setLock = (held: boolean) => {
    holdsLock = held;
    if (held) for (const wake of [...lockTaken]) wake();
  };
  const untilLockTaken = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        lockTaken.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      lockTaken.add(done);
    });
  const providerDb = options.provider.dbname ?? 'provider';
  const subscriberDb = options.subscriber.dbname ?? 'subscriber';
  // The copies stop with the worker: on shutdown, and when the worker stops on an error retrying cannot fix
  // (the copies would otherwise go on polling, with a connection open, for a worker that is gone).
  const copiesStop = new AbortController();
  const stopCopies = () => copiesStop.abort();
  options.signal.addEventListener('abort', stopCopies, { once: true });
  const copies = runCopyDaemon({ ...options, signal: copiesStop.signal }, () => holdsLock, untilLockTaken);
  try {
    await runWorker(options, log, pollMs, providerDb, subscriberDb, setLock);
  } finally {
    copiesStop.abort();
    options.signal.removeEventListener('abort', stopCopies);
    await copies.catch(() => undefined);
  }
  await withClient(options.subscriber, 'worker', (c) => clearPiece(c, workerPiece(options)));
}

/** The apply loop of runWorkerDaemon; `setLock` tells the copies whether this process holds the worker lock. */
async function runWorker(options: WorkerDaemonOptions, log: Logger, pollMs: number, providerDb: string, subscriberDb: string, setLock: (held: boolean) => void): Promise<void> {
  // Cascades: when a branch last published its watermark to its provider (engine/watermark.ts).
  let watermarkAt = 0;
  const applied = new AppliedSummary();
  await runLoop<{ provider: pg.Client; subscriber: pg.Client; worker: ApplyWorker; guards: StepGuards }>({
    log,
    signal: options.signal,
    isFatal: options.waitForSetup ? isFatalWhileWaiting : isFatalWorkerError,
    retryDelayMs: options.retryDelayMs,
    quietRepeats: true,
    onError: (err) => {
      options.events?.error?.('worker');
      // #17: a batch held by a script failing here or a table lacking columns (status has the error).
      if (err instanceof ScriptApplyError || err instanceof SubscriberSchemaError) options.events?.workerWaiting?.(options.queue, options.consumer, err.code);
      void recordError(options, errorText(err));
    },
    onBackoff: (err, ms) => void withClient(options.subscriber, 'worker', (c) => recordPieceBackoff(c, workerPiece(options), errorText(err), ms)),
    async connect() {
      const provider = await connect(options.provider, 'worker');
      let subscriber: pg.Client | undefined;
      try {
        await checkEngine(provider, providerDb);
        subscriber = await connect(options.subscriber, 'worker');
        await checkEngine(subscriber, subscriberDb);
        const worker = new ApplyWorker(provider, subscriber, { queue: options.queue, consumer: options.consumer, maxBatchEvents: options.maxBatchEvents });
        await worker.start();
        setLock(true);
        await recordPieceRunning(subscriber, workerPiece(options)).catch(() => undefined);
        log.info('applying', { queue: options.queue, consumer: options.consumer });
        // The subscriber is outside any transaction between batches; the provider's session is READ COMMITTED (ApplyWorker.start).
        const guards = { provider: stepGuard(provider, providerDb, 'read-committed'), subscriber: stepGuard(subscriber, subscriberDb, 'idle') };
        return { provider, subscriber, worker, guards };
      } catch (err) {
        await provider.end().catch(() => undefined);
        await subscriber?.end().catch(() => undefined);
        throw err;
      }
    },
    async step({ provider, subscriber, worker, guards }) {
      // The install lock in the step's own first messages (the poll, the batch's opening), and for the session
      // only around work outside their transactions (engine/worker.ts).
      const r = await worker.step(guards);
      // Cascades: a branch's watermark goes up to its provider about once a second (a leaf has none).
      // Best effort: a watermark that lags only keeps more events; its failure (say a lock_timeout behind the
      // provider's own batch) must not stop the apply.
      if (Date.now() - watermarkAt >= WATERMARK_EVERY_MS) {
        watermarkAt = Date.now();
        try {
          await withEngine([[provider, providerDb, 'read-committed'], [subscriber, subscriberDb, 'idle']], () => publishWatermark(provider, subscriber, options.queue, options.consumer));
        } catch (err) {
          if (err instanceof EngineMismatchError) throw err;
          log.warn('could not publish the branch watermark to the provider; retried in a second', { error: errorText(err) });
        }
      }
      if (r.kind === 'idle') return pollMs;
      if (r.kind === 'skipped') {
        log.info('batch was already applied; finished it', { start_tick: r.batch.startTick, end_tick: r.batch.endTick });
        return 0;
      }
      options.events?.batchApplied?.(options.queue, options.consumer, r.stats.events, r.durationMs / 1000);
      // #17 part 3: a table held on a schema mismatch, or resumed; logged once per change.
      for (const h of r.holds ?? []) {
        if (h.kind === 'held') log.warn('table held: the subscriber lacks columns its rows carry; the other tables go on', { table: h.table, columns: h.columns.join(', '), held_tick: h.tick, run_on_subscriber: h.alter.join(' ') });
        else if (h.kind === 'resumed') log.info('held table resumed: applying its held events', { table: h.table, columns: h.columns.join(', '), held_tick: h.tick });
        else log.warn('held table copied again: its held events are gone from the provider', { table: h.table, held_tick: h.tick });
      }
      for (const x of r.scripts ?? []) log.info(x.outcome === 'applied' ? 'applied script' : 'script recorded as applied here already; skipped it', { script: x.name, end_tick: r.batch.endTick });
      if (r.stats.events > 0) {
        log.debug('applied batch', {
          start_tick: r.batch.startTick,
          end_tick: r.batch.endTick,
          events: r.stats.events,
          deleted: r.stats.rowsDeleted,
          written: r.stats.rowsWritten,
          truncated: r.stats.truncates,
          ms: r.durationMs,
          lag_ms: r.lagMs,
        });
        const summary = applied.add(r.batch.endTick, r.stats, r.lagMs);
        if (summary) log.info('applied batches', summary);
      }
      return 0;
    },
    wait: ({ worker }, ms) => worker.waitForTick(ms),
    close: async ({ provider, subscriber, worker }) => {
      // The last applied batch is closed on the provider (best effort: else the next worker does it).
      await worker.finishPending().catch(() => undefined);
      setLock(false);
      await Promise.all([provider.end(), subscriber.end()]);
    },
  });
}

/** How often a branch's worker publishes its watermark to its provider. */
const WATERMARK_EVERY_MS = 1_000;

/** How often the worker logs what it applied (at info; each batch at debug). */
export const APPLIED_SUMMARY_EVERY_MS = 10_000;

/**
 * The worker's info line about what it applied: the first batch with rows
 * at once (a `run` just started shows it works), then at most one line per
 * APPLIED_SUMMARY_EVERY_MS for the batches since — a subscriber keeping up
 * applies ~50 batches a second, and a line each was millions of lines a day.
 */
export class AppliedSummary {
  private batches = 0;
  private events = 0;
  private deleted = 0;
  private written = 0;
  private truncated = 0;
  private maxLagMs = 0;
  private loggedAt: number | null = null;

  /** Counts a batch; returns the fields of the line to log now, or null. */
  add(endTick: string, stats: { events: number; rowsDeleted: number; rowsWritten: number; truncates: number }, lagMs: number, now = Date.now()): LogFields | null {
    this.batches++;
    this.events += stats.events;
    this.deleted += stats.rowsDeleted;
    this.written += stats.rowsWritten;
    this.truncated += stats.truncates;
    this.maxLagMs = Math.max(this.maxLagMs, lagMs);
    if (this.loggedAt !== null && now - this.loggedAt < APPLIED_SUMMARY_EVERY_MS) return null;
    const fields: LogFields = {
      batches: this.batches,
      events: this.events,
      deleted: this.deleted,
      written: this.written,
      truncated: this.truncated,
      end_tick: endTick,
      lag_ms: lagMs,
      max_lag_ms: this.maxLagMs,
      ...(this.loggedAt === null ? {} : { seconds: Math.round((now - this.loggedAt) / 100) / 10 }),
    };
    this.batches = this.events = this.deleted = this.written = this.truncated = this.maxLagMs = 0;
    this.loggedAt = now;
    return fields;
  }
}

/** The worker's piece: its advisory lock key. */
const workerPiece = (o: Pick<WorkerDaemonOptions, 'queue' | 'consumer'>) => `worker:${o.queue}:${o.consumer}`;

/**
 * The initial copies of a subscription, beside its apply worker: looks for
 * tables waiting for a copy and copies them, a few at a time, largest first.
 */
async function runCopyDaemon(options: WorkerDaemonOptions, holdsLock: () => boolean, untilLockTaken: (ms: number) => Promise<void>): Promise<void> {
  const log = options.log.child('copy');
  let waitingForLock = false;
  await runLoop<pg.Client>({
    log,
    signal: options.signal,
    retryDelayMs: options.retryDelayMs,
    onError: () => options.events?.error?.('copy'),
    // One lasting connection to look for work; a copy opens its own connections.
    connect: () => connect(options.subscriber, 'copy'),
    async step(subscriber) {
      // Not the worker's lock yet (the worker is starting): look again the moment it is taken (wait, below).
      waitingForLock = !holdsLock();
      if (waitingForLock) return LOCK_WAIT_MS;
      if (!(await copiesDue(subscriber, options.queue, options.consumer))) return 500;
      // A copy is long: it holds no install lock, but starts only on this pgconvey's engine (the worker stops on another).
      await checkEngine(subscriber, options.subscriber.dbname ?? 'subscriber');
      await copyPendingTables(
        () => connect(options.provider, 'copy'),
        () => connect(options.subscriber, 'copy'),
        options.queue,
        options.consumer,
        {
          parallel: options.copyParallel ?? 2,
          ranges: options.copyRanges,
          signal: options.signal,
          onCopied: (schema, table, r) => {
            options.events?.tableCopied?.(options.queue, options.consumer, `${schema}.${table}`, r.rows, r.bytes);
            log.info('copied table', { table: `${schema}.${table}`, rows: r.rows, bytes: r.bytes, ranges: r.ranges, format: r.format, ms: r.durationMs, ...(r.streamMs !== undefined ? { stream_ms: r.streamMs, index_ms: r.indexMs } : {}), ...(r.phasesMs ? { phases_ms: Object.entries(r.phasesMs).map(([k, v]) => `${k}:${v}`).join(' ') } : {}), mb_per_s: Number((r.bytes / 1e6 / (r.durationMs / 1000)).toFixed(1)) });
          },
          // Every failed copy: a log line, a count, and (on the table's row) its error for status; it is retried with backoff.
          onFailed: (schema, table, err) => {
            options.events?.copyFailed?.(options.queue, options.consumer, `${schema}.${table}`);
            log.error('copy failed; it is retried with backoff', { table: `${schema}.${table}`, error: errorText(err) });
          },
        },
      );
      return 500;
    },
    // Waiting for the lock: woken when the worker takes it; else the plain timer.
    wait: (_subscriber, ms) => (!waitingForLock ? sleep(ms, options.signal) : holdsLock() ? Promise.resolve() : untilLockTaken(ms)),
    close: (subscriber) => subscriber.end(),
  });
}

/** How long the copies wait for the worker's lock before they look again (they are woken when it is taken). */
const LOCK_WAIT_MS = 1_000;

/** Keeps the worker's last error on the subscriber for `status`; best effort (the subscriber may be what failed). */
async function recordError(options: WorkerDaemonOptions, message: string): Promise<void> {
  try {
    const client = await connect({ ...options.subscriber, connect_timeout_ms: 5_000 }, 'worker');
    try {
      await recordWorkerError(client, options.queue, options.consumer, message);
    } finally {
      await client.end();
    }
  } catch {
    // Unreachable subscriber, or an engine older than version 5: the log line has it anyway.
  }
}

