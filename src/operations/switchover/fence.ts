/**
 * Steps 2 (`fence-target`, `fence`): fencing a node — the record and the
 * database default (new sessions start read-only) in one transaction, then
 * every other session that started before is ended, then the fence trigger
 * goes on every table (ending sessions whose locks keep it waiting). And
 * keeping a node fenced as standby after a hand-over. The fence itself is
 * engine/fence.ts.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { DatabaseSpec } from '../../config/index.js';
import { inTransaction } from '../../db/index.js';
import { fenceBlockers, installFenceTriggers, recordFence } from '../../engine/index.js';
import { SwitchoverError } from './error.js';
import type { StepName } from './report.js';
import { sleep, type SwitchoverRun } from './run.js';
import { endSessions, endedSession, terminate } from './sessions.js';

/** Who set a fence, as recorded with it: this process. */
const FENCED_BY = `pgconvey switchover, pid ${process.pid} on ${hostname()}`;

export interface FenceTarget {
  /** The node of the fenced database. */
  node: string;
  /** The node the switchover makes writable. */
  to: string;
  /** Start measuring the write window here (the node that becomes writable). */
  startWindow: boolean;
}

/** Fences a node for the switchover (step `fence-target` or `fence`). */
export async function fenceNode(run: SwitchoverRun, name: Extract<StepName, 'fence-target' | 'fence'>, client: pg.Client, database: DatabaseSpec, target: FenceTarget): Promise<void> {
  await run.step(name, async () => {
    await recordFence(client, { queue: run.topology.queue.name, node: target.node, switchoverTo: target.to, purpose: 'switchover', startWindow: target.startWindow, fencedBy: FENCED_BY });
    run.fenced = true;
    const ended = await endSessions(client, run.options.timeoutMs);
    run.report.endedSessions.push(...ended);
    const { tables, blockers } = await fenceTriggers(run, client, database);
    return { value: null, detail: `"${target.node}" (${database.display}): sessions start read-only, ${tables} tables refuse writes; ${ended.length + blockers} other session(s) ended` };
  });
}

/** Keeps a node fenced on purpose (standby): the record says so, and every table carries the fence trigger. */
export async function standby(run: SwitchoverRun, client: pg.Client, database: DatabaseSpec, fence: { node: string; to: string }, alsoInTransaction?: () => Promise<void>): Promise<void> {
  await recordFence(client, { queue: run.topology.queue.name, node: fence.node, switchoverTo: fence.to, purpose: 'standby', startWindow: false, fencedBy: FENCED_BY });
  await fenceTriggers(run, client, database);
  if (alsoInTransaction) await inTransaction(client, alsoInTransaction);
}

/** The fence trigger on every table of the node, ending the sessions whose locks keep it waiting; how many tables, how many sessions ended. */
export async function fenceTriggers(run: SwitchoverRun, client: pg.Client, database: DatabaseSpec): Promise<{ tables: number; blockers: number }> {
  const deadline = Date.now() + run.options.timeoutMs;
  let blockers = 0;
  for (;;) {
    try {
      return { tables: await installFenceTriggers(client, 200), blockers };
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
    }
    if (Date.now() > deadline) {
      throw new SwitchoverError('switchover_fence_blocked', `the fence triggers could not be set on ${database.display} within ${run.options.timeoutMs} ms: sessions keep locks on its tables`, '');
    }
    for (const r of await fenceBlockers(client)) {
      if (run.report.endedSessions.some((s) => s.pid === r.pid)) continue;
      await terminate(client, r.pid, r.usename);
      blockers++;
      run.report.endedSessions.push(endedSession(r));
    }
    await sleep(20);
  }
}
