/**
 * compare: proves a subscriber's copy of each replicated table equals the
 * provider's, at the same queue position. Per table: lock it on the provider
 * in SHARE mode, force a tick T, wait until the subscriber has applied T,
 * take a REPEATABLE READ snapshot on both sides, release the lock — both
 * snapshots now hold the same state of the table. The lock never keeps the
 * table's writers waiting longer than a bound: compare requests it only when
 * no other transaction holds a conflicting lock on the table (it waits for
 * those without queueing, and says for which), with a short lock_timeout,
 * and lets go when the subscriber does not apply T quickly, then tries
 * again. Then count and checksum the table in key-range chunks on both
 * sides, and narrow every chunk that differs down to the exact keys. After a
 * switchover the live direction is compared: the new node through the
 * reverse queue to the old one. This file runs the parts beside it:
 * resolve (pairs and tables), pair, consistency-point, chunks, hashing,
 * narrow, report.
 */
import type { DesiredState } from '../../config/index.js';
import { settingsOf, type CompareOptions } from './options.js';
import { comparePair } from './pair.js';
import type { CompareReport, TableComparison } from './report.js';
import { resolvePlans } from './resolve.js';

export * from './report.js';
export { COMPARE_DEFAULTS, type CompareOptions } from './options.js';
export { CompareError } from './error.js';

/** Compares every selected table of every selected provider → subscriber pair of `state`. */
export async function compareState(state: DesiredState, options: CompareOptions = {}): Promise<CompareReport> {
  const opts = settingsOf(options);
  const plans = await resolvePlans(state, options);
  const tables: TableComparison[] = [];
  for (const plan of plans) tables.push(...(await comparePair(plan, opts)));
  const compared = tables.filter((t) => t.compared);
  return { file: state.file, tables, equal: compared.every((t) => t.equal) };
}
