/**
 * The planner's cascade step (branches, as in Londiste): the order in which
 * a queue's subscribers are planned (providers before the nodes they feed),
 * a branch's own queue (`+ create_branch_queue`, after its subscription),
 * and the checks of a cascade's shape that no action fixes yet: a node whose
 * provider changed in the file (change_provider is not supported yet) and a
 * branch whose database holds a root's queue of that name. Pure.
 */
import { proposeCreateBranchQueue } from '../actions/index.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import type { PlanBuilder } from './builder.js';
import type { PlanInput } from './input.js';
import { queueSettings } from './queue.js';

/** The queue's non-root nodes, each after its provider (breadth first from the root). */
export function cascadeOrder(queue: QueueSpec): NodeSpec[] {
  const root = queue.nodes.find((n) => n.type === 'root')!;
  const out: NodeSpec[] = [];
  let level = [root.name];
  const seen = new Set(level);
  while (level.length) {
    const next = queue.nodes.filter((n) => n.provider !== undefined && level.includes(n.provider) && !seen.has(n.name)).sort((a, b) => a.name.localeCompare(b.name));
    for (const n of next) seen.add(n.name);
    out.push(...next);
    level = next.map((n) => n.name);
  }
  return out;
}

/** The nodes a provider feeds directly. */
export function subscribersOf(queue: QueueSpec, provider: string): NodeSpec[] {
  return queue.nodes.filter((n) => n.type !== 'root' && n.provider === provider);
}

/**
 * A branch's own queue: proposed when its database lacks it. Returns the ids the branch's own subscribers
 * wait for (its create_branch_queue, if any, and what that waits for).
 */
export function planBranchQueue(input: PlanInput, queue: QueueSpec, branch: NodeSpec, ids: { subscribe: string | null; engine: string | null }, plan: PlanBuilder): string[] {
  const catalog = input.catalogs[branch.database]!;
  const existing = catalog.engine?.queues.find((q) => q.name === queue.name);
  const path = `queues.${queue.name}.nodes.${branch.name}`;
  if (existing && !existing.branchProvider) {
    plan.check(
      'error',
      'branch_database_has_root_queue',
      `node "${branch.name}" is a branch, but its database "${branch.database}" holds queue "${queue.name}" as a root's queue (with its own ticks)`,
      'a database is either the root of a queue or a branch of it: give the branch another database, or drop the queue there',
      path,
    );
    return [];
  }
  if (existing) return [];
  const dependsOn = [ids.subscribe, ids.engine].filter((x): x is string => x !== null);
  return [plan.add(proposeCreateBranchQueue({ branch: { node: branch.name, database: branch.database }, queue: queue.name, provider: branch.provider!, settings: queueSettings(queue), dependsOn }))];
}

/**
 * A node already subscribed whose provider in the file is not the one it reads from (its consumer is
 * registered on another node of the cascade): moving it is `~ change_provider`, not supported yet.
 */
export function cascadeChecks(input: PlanInput, queue: QueueSpec, plan: PlanBuilder): void {
  const providers = queue.nodes.filter((n) => n.type !== 'leaf');
  const consumersOn = (node: NodeSpec) => new Set(input.catalogs[node.database]?.engine?.queues.find((q) => q.name === queue.name)?.consumers.map((c) => c.name) ?? []);
  for (const node of queue.nodes.filter((n) => n.type !== 'root')) {
    const subscribed = input.catalogs[node.database]?.engine?.subscriptions.some((s) => s.queue === queue.name && s.consumer === node.name);
    if (!subscribed) continue;
    const wanted = providers.find((p) => p.name === node.provider);
    if (!wanted || consumersOn(wanted).has(node.name)) continue;
    const current = providers.find((p) => p.name !== node.provider && consumersOn(p).has(node.name));
    if (!current) continue;
    plan.check(
      'error',
      'change_provider_not_supported',
      `node "${node.name}" reads queue "${queue.name}" from "${current.name}", and the file names "${node.provider}" as its provider: changing a node's provider (~ change_provider) is not supported yet`,
      `set \`provider: ${current.name}\` again for now`,
      `queues.${queue.name}.nodes.${node.name}.provider`,
    );
  }
  for (const branch of queue.nodes.filter((n) => n.type === 'branch')) {
    const existing = input.catalogs[branch.database]?.engine?.queues.find((q) => q.name === queue.name);
    if (existing?.branchProvider && existing.branchProvider !== branch.provider) {
      plan.check(
        'error',
        'change_provider_not_supported',
        `branch "${branch.name}" follows "${existing.branchProvider}", and the file names "${branch.provider}" as its provider: changing a node's provider (~ change_provider) is not supported yet`,
        `set \`provider: ${existing.branchProvider}\` again for now`,
        `queues.${queue.name}.nodes.${branch.name}.provider`,
      );
    }
  }
}
