/**
 * Table resolution, before anything is locked: the provider → subscriber
 * pairs of the file selected by --queue and --node, each in the direction
 * writes flow now (after a switchover: the new node through the reverse
 * queue to the old one), their catalogs, and the tables to compare on each
 * with their state on the subscriber. Throws CompareError on bad input.
 */
import type pg from 'pg';
import { introspectNode, type EngineQueueInfo, type NodeCatalog } from '../../catalog/index.js';
import { displayQualified, type DatabaseSpec, type DesiredState, type NodeSpec, type QueueSpec } from '../../config/index.js';
import { connect } from '../../db/index.js';
import { reverseQueueName, reverseSubscriptionOf, switchedOverAt } from '../../engine/index.js';
import { closest, type QualifiedName } from '../../kernel/index.js';
import { TableNameError, parseTableName } from '../table-name.js';
import { CompareError } from './error.js';
import type { CompareOptions } from './options.js';

/** A table as the root's engine catalog captures it: key columns and shipped columns. */
export type CapturedTable = EngineQueueInfo['tables'][number];

/** A captured table, with its state on the subscriber, the provider's row estimate, and whether each side partitions it. */
export interface PlannedTable {
  captured: CapturedTable;
  state: string;
  estimatedRows: number | null;
  partitioned: { provider: boolean; subscriber: boolean };
}

/**
 * One provider → subscriber pair, and the tables to compare on it: a queue's
 * root and leaf, or after a switchover the leaf (now writable) and the root
 * through the reverse queue.
 */
export interface PairPlan {
  direction: 'forward' | 'reverse';
  /** The queue whose position both sides are read at. */
  queue: string;
  /** The subscription's consumer name on the subscriber. */
  consumer: string;
  /** Node names, for messages. */
  providerNode: string;
  subscriberNode: string;
  providerDb: DatabaseSpec;
  subscriberDb: DatabaseSpec;
  providerCatalog: NodeCatalog;
  tables: PlannedTable[];
}

/** The pairs to compare, resolved and checked. */
export async function resolvePlans(state: DesiredState, options: CompareOptions): Promise<PairPlan[]> {
  const wanted = (options.tables ?? []).map(tableNameOf);
  const pairs = await liveDirections(state, selectPairs(state, options));
  const catalogs = await readCatalogs(state, pairs);
  return planPairs(state, pairs, catalogs, wanted);
}

function selectPairs(state: DesiredState, options: CompareOptions): Array<{ queue: QueueSpec; root: NodeSpec; leaf: NodeSpec }> {
  const queues = state.queues.filter((q) => !options.queue || q.name === options.queue);
  if (options.queue && !queues.length) {
    const names = state.queues.map((q) => q.name);
    const guess = closest(options.queue, names);
    throw new CompareError('unknown_queue', `queue "${options.queue}" is not in ${state.file}`, `${guess ? `did you mean "${guess}"? ` : ''}queues: ${names.join(', ')}`);
  }
  const pairs = queues.flatMap((queue) => {
    const root = queue.nodes.find((n) => n.type === 'root')!;
    return queue.nodes.filter((n) => n.type !== 'root' && n.provider === root.name).map((leaf) => ({ queue, root, leaf }));
  });
  const selected = pairs.filter((p) => !options.node || p.leaf.name === options.node);
  if (options.node && !selected.length) {
    const names = [...new Set(pairs.map((p) => p.leaf.name))];
    const guess = closest(options.node, names);
    throw new CompareError(
      'unknown_node',
      `"${options.node}" is not a subscriber of ${options.queue ? `queue "${options.queue}"` : `any queue in ${state.file}`}`,
      `${guess ? `did you mean "${guess}"? ` : ''}subscribers: ${names.join(', ') || 'none'}`,
    );
  }
  return selected;
}

/** A pair to compare, in the direction writes flow now. */
interface LivePair {
  direction: 'forward' | 'reverse';
  queue: string;
  consumer: string;
  provider: NodeSpec;
  subscriber: NodeSpec;
}

/**
 * For each root → leaf pair of the file: the direction writes flow now. After
 * a switchover the leaf took the writes (its subscription is marked switched
 * over); the live direction is then the reverse queue it set up, whose
 * subscription on the root names the leaf's database as its provider.
 * Without one, nothing keeps the two at one position: compare refuses.
 */
