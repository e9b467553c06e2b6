/** How a switchover is asked for: the queue and target, the reverse flag, the bounds it keeps to, and the caller's hooks. */
import type { StepReport, SwitchoverReport } from './report.js';

export interface SwitchoverOptions {
  /** The queue to switch; may be left out when the file has one queue. */
  queue?: string;
  /** The node that becomes writable: a leaf of the root (forward), or the root (rollback). */
  to: string;
  /** Set up replication from the new node back to the old one (forward only). */
  reverse: boolean;
  maxLagMs: number;
  /** Sequences on the new node end this many increments past the old node's values. */
  sequenceMargin: number;
  /**
   * `counts`: compare row counts of every table inside the write window (a count(*) per table on
   * both sides: it grows with the data, ~0.3 s for 2M rows here). `none`: skip it — for large
   * databases, after a `pgconvey compare` shortly before.
   */
  verify?: 'counts' | 'none';
  /** How long to wait for sessions to end and for the queue to drain. */
  timeoutMs: number;
  /**
   * Refresh the materialized views of the node taking writes before the hand-over (default true):
   * nothing replicates them, so there they hold what was computed there last (nothing after a schema
   * copy). Inside the write window: each REFRESH adds its time to it.
   */
  refreshMatviews?: boolean;
}

export const SWITCHOVER_DEFAULTS = { maxLagMs: 5_000, sequenceMargin: 1_000, timeoutMs: 60_000 } as const;

export interface SwitchoverHooks {
  onStep?(step: StepReport, report: SwitchoverReport): void;
  /** Asked after the preconditions pass, before anything changes; false cancels. */
  confirm?(report: SwitchoverReport): Promise<boolean>;
}
