/**
 * The planner's consumer step on a queue's provider (its root, or a branch's
 * own queue): drop copy pins no copy needs (finished, failed or superseded
 * copies, or their table or node left the file) and consumers of nodes it no
 * longer feeds in the file — both keep it from emptying its event tables. Pure.
 */
import { proposeRemoveConsumer } from '../actions/index.js';
import type { EngineQueueInfo } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { holdsEvents, type TableState } from '../engine/table-state.js';
import { copyPinOwner, isCopyPin, stalePins, watermarkOwner, type PinHolder } from '../kernel/index.js';
import type { PlanBuilder } from './builder.js';
import type { PlanInput } from './input.js';

export function planConsumers(input: PlanInput, queue: QueueSpec, root: NodeSpec, queueState: EngineQueueInfo | undefined, plan: PlanBuilder): void {
  const site = { node: root.name, database: root.database };
  const fed = queue.nodes.filter((n) => n.type !== 'root' && n.provider === root.name);
  // Copy pins no copy needs (the copy finished or failed, its table or node left the file) hold events back too.
  const pinHolders = new Map<string, PinHolder<TableState>[]>();
  const unknown = new Set<string>();
  for (const leaf of fed) {
    const subscription = input.catalogs[leaf.database]?.engine?.subscriptions.find((s) => s.queue === queue.name && s.consumer === leaf.name);
    if (subscription) pinHolders.set(leaf.name, subscription.tables);
    else unknown.add(leaf.name); // not subscribed (yet): its pins, if any, are left alone
  }
  const stale = stalePins((queueState?.consumers ?? []).map((c) => c.name), pinHolders, holdsEvents).filter((pin) => !unknown.has(copyPinOwner(pin) ?? ''));
  for (const name of stale) {
    plan.add(
      proposeRemoveConsumer({
        root: site,
        queue: queue.name,
        consumer: name,
        reason: `the copy pin is stale (its copy is merged, failed or superseded, or its table or node left the file): it keeps the root from emptying its event tables`,
        destructive: false,
      }),
    );
  }

  // Consumers on the root that no node of the file stands for any more hold events back (and disk).
  for (const consumer of queueState?.consumers ?? []) {
    if (isCopyPin(consumer.name) || fed.some((n) => n.name === consumer.name)) continue;
    // Cascades: a branch's watermark (engine/watermark.ts) stays while the branch is fed here; a moved
    // branch's is dropped by its change_provider; one of a node gone from the file goes with it.
    const holder = watermarkOwner(consumer.name);
    if (holder !== null) {
      if (queue.nodes.some((n) => n.name === holder && n.type === 'branch')) continue;
      plan.add(
        proposeRemoveConsumer({
          root: site,
          queue: queue.name,
          consumer: consumer.name,
          reason: `node "${holder}" is no longer a branch in the file: its watermark keeps the provider from emptying its event tables`,
          destructive: false,
        }),
      );
      continue;
    }
    // A node the file moved to another provider: its change_provider unregisters it here (planner/cascade.ts).
    if (queue.nodes.some((n) => n.name === consumer.name && n.type !== 'root')) continue;
    plan.add(
      proposeRemoveConsumer({
        root: site,
        queue: queue.name,
        consumer: consumer.name,
        reason: `node "${consumer.name}" is no longer in the file: its consumer keeps the root from emptying its event tables`,
        destructive: true,
      }),
    );
  }
}
