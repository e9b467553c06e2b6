/**
 * The planner's cascade step (branches, as in Londiste): the order in which
 * a queue's subscribers are planned (providers before the nodes they feed),
 * a branch's own queue (`+ create_branch_queue`, after its subscription),
 * a node moved to another provider in the file (`~ change_provider`, or an
 * error check when the move could lose data) and a branch whose database
 * holds a root's queue of that name. Pure.
 */
import { proposeChangeProvider, proposeCreateBranchQueue } from '../actions/index.js';
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
  // A switchover made the branch the root of its queue (the old root's queue follows it, frozen): the file
  // describes the cascade before it; nothing to plan for the branch's queue (docs/switchover.md, "Cascades").
  const root = queue.nodes.find((n) => n.type === 'root');
  const rootQueue = root ? input.catalogs[root.database]?.engine?.queues.find((q) => q.name === queue.name) : undefined;
  if (existing && !existing.branchProvider && rootQueue?.branchProvider === branch.name) {
    plan.check(
      'warning',
      'switched_over_to_branch',
      `node "${branch.name}" took over writes in a switchover: its queue "${queue.name}" is the root's now (the nodes under it follow it), and "${root!.name}" is its standby; the file still says what it was before`,
      `nothing to do; \`pgconvey switchover FILE --to ${root!.name}\` switches back (with --reverse set up), after which plan shows the cascade as the file says`,
      path,
    );
    return [];
  }
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
 * Topology changes (`~ change_provider`): a subscribed node whose provider in the file is not the one it
 * reads from (its consumer is registered on another provider of the cascade, or a branch's queue follows
 * another node) is moved there without a copy, at its own completed tick. Refused (an error check, no
 * action) when the move could lose or repeat a batch: the new provider is below the node now, its queue
 * does not exist yet, it no longer holds the node's tick with every event after it (its lowest consumer
 * is later), it has not reached the node's tick yet, or a table of the node is being copied or merged.
 * (A leaf as a provider is refused by the file's validation.)
 */
export function cascadeChecks(input: PlanInput, queue: QueueSpec, plan: PlanBuilder): void {
  const providers = queue.nodes.filter((n) => n.type !== 'leaf');
  const queueOn = (node: NodeSpec) => input.catalogs[node.database]?.engine?.queues.find((q) => q.name === queue.name);
  const registeredOn = (p: NodeSpec, name: string) => queueOn(p)?.consumers.some((c) => c.name === name) ?? false;
  // Where each node reads from now, as the databases say (for the "below the node" check).
  const currentOf = (name: string): string | undefined => providers.find((p) => p.name !== name && registeredOn(p, name))?.name;
  const isBelow = (candidate: string, node: string): boolean => {
    const seen = new Set<string>();
    for (let at: string | undefined = candidate; at !== undefined && !seen.has(at); at = currentOf(at)) {
      if (at === node) return true;
      seen.add(at);
    }
    return false;
  };
  for (const node of queue.nodes.filter((n) => n.type !== 'root')) {
    const subscription = input.catalogs[node.database]?.engine?.subscriptions.find((s) => s.queue === queue.name && s.consumer === node.name);
    if (!subscription) continue;
    const wanted = providers.find((p) => p.name === node.provider);
    if (!wanted) continue;
    const others = providers.filter((p) => p.name !== node.provider && p.name !== node.name && registeredOn(p, node.name));
    const branchQueue = node.type === 'branch' ? queueOn(node) : undefined;
    const branchFollows = branchQueue?.branchProvider ?? null;
    const atWanted = registeredOn(wanted, node.name);
    if (!others.length && (branchFollows === null || branchFollows === wanted.name)) continue;
    if (!others.length && !atWanted) continue; // not registered anywhere: subscribe plans it
    const from = others[0] ?? null;
    const path = `queues.${queue.name}.nodes.${node.name}.provider`;
    const refuse = (code: string, why: string, hint: string) =>
      plan.check('error', code, `node "${node.name}" cannot move${from ? ` from "${from.name}"` : ''} to "${wanted.name}": ${why}`, hint, path);
    const keep = from ? `keep \`provider: ${from.name}\` for now` : 'keep the provider as it is for now';
    const tick = subscription.completedTick;
    if (!atWanted) {
      const target = queueOn(wanted);
      if (isBelow(wanted.name, node.name)) {
        refuse('change_provider_below_node', `"${wanted.name}" reads from "${node.name}" (directly or through other nodes) today`, `move "${wanted.name}" elsewhere first (apply), then this node; ${keep}`);
        continue;
      }
      if (!target) {
        refuse('change_provider_no_queue', `"${wanted.name}" has no queue "${queue.name}" yet`, `apply once with ${keep} so "${wanted.name}" gets its queue, then move the node`);
        continue;
      }
      const busy = subscription.tables.filter((t) => t.state !== 'ok').map((t) => `${t.schema}.${t.name}`);
      if (busy.length) {
        refuse('change_provider_copy_in_progress', `it is still copying or merging ${busy.join(', ')}`, `let the copies finish (\`pgconvey status\`); ${keep}`);
        continue;
      }
      if (tick === null) continue;
      const held = target.consumers.filter((c) => c.name !== node.name).map((c) => BigInt(c.lastTick));
      const from0 = held.length ? held.reduce((a, b) => (b < a ? b : a)) : BigInt(target.lastTick);
      if (BigInt(tick) > BigInt(target.lastTick)) {
        refuse('change_provider_provider_behind', `"${wanted.name}" is at tick ${target.lastTick}, behind the node's tick ${tick}`, `wait until "${wanted.name}" has caught up (\`pgconvey status\`), then plan again`);
        continue;
      }
      if (BigInt(tick) < from0) {
        refuse(
          'change_provider_tick_gone',
          `"${wanted.name}" keeps its events only from tick ${from0}, and the node is at tick ${tick}: the events between would be lost`,
          `${keep}; a node under a branch is kept by the root through the branch's watermark while \`pgconvey run\` runs the branch — or re-add the node with a copy (docs/operations.md, "Cascades")`,
        );
        continue;
      }
    }
    plan.add(
      proposeChangeProvider({
        node: { node: node.name, database: node.database },
        queue: queue.name,
        from: from ? { node: from.name, database: from.database } : null,
        to: { node: wanted.name, database: wanted.database },
        tick: tick ?? 'none',
      }),
    );
  }
}
