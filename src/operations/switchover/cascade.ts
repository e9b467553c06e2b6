/**
 * Switchover inside a cascade (the target is a branch whose provider is the
 * root): what differs from a switchover to a leaf. Before anything changes,
 * the branch's queue must follow the root and carry only tables the branch
 * replicates itself (as the root it captures them). At the hand-over the old
 * root's queue is frozen (it ticks no more), the branch applies and re-queues
 * through that last tick, and its queue becomes a root's in the hand-over's
 * transaction (engine/cascade-switchover.ts): its subscribers keep their
 * positions, the tick ids being the same. On the way back (`rejoin`, before
 * the old root takes writes again) the branch's queue becomes a branch of the
 * old root again at a junction tick both queues take.
 */
import type pg from 'pg';
import type { QualifiedName } from '../../kernel/index.js';
import { capturedTables, completedTick, consumerPosition, demoteQueue, lastTick, queueRole, thawQueue } from '../../engine/index.js';
import { nameKey } from '../../kernel/index.js';
import { SwitchoverError } from './error.js';
import type { SwitchoverRun } from './run.js';

/** Forward, before fencing: the branch's queue follows the root, and every table it re-queues is one it replicates (`ok`). */
export async function checkBranchTarget(run: SwitchoverRun, neu: pg.Client, tables: readonly QualifiedName[]): Promise<void> {
  const { queue, root, target } = run.topology;
  const role = await queueRole(neu, queue.name);
  if (role.kind !== 'branch' || role.provider !== root.name || role.consumer !== target.name) {
    const is = role.kind === 'branch' ? `a branch queue following "${role.provider}"` : role.kind === 'frozen' ? `a root's queue frozen by a switchover to "${role.follows}"` : role.kind === 'root' ? "a root's queue" : 'missing';
    throw new SwitchoverError(
      'switchover_cascade_not_branch',
      `queue "${queue.name}" on "${target.name}" is ${is}, not the branch queue of "${target.name}" following "${root.name}"`,
      'run `pgconvey apply FILE` so the branch is set up as the file says, let its worker catch up, then switch over',
    );
  }
  const own = new Set(tables.map(nameKey));
  const foreign = (await capturedTables(neu, queue.name)).filter((t) => !own.has(nameKey(t)));
  if (foreign.length) {
    throw new SwitchoverError(
      'switchover_cascade_tables',
      `the branch "${target.name}" re-queues table(s) it does not replicate itself: ${foreign.map((t) => `${t.schema}.${t.name}`).join(', ')}; as the root it could not capture them for the nodes under it`,
      `add them to "${target.name}"'s tables in FILE, apply and let them copy, then switch over`,
    );
  }
}

/**
 * The way back, step `rejoin`: the branch that took writes (`neu`, node `branch`) becomes a branch of the old
 * root (`old`) again — a junction tick J taken on the branch's queue (it holds everything written there;
 * the nodes under it read up to J), the branch's position at J, and the old root's frozen queue ticking
 * again from J with the branch's consumer at J. Idempotent. Nothing to do (no step) for a leaf.
 */
export async function rejoinStep(run: SwitchoverRun, old: pg.Client, neu: pg.Client, branch: string): Promise<void> {
  const queue = run.topology.queue.name;
  const root = run.topology.root.name;
  const [branchRole, rootRole] = [await queueRole(neu, queue), await queueRole(old, queue)];
  if (branchRole.kind === 'none') return;
  await run.step('rejoin', async () => {
    let junction: string;
    if (branchRole.kind === 'root') {
      if (rootRole.kind !== 'frozen' || rootRole.follows !== branch) {
        throw new SwitchoverError('switchover_cascade_out_of_step', `queue "${queue}" on "${root}" is not frozen by the switchover to "${branch}"`, '');
      }
      const [rootTick, position, subscribed] = [await lastTick(old, queue), await consumerPosition(old, queue, branch), await completedTick(neu, queue, branch)];
      if (!position || position.open || position.tick !== rootTick || subscribed !== rootTick) {
        throw new SwitchoverError(
          'switchover_cascade_out_of_step',
          `"${branch}" is not at the last tick ${rootTick} of the frozen queue "${queue}" on "${root}" (its consumer there: ${position ? `${position.tick}${position.open ? ', batch open' : ''}` : 'none'}; its position: ${subscribed ?? 'none'})`,
          '',
        );
      }
      junction = await demoteQueue(neu, queue, root, branch);
    } else if (branchRole.kind === 'branch' && branchRole.provider === root) {
      // Demoted by an earlier run: the junction is its position (nothing re-queued since: the old root was frozen), unless the old root ticks already.
      junction = (await completedTick(neu, queue, branch))!;
    } else {
      throw new SwitchoverError('switchover_cascade_out_of_step', `queue "${queue}" on "${branch}" follows "${branchRole.kind === 'branch' ? branchRole.provider : '?'}", not "${root}"`, '');
    }
    const last = await thawQueue(old, queue, rootRole.kind === 'frozen' ? junction : null, branch);
    return { value: null, detail: `"${branch}" follows "${root}" again from junction tick ${junction} (its subscribers keep their positions); queue "${queue}" on "${root}" ticks again (last tick ${last})` };
  });
}
