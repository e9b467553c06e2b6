/**
 * The ticker of one queue on its root: ticks when a tick is due (the SQL
 * function decides: by event count, lag, or idle period) and runs queue
 * maintenance (rotation, old ticks) now and then. One ticker per queue at a
 * time, enforced by a session advisory lock, so two processes never tick the
 * same queue.
 */
import type pg from 'pg';
import { maintainQueue, tick, type MaintenanceResult } from './api.js';
import { PgconveyError } from '../kernel/index.js';
import { tryPieceLockSql } from './locks.js';
import { ENGINE_ROW_SQL, LOCK_SHARED_SQL, UNLOCK_SHARED_SQL, engineFromRow, engineIsSql } from './engine-lock.js';
import type { InstalledEngine } from './install.js';
import { sqlFormat as format } from '../kernel/index.js';

/** Another session holds the queue's ticker lock: code `ticker_busy`. */
export class TickerBusyError extends PgconveyError {
  constructor(queue: string) {
    super('ticker_busy', `another ticker is already running for queue "${queue}"`, 'one ticker per queue: `pgconvey status` names the process that runs it');
  }
}

export interface TickerStep {
  tick: string | null;
  maintenance?: MaintenanceResult;
  /** How long ago the queue's last tick was made (by this ticker or a worker's keep_up_tick), when read. */
  lastTickAgeMs?: number;
}

/** The longest the ticker waits between two calls that ticked nothing, whatever the queue's max lag. */
export const TICKER_MAX_WAIT_MS = 100;

export class Ticker {
  private lastMaintenance = 0;
  /**
   * How long after a tick no other can be due but by ticker_max_count: the queue's ticker_min_interval
   * (a subscriber that keeps up waits that long), at most its ticker_max_lag; in ms, read at start and
   * with each maintenance. The daemon need not ask sooner.
   */
  quietAfterTickMs = 0;
  /** The queue's ticker_max_lag in ms (read with quietAfterTickMs). */
  maxLagMs = 0;

  constructor(
    private readonly client: pg.Client,
    private readonly queue: string,
    private readonly maintenanceEveryMs = 5_000,
  ) {}

  /** Takes the queue's ticker lock; throws TickerBusyError when another process holds it. */
  async start(): Promise<void> {
    const { rows } = await this.client.query<{ ok: boolean }>(tryPieceLockSql("'ticker:' || $1"), [this.queue]);
    if (!rows[0]!.ok) throw new TickerBusyError(this.queue);
    await this.readMinInterval();
  }

  private async readMinInterval(): Promise<void> {
    const { rows } = await this.client.query<{ ms: number | null; lag: number | null }>(
      "SELECT (extract(epoch FROM least((to_jsonb(q) ->> 'ticker_min_interval')::interval, q.ticker_max_lag)) * 1000)::float8 AS ms," +
        ' (extract(epoch FROM q.ticker_max_lag) * 1000)::float8 AS lag FROM pgconvey.queue q WHERE q.queue_name = $1',
      [this.queue],
    );
    this.quietAfterTickMs = Number(rows[0]?.ms ?? 0);
    this.maxLagMs = Number(rows[0]?.lag ?? 0);
  }

  /**
   * How long to wait before the next call, after `step`. After a tick: the
   * queue's min interval (no tick but by max_count can be due sooner). After
   * a call that ticked nothing while the last tick is younger than max_lag —
   * ticks come regularly, from this ticker or from a subscriber that keeps
   * up and ticks for itself in its poll (keep_up_tick): until that tick is
   * max_lag old, when events waiting since are due anyway; a keeping-up
   * subscriber's next tick comes sooner, so the ticker does not race it
   * every few ms. An older last tick (an idle queue, the first events after
   * it due at once): `pollMs`. Never less than `pollMs`, never more than
   * TICKER_MAX_WAIT_MS; the max_count rule waits at most that long, its
   * batch merging the rest.
   */
  waitAfter(step: TickerStep, pollMs: number): number {
    if (step.tick) return Math.max(pollMs, this.quietAfterTickMs);
    if (step.lastTickAgeMs === undefined || step.lastTickAgeMs >= this.maxLagMs) return pollMs;
    return Math.min(TICKER_MAX_WAIT_MS, Math.max(pollMs, this.maxLagMs - step.lastTickAgeMs));
  }

  /** Whether the next step runs the queue's maintenance (step) rather than only asking for a tick (guardedTick). */
  maintenanceDue(now = Date.now()): boolean {
    return now - this.lastMaintenance >= this.maintenanceEveryMs;
  }

  /**
   * The ticker's frequent call in ONE round trip, under the engine guard
   * (daemons/engine-guard.ts) as withEngine runs it: the install lock taken
   * shared; then, in a READ COMMITTED transaction (each statement its own
   * snapshot, taken after the lock was granted), the installed engine read,
   * and ticker() asked only when that engine is `version`/`content`; the
   * commit; the lock released. `check` then judges the engine read (throws
   * on a mismatch: no tick was taken). One ticker() call per transaction:
   * locks it takes end with it (a wait for a due tick inside one statement
   * held the event tables' locks across calls and deadlocked with a queue's
   * removal). An error (rolled back, the lock released): null, the caller
   * takes the long way.
   */
  async guardedTick(version: number, content: string, check: (installed: InstalledEngine | null) => void): Promise<TickerStep | null> {
    let results: pg.QueryResult[];
    const call = format('SELECT pgconvey.ticker(%L) AS id', this.queue);
    const age = format(
      'SELECT (extract(epoch FROM clock_timestamp() - t.tick_time) * 1000)::float8 AS age FROM pgconvey.tick t' +
        ' WHERE t.queue_id = (SELECT q.queue_id FROM pgconvey.queue q WHERE q.queue_name = %L) ORDER BY t.tick_id DESC LIMIT 1',
      this.queue,
    );
    try {
      results = (await this.client.query(
        `BEGIN ISOLATION LEVEL READ COMMITTED; ${LOCK_SHARED_SQL}; ${ENGINE_ROW_SQL}; ` +
          `${call} WHERE ${engineIsSql(version, content)}; ${age}; COMMIT; ${UNLOCK_SHARED_SQL}`,
      )) as unknown as pg.QueryResult[];
    } catch {
      // The long way says what is wrong (an engine without pgconvey.engine: an older one,
      // engine_not_upgraded; a broken connection) or works.
      await this.client.query('ROLLBACK').catch(() => undefined);
      await this.client.query(UNLOCK_SHARED_SQL).catch(() => undefined);
      return null;
    }
    check(engineFromRow(results[2]!.rows[0]));
    const ageMs = results[4]!.rows[0]?.age as number | undefined;
    return { tick: (results[3]!.rows[0]?.id as string | null | undefined) ?? null, ...(ageMs === undefined ? {} : { lastTickAgeMs: Number(ageMs) }) };
  }

  async step(now = Date.now()): Promise<TickerStep> {
    const result: TickerStep = { tick: await tick(this.client, this.queue) };
    if (now - this.lastMaintenance >= this.maintenanceEveryMs) {
      this.lastMaintenance = now;
      result.maintenance = await maintainQueue(this.client, this.queue);
      await this.readMinInterval();
    }
    return result;
  }
}
