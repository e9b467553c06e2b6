/**
 * Table resolution, before anything is locked: the pairs of nodes of the file
 * selected by --queue, --node and --nodes (default: every node of a queue
 * against its provider, down a cascade), each in the direction writes flow
 * now (after a switchover: the new node through the reverse queue to the old
 * one), the node whose writers compare pauses (the root: branches carry its
 * tick ids, so any two nodes of a cascade can be brought to one root tick),
 * their catalogs, and the tables to compare on each with their state on each
 * side. Throws CompareError on bad input.
 */
import type pg from 'pg';
import { introspectNode, type EngineQueueInfo, type NodeCatalog } from '../../catalog/index.js';
import { displayQualified, nodesTopDown, type DatabaseSpec, type DesiredState, type NodeSpec, type QueueSpec } from '../../config/index.js';
import { connect } from '../../db/index.js';
import { reverseQueueName, reverseSubscriptionOf, switchedOverAt } from '../../engine/index.js';
import { closest, type QualifiedName } from '../../kernel/index.js';
import { TableNameError, parseTableName } from '../table-name.js';
import { CompareError } from './error.js';
import type { CompareOptions } from './options.js';

/** A table as the root's engine catalog captures it: key columns and shipped columns. */
export type CapturedTable = EngineQueueInfo['tables'][number];

/** A captured table, with its state on the compared sides, the provider's row estimate, and whether each side (and the writer) partitions it. */
export interface PlannedTable {
  captured: CapturedTable;
  /** `ok` when every subscribed side has the table ok; else the first other state (`copying on node "b1"` for the provider side). */
  state: string;
  estimatedRows: number | null;
  partitioned: { provider: boolean; subscriber: boolean; writer: boolean };
}

/** A compared side that is itself a subscriber: it must have applied compare's tick before its snapshot. */
export interface Follower {
  side: 'provider' | 'subscriber';
  node: string;
  /** Its subscription's consumer name there. */
  consumer: string;
  /** Password-free display of its database. */
  display: string;
}

/**
 * Two nodes to compare, and the tables to compare on them. `provider` is the
 * side compared against (rows "missing" are on it and not on the
 * subscriber): a node's provider, or the first of --nodes. The writer is
 * where compare locks each table and forces the tick: the provider itself for
 * a root and a node it feeds (or after a switchover the new node and the old
 * one through the reverse queue), else the queue's root above both sides.
 */
export interface PairPlan {
  direction: 'forward' | 'reverse';
  /** The queue whose position both sides are read at. */
  queue: string;
  /** The subscriber side's consumer name (its own node name on a cascade). */
  consumer: string;
  /** Node names, for messages. */
  providerNode: string;
  subscriberNode: string;
  providerDb: DatabaseSpec;
  subscriberDb: DatabaseSpec;
  providerCatalog: NodeCatalog;
  /** The node whose table is locked and ticked. */
  writerNode: string;
  writerDb: DatabaseSpec;
  /** Which side is the writer, if either. */
  writerSide: 'provider' | 'subscriber' | null;
  /** The sides that must reach the tick (every side that is not the writer). */
  followers: Follower[];
  tables: PlannedTable[];
}

/** The pairs to compare, resolved and checked. */
export async function resolvePlans(state: DesiredState, options: CompareOptions): Promise<PairPlan[]> {
  const wanted = (options.tables ?? []).map(tableNameOf);
  const pairs = await liveDirections(state, selectPairs(state, options));
  const catalogs = await readCatalogs(state, pairs);
  return planPairs(state, pairs, catalogs, wanted);
}

/** Two nodes of one queue: `a` is compared against (the provider side), `b` the subscriber side. */
interface NodePair {
  queue: QueueSpec;
  root: NodeSpec;
  a: NodeSpec;
  b: NodeSpec;
}

const rootOf = (queue: QueueSpec) => queue.nodes.find((n) => n.type === 'root')!;

