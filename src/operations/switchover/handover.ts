/**
 * The last step, `handover`: the node taking writes lifts its fence (and
 * records what makes it the writable one) in one transaction, measuring the
 * write window; the other stays fenced as standby. Forward, the new node's
 * subscription is marked switched over; on the way back, the old node's
 * reverse subscription goes.
 */
import type pg from 'pg';
import type { DatabaseSpec } from '../../config/index.js';
import { inTransaction } from '../../db/index.js';
import { freezeQueue, liftFence, markSwitchedOver, promoteBranchQueue, removeReverseSubscription, reverseQueueName } from '../../engine/index.js';
import { applyThrough } from './drain.js';
import { standby } from './fence.js';
import type { SwitchoverRun } from './run.js';

/**
 * Forward: `neu` (the target) takes writes, `old` (the root) becomes standby. A branch (cascade): first the
 * root's queue is frozen (no tick after its last one, T) and the branch applies and re-queues through T;
 * then its queue becomes a root's (ticking here from T on) in the transaction that lifts its fence.
 */
export async function handOverForward(run: SwitchoverRun, old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<void> {
  const { queue, root, target, cascade } = run.topology;
  await run.step('handover', async () => {
    let cascadeDetail = '';
    if (cascade) {
      const last = await freezeQueue(old, queue.name, target.name);
      const by = await applyThrough({ provider: old, subscriber: neu, providerDb: oldDb, subscriberDb: newDb, queue: queue.name, consumer: target.name }, last, run.options.timeoutMs);
      cascadeDetail = `; queue "${queue.name}" on "${root.name}" frozen at tick ${last} (re-queued by ${by === 'switchover' ? "switchover's own worker" : 'the running worker'}), on "${target.name}" a root's queue from it`;
    }
    // NEW's fence lifts (a branch's queue becomes a root's) and its switched-over mark is set in one transaction; then OLD's fence becomes standby.
    await inTransaction(neu, async () => {
      if (cascade) await promoteBranchQueue(neu, queue.name, target.name);
      run.report.writeUnavailableMs = (await liftFence(neu)).windowMs;
      await markSwitchedOver(neu, queue.name, target.name);
    });
    await standby(run, old, oldDb, { node: root.name, to: target.name });
    return { value: null, detail: `"${target.name}" (${newDb.display}) takes writes; "${root.name}" stays fenced${cascadeDetail}` };
  });
}

/** Forward, resumed: the hand-over had committed on `neu` at `at`; only `old`'s standby fence was left to do. */
export async function finishHandOver(run: SwitchoverRun, old: pg.Client, oldDb: DatabaseSpec, at: Date): Promise<void> {
  const { root, target } = run.topology;
  await run.step('handover', async () => {
    await standby(run, old, oldDb, { node: root.name, to: target.name });
    return { value: null, detail: `the hand-over to "${target.name}" had committed at ${at.toISOString()}; "${root.name}" (${oldDb.display}) is fenced as standby` };
  });
}

/** The way back: `old` (the root) takes writes again, its reverse subscription removed; `leaf` stays fenced. */
export async function handOverBack(run: SwitchoverRun, old: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec, leaf: string, tables: number): Promise<void> {
  const forwardQueue = run.topology.queue.name;
  const consumer = run.topology.root.name;
  await run.step('handover', async () => {
    await inTransaction(old, async () => {
      run.report.writeUnavailableMs = (await liftFence(old)).windowMs;
      await removeReverseSubscription(old, forwardQueue, consumer);
    });
    run.report.reverse = { queue: reverseQueueName(forwardQueue), consumer, provider: newDb.name, tables, sequences: run.report.sequences };
    return { value: null, detail: `"${consumer}" (${oldDb.display}) takes writes, "${leaf}" stays fenced` };
  });
}
