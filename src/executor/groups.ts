/**
 * Groups of actions in one transaction: consecutive groupable actions on the
 * same database (capture_table, add_subscriber_table: one engine call each)
 * share a transaction, so 2,000 tables cost a commit (a WAL flush) per group,
 * not per action. A group ends after GROUP.maxActions actions or GROUP.maxMs
 * of work (the locks it took, e.g. on captured tables, are held only that
 * long), or at an action that fails — its lock probe included: inside a group
 * each statement waits at most GROUP.lockProbeMs (or the session's shorter
 * lock_timeout) for a lock, so a group never waits holding the locks it took.
 * A failed action rolls the whole group back; the actions before it run again
 * as a shorter group, and the caller then runs the failed one on its own, as
 * an ungrouped action runs (its own transaction, the session's lock_timeout,
 * its error reported as usual). A group killed half way commits nothing: the
 * next apply plans its actions again. Progress hooks fire for each action of a
 * group once it committed. Consecutive actions of a kind with a batch call
 * (ActionModule.executeBatch: capture_table's pgconvey.add_tables) run as
 * batches in the group, each sized to what is left of the group's time at the
 * pace of its actions so far (the first: GROUP.firstBatch); a batch runs under
 * a savepoint, and one that fails is rolled back to it and its actions run
 * one by one, as above.
 */
import type pg from 'pg';
import type { Action } from '../actions/index.js';

export const GROUP = { maxActions: 200, maxMs: 250, lockProbeMs: 50, firstBatch: 8 } as const;

/** The batch call for a run of actions of `action`'s kind, or undefined when the kind has none. */
export type BatchOf = (action: Action) => ((actions: Action[]) => Promise<void>) | undefined;

/** Opens a group's transaction with its lock probe (the session's lock_timeout when it is shorter, and not 0). */
const BEGIN_SQL = `BEGIN; SELECT pg_catalog.set_config('lock_timeout',
  CASE WHEN s.setting::pg_catalog.int8 BETWEEN 1 AND ${GROUP.lockProbeMs} THEN s.setting ELSE '${GROUP.lockProbeMs}' END, true)
  FROM pg_catalog.pg_settings s WHERE s.name = 'lock_timeout'`;

export interface GroupHooks {
  onStart?(action: Action): void;
  onDone?(action: Action, ms: number): void;
}

/**
 * Runs a prefix of `candidates` (groupable, consecutive, on the database of `client`) in one transaction
 * and returns how many committed: fewer than all when the group was full or an action failed (the next one
 * is then for the caller to run on its own). A failure of BEGIN/COMMIT itself (a lost connection) is thrown.
 */
export async function runGroup(client: pg.Client, candidates: readonly Action[], execute: (action: Action) => Promise<void>, hooks: GroupHooks = {}, batchOf?: BatchOf): Promise<number> {
  let limit = Math.min(candidates.length, GROUP.maxActions);
  while (limit > 0) {
    const done: Array<[Action, number]> = [];
    const started = Date.now();
    await client.query(BEGIN_SQL);
    let failedAt = -1;
    let singlesUntil = 0; // the actions of a failed batch run one by one
    for (let i = 0; i < limit; ) {
      if (i > 0 && Date.now() - started >= GROUP.maxMs) break;
      const batch = i >= singlesUntil ? batchOf?.(candidates[i]!) : undefined;
      if (batch) {
        const slice = batchSlice(candidates, i, limit, done.length ? (Date.now() - started) / done.length : null, Date.now() - started);
        await client.query('SAVEPOINT pgconvey_batch');
        const t0 = Date.now();
        try {
          await batch(slice);
        } catch {
          await client.query('ROLLBACK TO SAVEPOINT pgconvey_batch');
          singlesUntil = i + slice.length;
          continue;
        }
        await client.query('RELEASE SAVEPOINT pgconvey_batch');
        const ms = (Date.now() - t0) / slice.length;
        for (const a of slice) done.push([a, ms]);
        i += slice.length;
        continue;
      }
      const t0 = Date.now();
      try {
        await execute(candidates[i]!);
      } catch {
        failedAt = i;
        break;
      }
      done.push([candidates[i]!, Date.now() - t0]);
      i++;
    }
    if (failedAt >= 0) {
      await client.query('ROLLBACK');
      limit = failedAt; // the actions before it, again; the failed one is the caller's to run alone
      continue;
    }
    await client.query('COMMIT');
    for (const [action, ms] of done) {
      hooks.onStart?.(action);
      hooks.onDone?.(action, ms);
    }
    return done.length;
  }
  return 0;
}

/**
 * The next batch from `at`: the actions of its kind that follow it (up to `limit`), as many as fit in what is
 * left of the group's time at `pace` ms per action (GROUP.firstBatch before any action ran), at least one.
 */
function batchSlice(candidates: readonly Action[], at: number, limit: number, pace: number | null, elapsed: number): Action[] {
  let n = 1;
  while (at + n < limit && candidates[at + n]!.kind === candidates[at]!.kind) n++;
  const fit = pace === null ? GROUP.firstBatch : Math.floor((GROUP.maxMs - elapsed) / Math.max(pace, 0.1));
  return candidates.slice(at, at + Math.max(1, Math.min(n, fit)));
}