function selectPairs(state: DesiredState, options: CompareOptions): NodePair[] {
  if (options.node !== undefined && options.nodes !== undefined) {
    throw new CompareError('compare_nodes_conflict', '--node and --nodes cannot be given together', '--node X compares X with its provider; --nodes A,B compares B with A');
  }
  const queues = state.queues.filter((q) => !options.queue || q.name === options.queue);
  if (options.queue && !queues.length) {
    const names = state.queues.map((q) => q.name);
    const guess = closest(options.queue, names);
    throw new CompareError('unknown_queue', `queue "${options.queue}" is not in ${state.file}`, `${guess ? `did you mean "${guess}"? ` : ''}queues: ${names.join(', ')}`);
  }
  const where = options.queue ? `queue "${options.queue}"` : `any queue in ${state.file}`;
  const unknownNode = (name: string, names: string[]) => {
    const guess = closest(name, names);
    return new CompareError('unknown_node', `"${name}" is not a node of ${where}`, `${guess ? `did you mean "${guess}"? ` : ''}nodes: ${names.join(', ') || 'none'}`);
  };
  if (options.nodes !== undefined) return [pairOfNodes(queues, options.nodes, unknownNode)];
  // Every node against its provider, each after its provider (a cascade top down).
  const pairs = queues.flatMap((queue) => {
    const root = rootOf(queue);
    return nodesTopDown(queue).map((b) => ({ queue, root, a: queue.nodes.find((n) => n.name === b.provider)!, b }));
  });
  if (options.node === undefined) return pairs;
  const selected = pairs.filter((p) => p.b.name === options.node);
  if (!selected.length) {
    if (queues.some((q) => rootOf(q).name === options.node)) {
      throw new CompareError('compare_node_is_root', `node "${options.node}" is the root of ${where}: it has no provider to be compared with`, `name one of its subscribers with --node, or two nodes with --nodes ${options.node},OTHER`);
    }
    throw unknownNode(options.node, [...new Set(pairs.map((p) => p.b.name))]);
  }
  return selected;
}

/** --nodes A,B: the one queue (of those selected) that has both nodes. */
function pairOfNodes(queues: QueueSpec[], nodes: string[], unknownNode: (name: string, names: string[]) => CompareError): NodePair {
  if (nodes.length !== 2 || nodes.some((n) => n === '')) {
    throw new CompareError('compare_nodes_invalid', `--nodes takes two node names separated by a comma, got "${nodes.join(',')}"`, 'e.g. --nodes root,leaf1 (the second is compared against the first)');
  }
  const [aName, bName] = nodes as [string, string];
  if (aName === bName) throw new CompareError('compare_nodes_invalid', `--nodes names "${aName}" twice`, 'name two different nodes of one queue');
  const all = [...new Set(queues.flatMap((q) => q.nodes.map((n) => n.name)))];
  for (const n of [aName, bName]) if (!all.includes(n)) throw unknownNode(n, all);
  const both = queues.filter((q) => q.nodes.some((n) => n.name === aName) && q.nodes.some((n) => n.name === bName));
  if (!both.length) throw new CompareError('compare_nodes_apart', `nodes "${aName}" and "${bName}" are not in one queue`, 'name two nodes of the same queue (and --queue NAME when several queues have both)');
  if (both.length > 1) {
    throw new CompareError('compare_nodes_ambiguous', `nodes "${aName}" and "${bName}" are both in queues ${both.map((q) => `"${q.name}"`).join(', ')}`, `choose one with --queue ${both[0]!.name}`);
  }
  const queue = both[0]!;
  return { queue, root: rootOf(queue), a: queue.nodes.find((n) => n.name === aName)!, b: queue.nodes.find((n) => n.name === bName)! };
}

/** A pair to compare, in the direction writes flow now, with the node whose writers are paused. */
interface LivePair {
  direction: 'forward' | 'reverse';
  queue: string;
  provider: NodeSpec;
  subscriber: NodeSpec;
  writer: NodeSpec;
  /** Consumer names of the sides that follow the writer, by node name. */
  consumers: Map<string, string>;
}

/**
 * For each pair: the direction writes flow now. A root and a node it feeds:
 * after a switchover the node took the writes (its subscription is marked
 * switched over); the live direction is then the reverse queue it set up,
 * whose subscription on the root names the node's database as its provider.
 * Without one, nothing keeps the two at one position: compare refuses. Any
 * other pair is compared at one root tick, which needs the root to be where
 * the writes are: refused when a node of the queue has been switched over to.
 */
