/**
 * Where a switchover goes: the queue and target node named (checked against
 * the file), the queue's root and leaves; for a switch back, the leaf the
 * queue was switched over to (its reverse subscription names it); and the
 * engine version each node must have.
 */
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, NodeSpec, QueueSpec } from '../../config/index.js';
import { connect } from '../../db/index.js';
import { ENGINE_CONTENT, ENGINE_VERSION, installedEngine, reverseSubscriptionOf, shortContent, switchedOverAt } from '../../engine/index.js';
import { closest } from '../../kernel/index.js';
import { SwitchoverError } from './error.js';
import type { SwitchoverOptions } from './options.js';
import type { NodeRef } from './report.js';

export interface Topology {
  queue: QueueSpec;
  root: NodeSpec;
  /** The root's subscribers: its leaves and (cascades) its branches. */
  leaves: NodeSpec[];
  target: NodeSpec;
  /** The target is a branch: its queue becomes the root's queue at the hand-over (the nodes under it keep following). */
  cascade: boolean;
}

/** Finds the queue and the target node in the file, or says what to write instead. */
export function resolveTarget(state: DesiredState, options: Pick<SwitchoverOptions, 'queue' | 'to'>): Topology {
  const names = state.queues.map((q) => q.name);
  let queue: QueueSpec | undefined;
  if (options.queue === undefined) {
    if (state.queues.length !== 1) throw new SwitchoverError('switchover_queue_needed', `${state.file} has ${state.queues.length} queues`, `name one with --queue (${names.join(', ')})`);
    queue = state.queues[0]!;
  } else {
    queue = state.queues.find((q) => q.name === options.queue);
    if (!queue) {
      const guess = closest(options.queue, names);
      throw new SwitchoverError('unknown_queue', `queue "${options.queue}" is not in ${state.file}`, guess ? `did you mean "${guess}"?` : `queues: ${names.join(', ')}`);
    }
  }
  const root = queue.nodes.find((n) => n.type === 'root')!;
  const leaves = queue.nodes.filter((n) => n.type !== 'root' && n.provider === root.name);
  const target = queue.nodes.find((n) => n.name === options.to);
  if (!target) {
    const guess = closest(options.to, queue.nodes.map((n) => n.name));
    throw new SwitchoverError('unknown_node', `queue "${queue.name}" has no node "${options.to}"`, guess ? `did you mean "${guess}"?` : `nodes: ${queue.nodes.map((n) => n.name).join(', ')}`);
  }
  if (target !== root) refuseCascadeTarget(state.file, queue, root, target);
  return { queue, root, leaves, target, cascade: target.type === 'branch' };
}

/**
 * Cascades: a switchover goes to a node that follows the root. A branch's
 * subscribers keep following it (its queue becomes the root's), so every other
 * node must be under it; a leaf of the root is refused while the queue has a
 * branch (the nodes under it would keep following a root that takes no writes).
 */
function refuseCascadeTarget(file: string, queue: QueueSpec, root: NodeSpec, target: NodeSpec): void {
  if (target.provider !== root.name) {
    throw new SwitchoverError(
      'switchover_target_not_child',
      `node "${target.name}" follows "${target.provider}", not the root "${root.name}" of queue "${queue.name}"`,
      `switch over to a node whose provider is "${root.name}" (to "${target.provider}" first, then further), or move "${target.name}" under "${root.name}" (\`provider: ${root.name}\` in ${file}, then \`pgconvey apply\`)`,
    );
  }
  const branches = queue.nodes.filter((n) => n.type === 'branch');
  if (target.type === 'leaf' && branches.length) {
    throw new SwitchoverError(
      'switchover_cascade_leaf',
      `node "${target.name}" is a leaf, and queue "${queue.name}" has the branch(es) ${branches.map((b) => `"${b.name}"`).join(', ')}: after a switchover to a leaf the nodes under them would keep following "${root.name}", which takes no writes then`,
      `switch over to a branch whose provider is "${root.name}" (its subscribers keep following it), or remove the branches from ${file} first`,
    );
  }
  const others = queue.nodes.filter((n) => n !== target && n.provider === root.name);
  if (target.type === 'branch' && others.length) {
    throw new SwitchoverError(
      'switchover_cascade_other_subscribers',
      `the root "${root.name}" of queue "${queue.name}" has subscribers besides the branch "${target.name}": ${others.map((o) => `"${o.name}"`).join(', ')}; they would keep following "${root.name}", which takes no writes after the switchover`,
      `move them under "${target.name}" first (\`provider: ${target.name}\` in ${file}, then \`pgconvey apply\`: ~ change_provider, no copy; stop their workers meanwhile), then switch over`,
    );
  }
}

export function nodeRef(node: NodeSpec, database: DatabaseSpec): NodeRef {
  return { node: node.name, database: database.name, display: database.display };
}

/** Refuses a node whose engine is missing or older than this build's. */
export async function requireEngine(client: pg.Client, node: NodeSpec): Promise<void> {
  const installed = await installedEngine(client);
  if (installed === null || installed.version < ENGINE_VERSION || (installed.version === ENGINE_VERSION && installed.content !== ENGINE_CONTENT)) {
    throw new SwitchoverError(
      'switchover_engine_outdated',
      `the pgconvey engine in database "${node.database}" (node "${node.name}") is ${installed === null ? 'not installed' : `version ${installed.version} (content ${shortContent(installed.content)})`}; switchover needs version ${ENGINE_VERSION} (content ${shortContent(ENGINE_CONTENT)})`,
      'run `pgconvey apply FILE` to install or upgrade it, then switch over',
    );
  }
}

/** For a rollback: the leaf the queue was switched over to (its reverse replication names it), connected; the client joins `opened`. */
export async function switchedLeaf(t: Topology, old: pg.Client, db: (n: NodeSpec) => DatabaseSpec, opened: pg.Client[]): Promise<{ node: NodeSpec; client: pg.Client }> {
  await requireEngine(old, t.root);
  const reverse = await reverseSubscriptionOf(old, t.queue.name, t.root.name);
  const candidates = reverse ? t.leaves.filter((l) => l.database === reverse.providerDatabase) : t.leaves;
  for (const node of candidates) {
    const client = await connect(db(node).connection, 'switchover');
    opened.push(client);
    if (reverse || candidates.length === 1 || (await switchedOverAt(client, t.queue.name, node.name))) return { node, client };
  }
  throw new SwitchoverError('switchover_no_leaf', `queue "${t.queue.name}" has no leaf to switch back from`, 'check the file: the node the queue was switched over to must still be a leaf of the root');
}
