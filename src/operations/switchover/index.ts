/**
 * Switchover: the upgrade's last step, and its way back. `--to NEW` (a leaf
 * of the queue's root OLD, or a branch under it: cascade.ts) checks the preconditions, fences NEW (so nothing
 * written there escapes capture), then OLD, drains the queue to NEW, moves
 * NEW's sequences past OLD's, compares row counts, refreshes NEW's
 * materialized views, optionally sets up reverse replication NEW → OLD, and
 * hands NEW over (its fence lifts; OLD's stays, as standby). `--to OLD`
 * switches back over the reverse queue the same way. The state lives in the
 * databases (fences, marks, the reverse queue), every step is idempotent: an
 * interrupted switchover is finished by running it again, or undone by
 * switching to the node it came from. This file orders the steps (one file
 * each beside it); results are plain data with per-step timings that render
 * turns into text.
 */
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, NodeSpec } from '../../config/index.js';
import { connect } from '../../db/index.js';
import { isFenced, queueExists, queueRole, readFence, reverseQueueName, reverseSubscriptionOf, switchedOverAt } from '../../engine/index.js';
import { checkBranchTarget, rejoinStep } from './cascade.js';
import { drain } from './drain.js';
import { SwitchoverError } from './error.js';
import { fenceNode, fenceTriggers } from './fence.js';
import { finishHandOver, handOverBack, handOverForward } from './handover.js';
import { refreshMatviews } from './matviews.js';
import type { SwitchoverHooks, SwitchoverOptions } from './options.js';
import { forwardPreconditions, rollbackPreconditions } from './preflight.js';
import type { SwitchoverReport } from './report.js';
import { dropReverseStep, setUpReverseStep } from './reverse.js';
import { SwitchoverRun } from './run.js';
import { moveSequences } from './sequences.js';
import { nodeRef, requireEngine, resolveTarget, switchedLeaf } from './topology.js';
import { undo } from './undo.js';
import { verifyCounts } from './verify.js';

export * from './report.js';
export * from './options.js';
export { SwitchoverError } from './error.js';
export { resolveTarget, type Topology } from './topology.js';
export { countRows } from './verify.js';
export { reverseQueueName } from '../../engine/index.js';

/** Runs a switchover (forward to a leaf, or back to the root) as the file describes it. */
export async function switchover(state: DesiredState, options: SwitchoverOptions, hooks: SwitchoverHooks = {}): Promise<SwitchoverReport> {
  const topology = resolveTarget(state, options);
  const db = (node: NodeSpec) => state.databases.find((d) => d.name === node.database)!;
  const old = await connect(db(topology.root).connection, 'switchover');
  const opened: pg.Client[] = [old];
  try {
    if (topology.target !== topology.root) {
      const neu = await connect(db(topology.target).connection, 'switchover');
      opened.push(neu);
      const run = new SwitchoverRun(topology, options, hooks, state.file, 'forward', nodeRef(topology.root, db(topology.root)), nodeRef(topology.target, db(topology.target)));
      return await forward(run, old, neu, db(topology.root), db(topology.target));
    }
    const leaf = await switchedLeaf(topology, old, db, opened);
    const run = new SwitchoverRun(topology, options, hooks, state.file, 'rollback', nodeRef(leaf.node, db(leaf.node)), nodeRef(topology.root, db(topology.root)));
    return await rollback(run, old, leaf.client, db(topology.root), db(leaf.node));
  } finally {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  }
}

