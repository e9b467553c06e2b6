/**
 * What a switchover did, as plain data (render/switchover.ts turns it into
 * text or JSON): the steps with their timings, the sessions ended, the drain
 * tick, the sequences moved, the row counts compared, the reverse
 * replication, the materialized views refreshed and the measured write
 * window.
 */

export type StepName = 'preconditions' | 'fence-target' | 'fence' | 'drain' | 'sequences' | 'verify' | 'matviews' | 'reverse' | 'rejoin' | 'drop-reverse' | 'handover' | 'undo';

export interface StepReport {
  step: StepName;
  ms: number;
  detail: string;
}

export interface EndedSession {
  pid: number;
  user: string | null;
  applicationName: string;
  clientAddress: string | null;
  state: string | null;
  transactionStart: Date | null;
}

export interface TableCount {
  table: string;
  from: number;
  to: number;
}

export interface NodeRef {
  node: string;
  database: string;
  /** Password-free `user@host:port/dbname`. */
  display: string;
}

export interface SwitchoverReport {
  queue: string;
  direction: 'forward' | 'rollback';
  /** The node that was writable (and is fenced afterwards). */
  from: NodeRef;
  /** The node that is writable afterwards. */
  to: NodeRef;
  /** `undone`: a switchover that had stopped half way was undone (the node it had fenced takes writes again). */
  outcome: 'switched' | 'already-done' | 'undone';
  /** Why nothing was done (`already-done`), what was undone (`undone`), or what an earlier run had left to finish. */
  note: string | null;
  steps: StepReport[];
  endedSessions: EndedSession[];
  drainTick: string | null;
  drainedBy: 'running-worker' | 'switchover' | null;
  sequences: number;
  tables: TableCount[];
  /** The reverse replication set up (forward) or dropped (rollback). */
  reverse: { queue: string; consumer: string; provider: string; tables: number; sequences: number } | null;
  /** Materialized views of the node taking writes: refreshed, or not (skipped, or the REFRESH failed: why). Null before that step. */
  materializedViews: { refreshed: string[]; notRefreshed: Array<{ view: string; reason: string }> } | null;
  /**
   * From the switchover's first fence (recorded in the database, so a resumed
   * run measures from the first run's fence) to the hand-over's commit, on the
   * clock of the node that becomes writable: how long no node took writes.
   */
  writeUnavailableMs: number | null;
}

/** The report before any step ran. */
export function emptyReport(queue: string, direction: SwitchoverReport['direction'], from: NodeRef, to: NodeRef): SwitchoverReport {
  return {
    queue,
    direction,
    from,
    to,
    outcome: 'switched',
    note: null,
    steps: [],
    endedSessions: [],
    drainTick: null,
    drainedBy: null,
    sequences: 0,
    tables: [],
    reverse: null,
    materializedViews: null,
    writeUnavailableMs: null,
  };
}
