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
 * group once it committed.
 */
import type pg from 'pg';
import type { Action } from '../actions/index.js';

export const GROUP = { maxActions: 200, maxMs: 250, lockProbeMs: 50 } as const;

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
export async function runGroup(client: pg.Client, candidates: readonly Action[], execute: (action: Action) => Promise<void>, hooks: GroupHooks = {}): Promise<number> {
  let limit = Math.min(candidates.length, GROUP.maxActions);
  while (limit > 0) {
    const done: Array<[Action, number]> = [];
    const started = Date.now();
    await client.query(BEGIN_SQL);
    let failedAt = -1;
    for (let i = 0; i < limit; i++) {
      if (i > 0 && Date.now() - started >= GROUP.maxMs) break;
      const t0 = Date.now();
      try {
        await execute(candidates[i]!);
      } catch {
        failedAt = i;
        break;
      }
      done.push([candidates[i]!, Date.now() - t0]);
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
