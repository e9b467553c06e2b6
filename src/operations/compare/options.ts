/** How a compare is asked for: which tables, queue and node(s), and the bounds it keeps to (chunk sizes, lock pauses, waits). */
import type { CompareProgress } from './report.js';

export interface CompareOptions {
  /** Only these tables (`schema.table`, or `table` for public); default every replicated table. */
  tables?: string[];
  /** Only this queue. */
  queue?: string;
  /** Only this node, against its provider (a branch's subscriber against the branch). */
  node?: string;
  /** Only these two nodes of one queue: the second against the first, at one tick of the root. */
  nodes?: string[];
  /** Rows per chunk, cut in the provider's key order. */
  chunkRows?: number;
  /** A differing range is split until it holds at most this many provider rows, then read row by row. */
  narrowRows?: number;
  /** Keys listed per kind (missing, extra, changed) per differing range; the rest are counted. */
  listLimit?: number;
  /** Differing ranges narrowed per table; further differing chunks are only counted. */
  maxRanges?: number;
  /**
   * The longest one attempt keeps a table's writers waiting, from the lock request to its release:
   * when the subscriber has not applied the tick by then, the lock is released and compare tries again.
   */
  maxPauseMs?: number;
  /**
   * When an attempt is released because the subscriber was too slow, the next one may hold the lock
   * 1.5 times as long, up to this: a slow subscriber makes the pause longer rather than compare endless.
   */
  maxPauseCapMs?: number;
  /** lock_timeout of each LOCK request (the part of maxPauseMs spent queued behind a writer that just began). */
  lockTimeoutMs?: number;
  /** How long compare tries to lock one table (waiting, without queueing, for the transactions that hold it) before it gives up. */
  lockWaitMs?: number;
  /** While a table cannot be locked at its first visit, compare goes on with the pair's other tables after this long and comes back to it. */
  revisitAfterMs?: number;
  /** Give up when the subscription's applied position has not moved for this long while waiting for a tick. */
  applyStallMs?: number;
  onProgress?: (progress: CompareProgress) => void;
}

type Tunables = Required<Omit<CompareOptions, 'tables' | 'queue' | 'node' | 'nodes' | 'onProgress'>>;

export const COMPARE_DEFAULTS: Readonly<Tunables> = {
  chunkRows: 50_000,
  narrowRows: 1_000,
  listLimit: 20,
  maxRanges: 20,
  maxPauseMs: 100,
  maxPauseCapMs: 1_000,
  lockTimeoutMs: 30,
  lockWaitMs: 300_000,
  revisitAfterMs: 2_000,
  applyStallMs: 30_000,
};

/** The options with every default filled in. */
export type Settings = Tunables & CompareOptions;

export function settingsOf(options: CompareOptions): Settings {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return { ...COMPARE_DEFAULTS, ...given };
}
