/**
 * The planner's cascade step (branches, as in Londiste): the order in which
 * a queue's subscribers are planned (providers before the nodes they feed),
 * a branch's own queue (`+ create_branch_queue`, after its subscription),
 * a node moved to another provider in the file (`~ change_provider`, or an
 * error check when the move could lose data), a branch whose database
 * holds a root's queue of that name, and a branch removed from the file
 * (its subscribers moved away first, in the same plan or before; refused
 * while a node still reads from it). Pure.
 */
import { proposeChangeProvider, proposeCreateBranchQueue } from '../actions/index.js';
import type { EngineQueueInfo } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { isCopyPin, isWatermarkConsumer, watermarkConsumerName, watermarkOwner } from '../kernel/index.js';
import type { PlanBuilder } from './builder.js';
import type { PlanInput } from './input.js';
import { queueSettings } from './queue.js';

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
  const removed = removedBranches(input, queue);
  // A removed branch still counts as where its subscribers read from now: they are moved away from it.
  const providers = [...queue.nodes.filter((n) => n.type !== 'leaf'), ...removed.map((r) => r.node)];
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
    if (!others.length && !atWanted) {
      // Registered on none of the file's providers: a node it reads from may have left the file with its database.
      const gone = unseenBranches(input, queue);
      if (gone.length) {
        plan.check(
          'error',
          'branch_removed_with_subscribers',
          `node "${node.name}" is subscribed but registered on none of the providers of queue "${queue.name}" in the file: it may still read from ${gone.map((g) => `branch "${g.branch}" (its watermark is on "${g.on}")`).join(', ')}, which left the file`,
          `put the branch and its database back in the file, move node "${node.name}" first (its provider: … , then apply), and only then remove the branch`,
          `queues.${queue.name}.nodes.${node.name}`,
        );
      }
      continue; // not registered anywhere: subscribe plans it
    }
    if (!others.length && (branchFollows === null || branchFollows === wanted.name)) continue;
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

/** A branch of the queue that left the file while its database stayed: its node (as it was), and its own queue there. */
export interface RemovedBranch {
  node: NodeSpec;
  queue: EngineQueueInfo;
}

/**
 * The branches of `queue` that are no longer in the file: a database of the file subscribed to the queue
 * under a consumer name no node of the queue has, that holds a branch queue of that name (it re-queues).
 */
export function removedBranches(input: PlanInput, queue: QueueSpec): RemovedBranch[] {
  const out: RemovedBranch[] = [];
  for (const db of input.state.databases) {
    const engine = input.catalogs[db.name]?.engine;
    const own = engine?.queues.find((q) => q.name === queue.name && q.branchProvider);
    if (!engine || !own) continue;
    for (const s of engine.subscriptions.filter((x) => x.queue === queue.name)) {
      if (queue.nodes.some((n) => n.name === s.consumer)) continue;
      out.push({ node: { name: s.consumer, database: db.name, type: 'branch', provider: own.branchProvider! } as NodeSpec, queue: own });
    }
  }
  return out;
}

/** Watermarks on the file's providers of branches neither in the file nor found in its databases. */
function unseenBranches(input: PlanInput, queue: QueueSpec): Array<{ branch: string; on: string }> {
  const known = new Set([...queue.nodes.map((n) => n.name), ...removedBranches(input, queue).map((r) => r.node.name)]);
  return queue.nodes
    .filter((n) => n.type !== 'leaf')
    .flatMap((p) =>
      (input.catalogs[p.database]?.engine?.queues.find((q) => q.name === queue.name)?.consumers ?? []).flatMap((c) => {
        const owner = watermarkOwner(c.name);
        return owner !== null && !known.has(owner) ? [{ branch: owner, on: p.name }] : [];
      }),
    );
}

/**
 * A branch removed from the file: refused while a node still reads from it — one registered on its queue
 * that this plan does not move away (\`~ change_provider\`) — since removing its consumer and watermark on
 * its provider would let the provider drop events that node still needs. Otherwise that removal (planned
 * by the consumer step on the branch's provider) runs after every move away from the branch.
 */
export function branchRemovalChecks(input: PlanInput, queue: QueueSpec, plan: PlanBuilder): void {
  for (const { node: branch, queue: own } of removedBranches(input, queue)) {
    const moves = plan.actions().filter((a) => a.kind === 'change_provider' && a.queue === queue.name && a.params.from === branch.name);
    const moving = new Set(moves.map((a) => (a.kind === 'change_provider' ? a.params.consumer : '')));
    const readers = own.consumers.map((c) => c.name).filter((n) => !isCopyPin(n) && !isWatermarkConsumer(n) && !moving.has(n)).sort();
    if (readers.length) {
      const inFile = readers.filter((r) => queue.nodes.some((n) => n.name === r));
      plan.check(
        'error',
        'branch_removed_with_subscribers',
        `branch "${branch.name}" (database "${branch.database}") is no longer in the file, but node(s) ${readers.map((r) => `"${r}"`).join(', ')} still read from it: removing it would let "${branch.provider}" drop events they have not read`,
        inFile.length
          ? `move them first (plan shows \`~ change_provider\` once their new provider can take them; fix what it reports for ${inFile.join(', ')}), then remove the branch — or keep "${branch.name}" in the file`
          : `keep "${branch.name}" in the file until its subscribers are moved to another provider (their \`provider:\`, then apply) or removed`,
        `queues.${queue.name}.nodes`,
      );
      continue;
    }
    // The branch's consumer and watermark on its provider go only after every move away from it.
    const ids = moves.map((a) => a.id);
    for (const a of plan.actions()) {
      if (a.kind !== 'remove_consumer' || a.queue !== queue.name || a.node !== branch.provider) continue;
      if (a.params.consumer !== branch.name && a.params.consumer !== watermarkConsumerName(branch.name)) continue;
      for (const id of ids) if (!a.dependsOn.includes(id)) a.dependsOn.push(id);
    }
  }
}