async function liveDirections(state: DesiredState, pairs: Array<{ queue: QueueSpec; root: NodeSpec; leaf: NodeSpec }>): Promise<LivePair[]> {
  const clients = new Map<string, Promise<pg.Client>>();
  const client = (database: string) => {
    if (!clients.has(database)) clients.set(database, connect(databaseOf(state, database).connection, 'compare'));
    return clients.get(database)!;
  };
  try {
    const out: LivePair[] = [];
    for (const { queue, root, leaf } of pairs) {
      const forward: LivePair = { direction: 'forward', queue: queue.name, consumer: leaf.name, provider: root, subscriber: leaf };
      const switchedAt = await switchedOverAt(await client(leaf.database), queue.name, leaf.name);
      if (!switchedAt) {
        out.push(forward);
        continue;
      }
      const reverse = await reverseSubscriptionOf(await client(root.database), queue.name, root.name);
      if (reverse?.providerDatabase !== leaf.database) {
        throw new CompareError(
          'compare_after_switchover',
          `node "${leaf.name}" took over writes from "${root.name}" (switchover at ${switchedAt.toISOString()}) and nothing replicates them back to "${root.name}": the two cannot be read at one queue position, and fresh writes on "${leaf.name}" would show as differences`,
          `switch over with --reverse (pgconvey switchover FILE --to ${leaf.name} --reverse) to compare along the reverse queue, or switch back first (pgconvey switchover FILE --to ${root.name})`,
        );
      }
      out.push({ direction: 'reverse', queue: reverseQueueName(queue.name), consumer: root.name, provider: leaf, subscriber: root });
    }
    return out;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.then((x) => x.end()).catch(() => undefined)));
  }
}

async function readCatalogs(state: DesiredState, pairs: LivePair[]): Promise<Map<string, NodeCatalog>> {
  const names = [...new Set(pairs.flatMap((p) => [p.provider.database, p.subscriber.database]))];
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
  for (const { direction, queue, consumer, provider: root, subscriber: leaf } of pairs) {
    const providerCatalog = catalogs.get(root.database)!;
    const subscriberCatalog = catalogs.get(leaf.database)!;
    const engineQueue = providerCatalog.engine?.queues.find((q) => q.name === queue);
    if (!engineQueue) {
      throw new CompareError('queue_not_set_up', `queue "${queue}" is not set up on its ${direction === 'forward' ? 'root ' : ''}node "${root.name}"`, 'run `pgconvey apply` with this file first');
    }
    const subscription = subscriberCatalog.engine?.subscriptions.find((s) => s.queue === queue && s.consumer === consumer);
    if (!subscription) {
      throw new CompareError('not_subscribed', `node "${leaf.name}" is not subscribed to queue "${queue}"`, 'run `pgconvey apply` with this file first');
    }
    const tables: PlannedTable[] = [];
    for (const captured of engineQueue.tables) {
      const isNamed = wanted.some((w) => w.schema === captured.schema && w.name === captured.name);
      if (wanted.length && !isNamed) continue;
      const tableState = subscription.tables.find((t) => t.schema === captured.schema && t.name === captured.name)?.state ?? 'not subscribed';
      if (isNamed && tableState !== 'ok') {
        throw new CompareError(
          'table_not_ready',
          `${displayQualified(captured.schema, captured.name)} cannot be compared on node "${leaf.name}" yet: its state is ${tableState}`,
          tableState === 'not subscribed'
            ? 'run `pgconvey apply` so the subscriber takes the table'
            : tableState === 'held'
              ? 'it is held on a schema mismatch: `pgconvey status` says what to run on the subscriber; it goes on by itself after that'
              : 'wait until its initial copy is done (state ok), with the worker running',
        );
      }
      const info = providerCatalog.tables.find((t) => t.schema === captured.schema && t.name === captured.name);
      tables.push({
        captured,
        state: tableState,
        estimatedRows: info?.estimatedRows ?? null,
        partitioned: { provider: isPartitioned(providerCatalog, captured), subscriber: isPartitioned(subscriberCatalog, captured) },
      });
    }
    plans.push({
      direction,
      queue,
      consumer,
      providerNode: root.name,
      subscriberNode: leaf.name,
      providerDb: databaseOf(desired, root.database),
      subscriberDb: databaseOf(desired, leaf.database),
      providerCatalog,
      tables,
    });
  }
  for (const w of wanted) {
    const label = displayQualified(w.schema, w.name);
    if (plans.some((p) => p.tables.some((t) => t.captured.schema === w.schema && t.captured.name === w.name))) continue;
    const roots = plans.map((p) => p.providerCatalog);
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
