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
}

export class Ticker {
  private lastMaintenance = 0;
  /**
   * How long after a tick no other can be due but by ticker_max_count: the queue's ticker_min_interval
   * (a subscriber that keeps up waits that long), at most its ticker_max_lag; in ms, read at start and
   * with each maintenance. The daemon need not ask sooner.
   */
  quietAfterTickMs = 0;

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
    const { rows } = await this.client.query<{ ms: number | null }>(
      "SELECT (extract(epoch FROM least((to_jsonb(q) ->> 'ticker_min_interval')::interval, q.ticker_max_lag)) * 1000)::float8 AS ms FROM pgconvey.queue q WHERE q.queue_name = $1",
      [this.queue],
    );
    this.quietAfterTickMs = Number(rows[0]?.ms ?? 0);
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
    try {
      results = (await this.client.query(
        `BEGIN ISOLATION LEVEL READ COMMITTED; ${LOCK_SHARED_SQL}; ${ENGINE_ROW_SQL}; ` +
          `${call} WHERE ${engineIsSql(version, content)}; COMMIT; ${UNLOCK_SHARED_SQL}`,
      )) as unknown as pg.QueryResult[];
    } catch {
      // The long way says what is wrong (an engine without pgconvey.engine: an older one,
      // engine_not_upgraded; a broken connection) or works.
      await this.client.query('ROLLBACK').catch(() => undefined);
      await this.client.query(UNLOCK_SHARED_SQL).catch(() => undefined);
      return null;
    }
    check(engineFromRow(results[2]!.rows[0]));
    return { tick: (results[3]!.rows[0]?.id as string | null | undefined) ?? null };
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