async function liveDirections(state: DesiredState, pairs: NodePair[]): Promise<LivePair[]> {
  const clients = new Map<string, Promise<pg.Client>>();
  const client = (database: string) => {
    if (!clients.has(database)) clients.set(database, connect(databaseOf(state, database).connection, 'compare'));
    return clients.get(database)!;
  };
  try {
    const out: LivePair[] = [];
    for (const { queue, root, a, b } of pairs) {
      if (a.name === root.name && b.provider === root.name) {
        out.push(await rootAndDirect(queue, root, b, client));
        continue;
      }
      for (const n of queue.nodes.filter((x) => x.type !== 'root')) {
        const switchedAt = await switchedOverAt(await client(n.database), queue.name, n.name);
        if (switchedAt) {
          throw new CompareError(
            'compare_after_switchover',
            `node "${n.name}" took over writes of queue "${queue.name}" from "${root.name}" (switchover at ${switchedAt.toISOString()}): nodes "${a.name}" and "${b.name}" can no longer be brought to one tick of the root`,
            `compare the two nodes of the switchover (pgconvey compare FILE --node ${n.name}) after a switchover with --reverse, or switch back first`,
          );
        }
      }
      const consumers = new Map([a, b].filter((n) => n.name !== root.name).map((n) => [n.name, n.name] as const));
      out.push({ direction: 'forward', queue: queue.name, provider: a, subscriber: b, writer: root, consumers });
    }
    return out;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.then((x) => x.end()).catch(() => undefined)));
  }
}

/** A root and a node it feeds, forward or (after a switchover with --reverse) through the reverse queue. */
async function rootAndDirect(queue: QueueSpec, root: NodeSpec, leaf: NodeSpec, client: (database: string) => Promise<pg.Client>): Promise<LivePair> {
  const forward: LivePair = { direction: 'forward', queue: queue.name, provider: root, subscriber: leaf, writer: root, consumers: new Map([[leaf.name, leaf.name]]) };
  const switchedAt = await switchedOverAt(await client(leaf.database), queue.name, leaf.name);
  if (!switchedAt) return forward;
  const reverse = await reverseSubscriptionOf(await client(root.database), queue.name, root.name);
  if (reverse?.providerDatabase !== leaf.database) {
    throw new CompareError(
      'compare_after_switchover',
      `node "${leaf.name}" took over writes from "${root.name}" (switchover at ${switchedAt.toISOString()}) and nothing replicates them back to "${root.name}": the two cannot be read at one queue position, and fresh writes on "${leaf.name}" would show as differences`,
      `switch over with --reverse (pgconvey switchover FILE --to ${leaf.name} --reverse) to compare along the reverse queue, or switch back first (pgconvey switchover FILE --to ${root.name})`,
    );
  }
  return { direction: 'reverse', queue: reverseQueueName(queue.name), provider: leaf, subscriber: root, writer: leaf, consumers: new Map([[root.name, root.name]]) };
}

