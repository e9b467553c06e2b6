/**
 * `undo`: a switchover that stopped half way is undone — `back` (the node
 * that was writable before it) takes writes again, `other` stays fenced as
 * standby, and a reverse queue set up for the switchover (never used:
 * nothing was handed over) is dropped; a root's queue frozen by the hand-over
 * of a switchover to a branch ticks again.
 */
import type pg from 'pg';
import type { DatabaseSpec } from '../../config/index.js';
import { inTransaction } from '../../db/index.js';
import { dropReverseQueue, isFenced, liftFence, queueRole, readFence, removeReverseSubscription, reverseQueueName, thawQueue } from '../../engine/index.js';
import { standby } from './fence.js';
import type { SwitchoverReport } from './report.js';
import type { SwitchoverRun } from './run.js';

export interface UndoInput {
  back: pg.Client;
  other: pg.Client;
  backDb: DatabaseSpec;
  otherDb: DatabaseSpec;
  /** What is undone, for the report. */
  what: string;
  /** The forward queue's reverse queue exists on `other` and goes. */
  dropReverse: boolean;
}

export async function undo(run: SwitchoverRun, input: UndoInput): Promise<SwitchoverReport> {
  const { back, other, backDb, otherDb, what } = input;
  const backNode = run.report.to.node;
  const otherNode = run.report.from.node;
  const forwardQueue = run.topology.queue.name;
  const consumer = run.topology.root.name;
  const reverseQueue = input.dropReverse ? reverseQueueName(forwardQueue) : null;
  await run.confirm();
  run.fenced = true;
  await run.step('undo', async () => {
    // The other node first (fenced as standby, its unused reverse queue dropped), then `back` lifts its fence.
    const dropReverse = async () => {
      if (reverseQueue) await dropReverseQueue(other, forwardQueue, consumer);
    };
    // A node the switchover never got to fence stays as it was.
    if (isFenced(await readFence(other))) await standby(run, other, otherDb, { node: otherNode, to: backNode }, dropReverse);
    else await inTransaction(other, dropReverse);
    // A cascade's root whose queue the hand-over had frozen (never handed over: the branch's queue follows it still) ticks again.
    const thaw = (await queueRole(back, forwardQueue)).kind === 'frozen';
    await inTransaction(back, async () => {
      if (thaw) await thawQueue(back, forwardQueue, null, backNode);
      run.report.writeUnavailableMs = (await liftFence(back)).windowMs;
      if (reverseQueue) await removeReverseSubscription(back, forwardQueue, consumer);
    });
    return { value: null, detail: `${what} (${backDb.display}); "${otherNode}" (${otherDb.display}) stays fenced${reverseQueue ? `, its unused reverse queue "${reverseQueue}" dropped` : ''}` };
  });
  run.report.outcome = 'undone';
  run.report.note = what;
  return run.report;
}
