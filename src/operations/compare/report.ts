/**
 * What a compare found, as plain data (render/compare.ts turns it into text
 * or JSON): per table the two sides' row counts, the chunks compared, the
 * differing key ranges narrowed to keys, and what taking the table's
 * consistency point cost its writers; and the progress reported meanwhile.
 */

/** A transaction holding a lock on a table that conflicts with compare's SHARE lock. */
export interface BlockingTransaction {
  /** Null for a prepared transaction. */
  pid: number | null;
  /** The prepared transaction's name (pg_prepared_xacts.gid), for one. */
  preparedGid: string | null;
  user: string | null;
  applicationName: string | null;
  /** pg_stat_activity.state: `active`, `idle in transaction`, … */
  state: string | null;
  /** When its transaction began. */
  since: Date | null;
}

/** A transaction compare waited for before it requested a table's lock, and for how long. */
export interface WaitedFor extends BlockingTransaction {
  waitedMs: number;
}

export interface CompareProgress {
  queue: string;
  node: string;
  table: string;
  /** Set while compare waits, without queueing, for transactions holding the table before it locks it. */
  waitingFor?: BlockingTransaction[];
  rowsDone: number;
  /** The provider's estimate of the table's rows, when it has one. */
  rowsEstimated: number | null;
  chunksDone: number;
  seconds: number;
}

/** Key column name → value as text. */
export type KeyValues = Record<string, string>;

export interface DifferingRange {
  /** First and last differing key of the range, in key order (inclusive). */
  from: KeyValues;
  to: KeyValues;
  providerRows: number;
  subscriberRows: number;
  /** Keys on the provider and not on the subscriber (at most listLimit; missingCount has them all). */
  missing: KeyValues[];
  extra: KeyValues[];
  /** Keys on both sides whose rows differ. */
  changed: KeyValues[];
  missingCount: number;
  extraCount: number;
  changedCount: number;
}

export interface TableComparison {
  /** The queue compared along: the file's queue, or after a switchover its reverse queue. */
  queue: string;
  /** `reverse`: after a switchover, the new node (provider) → the old one (subscriber) through the reverse queue. */
  direction: 'forward' | 'reverse';
  /** The subscriber node (the side compared). */
  node: string;
  /** The node it is compared against: its provider, or the first of --nodes. */
  providerNode: string;
  /** Password-free displays of the two databases. */
  provider: string;
  subscriber: string;
  /** `schema.table`. */
  table: string;
  keyColumns: string[];
  /** The table's state on the subscriber; only `ok` tables are compared. */
  state: string;
  compared: boolean;
  providerRows: number | null;
  subscriberRows: number | null;
  /** Null when not compared. */
  equal: boolean | null;
  chunks: number;
  differingRanges: DifferingRange[];
  /** Differing ranges beyond maxRanges: counted, not narrowed or listed. */
  moreDifferingRanges: number;
  /**
   * How long writers of the table could have been held up on the provider: the sum over lock
   * attempts of lock request → release (a writer waits at most one of them).
   */
  writersPausedMs: number | null;
  /** The longest of those attempts: the most any one writer waited for compare. */
  writersLongestPauseMs: number | null;
  /** Lock requests made (attempts released because the subscriber was slow, or timed out, count). */
  lockAttempts: number | null;
  /** Transactions compare waited for, without blocking anyone, before it could request the lock. */
  waitedFor: WaitedFor[];
  seconds: number | null;
}

export interface CompareReport {
  file: string;
  tables: TableComparison[];
  /** Every compared table equal (and at least one was compared, or none was asked for explicitly). */
  equal: boolean;
}

/** `transaction PID 4242 (app "billing", user alice, idle in transaction, since 2024-05-01T10:00:00.000Z)` */
export function describeHolder(h: BlockingTransaction): string {
  const what = h.pid !== null ? `transaction PID ${h.pid}` : `prepared transaction "${h.preparedGid ?? '?'}"`;
  const details = [
    h.applicationName ? `application "${h.applicationName}"` : null,
    h.user ? `user ${h.user}` : null,
    h.state,
    h.since ? `since ${h.since.toISOString()}` : null,
  ].filter(Boolean);
  return details.length ? `${what} (${details.join(', ')})` : what;
}