async function readCatalogs(state: DesiredState, pairs: LivePair[]): Promise<Map<string, NodeCatalog>> {
  const names = [...new Set(pairs.flatMap((p) => [p.provider.database, p.subscriber.database, p.writer.database]))];
  const entries = await Promise.all(
    names.map(async (name) => {
      const client = await connect(databaseOf(state, name).connection, 'compare');
      try {
        return [name, await introspectNode(client)] as const;
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  return new Map(entries);
}

function databaseOf(state: DesiredState, name: string): DatabaseSpec {
  return state.databases.find((d) => d.name === name)!;
}

const isPartitioned = (catalog: NodeCatalog, t: QualifiedName) => catalog.tables.find((x) => x.schema === t.schema && x.name === t.name)?.kind === 'p';

/** Checks the set-up and the named tables before anything is locked; throws CompareError on bad input. */
function planPairs(desired: DesiredState, pairs: LivePair[], catalogs: Map<string, NodeCatalog>, wanted: QualifiedName[]): PairPlan[] {
  const plans: PairPlan[] = [];
  for (const { direction, queue, provider, subscriber, writer, consumers } of pairs) {
    const providerCatalog = catalogs.get(provider.database)!;
    const subscriberCatalog = catalogs.get(subscriber.database)!;
    const writerCatalog = catalogs.get(writer.database)!;
    const engineQueue = writerCatalog.engine?.queues.find((q) => q.name === queue);
    if (!engineQueue) {
      throw new CompareError('queue_not_set_up', `queue "${queue}" is not set up on its ${direction === 'forward' ? 'root ' : ''}node "${writer.name}"`, 'run `pgconvey apply` with this file first');
    }
    // The sides that follow the writer: the subscriber, and the provider side when it is not the writer (a branch, a leaf).
    const sides = ([['provider', provider, providerCatalog], ['subscriber', subscriber, subscriberCatalog]] as const).filter(([, n]) => n.name !== writer.name);
    const followed = sides.map(([side, node, catalog]) => {
      const consumer = consumers.get(node.name)!;
      const subscription = catalog.engine?.subscriptions.find((s) => s.queue === queue && s.consumer === consumer);
      if (!subscription) throw new CompareError('not_subscribed', `node "${node.name}" is not subscribed to queue "${queue}"`, 'run `pgconvey apply` with this file first');
      return { side, node, subscription };
    });
    const tables: PlannedTable[] = [];
    for (const captured of engineQueue.tables) {
      const isNamed = wanted.some((w) => w.schema === captured.schema && w.name === captured.name);
      if (wanted.length && !isNamed) continue;
      // The subscriber's state first (as before cascades), then the provider side's, named.
      const states = [...followed]
        .sort((x, y) => (x.side === 'subscriber' ? -1 : 0) - (y.side === 'subscriber' ? -1 : 0))
        .map((f) => ({ node: f.node.name, side: f.side, state: f.subscription.tables.find((t) => t.schema === captured.schema && t.name === captured.name)?.state ?? 'not subscribed' }));
      const notOk = states.find((x) => x.state !== 'ok');
      const tableState = !notOk ? 'ok' : notOk.side === 'subscriber' ? notOk.state : `${notOk.state} on node "${notOk.node}"`;
      if (isNamed && notOk) {
        throw new CompareError(
          'table_not_ready',
          `${displayQualified(captured.schema, captured.name)} cannot be compared on node "${notOk.node}" yet: its state is ${notOk.state}`,
          notOk.state === 'not subscribed'
            ? 'run `pgconvey apply` so the subscriber takes the table'
            : notOk.state === 'held'
              ? 'it is held on a schema mismatch: `pgconvey status` says what to run on the subscriber; it goes on by itself after that'
              : 'wait until its initial copy is done (state ok), with the worker running',
        );
      }
      const info = providerCatalog.tables.find((t) => t.schema === captured.schema && t.name === captured.name);
      tables.push({
        captured,
        state: tableState,
        estimatedRows: info?.estimatedRows ?? null,
        partitioned: { provider: isPartitioned(providerCatalog, captured), subscriber: isPartitioned(subscriberCatalog, captured), writer: isPartitioned(writerCatalog, captured) },
      });
    }
    const writerSide = writer.name === provider.name ? 'provider' : writer.name === subscriber.name ? 'subscriber' : null;
    plans.push({
      direction,
      queue,
      consumer: consumers.get(subscriber.name) ?? subscriber.name,
      providerNode: provider.name,
      subscriberNode: subscriber.name,
      providerDb: databaseOf(desired, provider.database),
      subscriberDb: databaseOf(desired, subscriber.database),
      providerCatalog,
      writerNode: writer.name,
      writerDb: databaseOf(desired, writer.database),
      writerSide,
      followers: followed.map((f) => ({ side: f.side, node: f.node.name, consumer: consumers.get(f.node.name)!, display: databaseOf(desired, f.node.database).display })),
      tables,
    });
  }
  for (const w of wanted) {
    const label = displayQualified(w.schema, w.name);
    if (plans.some((p) => p.tables.some((t) => t.captured.schema === w.schema && t.captured.name === w.name))) continue;
    const roots = plans.map((p) => catalogs.get(p.writerDb.name)!);
    if (!roots.some((c) => c.tables.some((t) => t.schema === w.schema && t.name === w.name))) {
      const candidates = [...new Set(roots.flatMap((c) => c.tables.map((t) => displayQualified(t.schema, t.name))))];
      const guess = closest(label, candidates);
      throw new CompareError('unknown_table', `table ${label} does not exist on the root`, guess ? `did you mean ${guess}?` : 'check the name (schema.table, or table for public)');
    }
    throw new CompareError('table_not_replicated', `table ${label} is not replicated by the selected queue(s)`, 'add it to the queue\'s tables in the file and run `pgconvey apply`, or name a replicated table');
  }
  return plans;
}

/** A table named on the command line; CompareError for a malformed name or a glob. */
function tableNameOf(text: string): QualifiedName {
  try {
    return parseTableName(text);
  } catch (err) {
    if (err instanceof TableNameError) throw new CompareError(err.code, err.message, err.hint);
    throw err;
  }
}
