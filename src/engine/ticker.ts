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

  constructor(
    private readonly client: pg.Client,
    private readonly queue: string,
    private readonly maintenanceEveryMs = 5_000,
  ) {}

  /** Takes the queue's ticker lock; throws TickerBusyError when another process holds it. */
  async start(): Promise<void> {
    const { rows } = await this.client.query<{ ok: boolean }>(tryPieceLockSql("'ticker:' || $1"), [this.queue]);
    if (!rows[0]!.ok) throw new TickerBusyError(this.queue);
  }

  async step(now = Date.now()): Promise<TickerStep> {
    const result: TickerStep = { tick: await tick(this.client, this.queue) };
    if (now - this.lastMaintenance >= this.maintenanceEveryMs) {
      this.lastMaintenance = now;
      result.maintenance = await maintainQueue(this.client, this.queue);
    }
    return result;
  }
}