/** OLD (the root) → NEW (the target leaf), or the rest of a run that stopped, or the undo of a switch back that stopped. */
async function forward(run: SwitchoverRun, old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<SwitchoverReport> {
  const t = run.topology;
  const queue = t.queue.name;
  const consumer = t.target.name;
  const root = t.root.name;
  await requireEngine(old, t.root);
  await requireEngine(neu, t.target);
  const at = await switchedOverAt(neu, queue, consumer);
  const [oldFence, newFence] = [await readFence(old), await readFence(neu)];
  if (at) {
    // NEW was handed over. A switch back stopped half way leaves NEW fenced too: undo it — unless (a cascade) NEW's queue follows OLD again already.
    if (isFenced(newFence) && t.cascade && (await queueRole(neu, queue)).kind === 'branch') {
      throw new SwitchoverError(
        'switchover_interrupted',
        `a switch back of queue "${queue}" to "${root}" stopped after "${consumer}" rejoined "${root}" as a branch; "${root}" is not writable yet`,
        `finish it with \`pgconvey switchover ${run.file} --to ${root}\``,
      );
    }
    if (isFenced(newFence)) return undo(run, { back: neu, other: old, backDb: newDb, otherDb: oldDb, what: `a switch back to "${root}" stopped half way; "${consumer}" takes writes again`, dropReverse: false });
    // The hand-over committed on NEW; OLD's fence was not yet marked standby.
    if (oldFence.record?.purpose === 'switchover' || !isFenced(oldFence)) {
      await run.confirm();
      run.fenced = true;
      await finishHandOver(run, old, oldDb, at);
      run.report.note = 'finished a switchover that had stopped after its hand-over';
      return run.report;
    }
    // A table captured since the hand-over gets its fence trigger on the standby node.
    if (oldFence.tables > oldFence.fencedTables) await fenceTriggers(run, old, oldDb);
    const reverse = await reverseSubscriptionOf(old, queue, root);
    const missing = run.options.reverse && !reverse ? ' (without reverse replication; --reverse cannot be added afterwards)' : '';
    return run.alreadyDone(`queue "${queue}" was switched over to "${consumer}" at ${at.toISOString()}${missing}; nothing to do`);
  }
  if ((await reverseSubscriptionOf(old, queue, root)) && !(await queueExists(neu, reverseQueueName(queue)))) {
    throw new SwitchoverError(
      'switchover_interrupted',
      `a switch back of queue "${queue}" to "${root}" stopped after it dropped the reverse queue on "${consumer}"; "${root}" is not writable yet`,
      `finish it with \`pgconvey switchover ${run.file} --to ${root}\``,
    );
  }

  const tables = await forwardPreconditions(run, old, neu, isFenced(oldFence));
  if (t.cascade) await checkBranchTarget(run, neu, tables);
  await run.confirm();

  // NEW first: from before OLD refuses a write until the hand-over, no write can land on NEW uncaptured.
  await fenceNode(run, 'fence-target', neu, newDb, { node: consumer, to: consumer, startWindow: true });
  await fenceNode(run, 'fence', old, oldDb, { node: root, to: consumer, startWindow: false });
  await drain(run, { provider: old, subscriber: neu, providerDb: oldDb, subscriberDb: newDb, queue, consumer });
  await moveSequences(run, old, neu, queue, { to: consumer, from: root });
  await verifyCounts(run, old, neu, tables);
  await refreshMatviews(run, neu, consumer);
  if (run.options.reverse) await setUpReverseStep(run, old, neu, newDb, tables);
  await handOverForward(run, old, neu, oldDb, newDb);
  return run.report;
}

/** NEW (the leaf switched over to) → OLD (the root) over the reverse queue, or the undo of a switchover to NEW that stopped. */
async function rollback(run: SwitchoverRun, old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<SwitchoverReport> {
  const t = run.topology;
  const forwardQueue = t.queue.name;
  const leaf = run.report.from.node;
  const queue = reverseQueueName(forwardQueue);
  const consumer = t.root.name;
  await requireEngine(neu, t.leaves.find((l) => l.name === leaf)!);
  const reverse = await reverseSubscriptionOf(old, forwardQueue, consumer);
  const at = await switchedOverAt(neu, forwardQueue, leaf);
  const reverseExists = await queueExists(neu, queue);
  const [oldFence, newFence] = [await readFence(old), await readFence(neu)];
  if (!at && !(reverse && !reverseExists)) {
    // Never handed over to NEW: nothing happened, or a switchover to NEW stopped half way (undo it).
    if (isFenced(oldFence) || newFence.record?.purpose === 'switchover') {
      return undo(run, { back: old, other: neu, backDb: oldDb, otherDb: newDb, what: `a switchover to "${leaf}" stopped half way; "${consumer}" takes writes again`, dropReverse: reverseExists });
    }
    if (newFence.record?.purpose === 'standby' && newFence.tables > newFence.fencedTables) await fenceTriggers(run, neu, newDb);
    return run.alreadyDone(`"${consumer}" is already the writable node of queue "${forwardQueue}"; nothing to do`);
  }
  if (!reverse) {
    throw new SwitchoverError(
      'switchover_no_reverse',
      `queue "${forwardQueue}" was switched over to "${leaf}" without reverse replication: switching back would lose every write made on "${leaf}" since ${at!.toISOString()}`,
      `copy those writes to "${consumer}" yourself first; a switchover with --reverse keeps "${consumer}" up to date`,
    );
  }

  const tables = await rollbackPreconditions(run, old, neu, leaf, !reverseExists || isFenced(newFence));
  await run.confirm();

  await fenceNode(run, 'fence-target', old, oldDb, { node: consumer, to: consumer, startWindow: true });
  await fenceNode(run, 'fence', neu, newDb, { node: leaf, to: consumer, startWindow: false });
  if (reverseExists) {
    await drain(run, { provider: neu, subscriber: old, providerDb: newDb, subscriberDb: oldDb, queue, consumer });
    await moveSequences(run, neu, old, queue, { to: consumer, from: leaf });
    await verifyCounts(run, neu, old, tables);
  }
  await refreshMatviews(run, old, consumer);
  await rejoinStep(run, old, neu, leaf);
  await dropReverseStep(run, neu, leaf, reverseExists);
  await handOverBack(run, old, oldDb, newDb, leaf, tables.length);
  return run.report;
}

