/**
 * Reverse replication: what `switchover --reverse` sets up so the old node
 * keeps receiving the writes made on the new one after a switchover — the
 * queue `<queue>_reverse` on the new node, capturing the forward queue's
 * tables (same keys) and sequences, and on the old node a subscription to it
 * that records its provider's database (`pgconvey.subscription
 * .provider_database`: the mark that tells a reverse subscription from the
 * file's own). The one place that names the reverse queue, finds reverse
 * subscriptions (switchover, compare, status, run), and sets one up or
 * removes it.
 */
import type pg from 'pg';
import type { QualifiedName } from '../kernel/index.js';
import { inTransaction } from '../db/index.js';
import { addSequence, addSubscriberTable, addTable, createQueue, dropQueue, registerConsumer, unregisterConsumer, type QueueSettings } from './api.js';

const SUFFIX = '_reverse';

/** The name of the reverse queue of `queue`: `<queue>_reverse`, cut to the 63 characters a queue name may have. */
export function reverseQueueName(queue: string): string {
  return `${queue.slice(0, 63 - SUFFIX.length)}${SUFFIX}`;
}

/** The forward queue (one of `queues`) whose reverse queue is `reverseQueue`, if any. */
export function forwardQueueOf(reverseQueue: string, queues: readonly string[]): string | undefined {
  return queues.find((q) => reverseQueueName(q) === reverseQueue);
}

/** A subscription that records its provider: replication a switchover set up, not one the file names. */
export interface ReverseSubscription {
  queue: string;
  consumer: string;
  /** The database (by its name in the file) the subscription reads from: the node that took over writes. */
  providerDatabase: string;
}

const ENGINE_PRESENT_SQL = "SELECT pg_catalog.to_regclass('pgconvey.subscription') IS NOT NULL AS ok";

// to_jsonb: an engine older than the column reads as having no reverse subscription.
const REVERSE_SUBSCRIPTIONS_SQL = `
  SELECT queue_name AS queue, consumer_name AS consumer, to_jsonb(s) ->> 'provider_database' AS provider
    FROM pgconvey.subscription s WHERE to_jsonb(s) ->> 'provider_database' IS NOT NULL ORDER BY 1, 2`;

const REVERSE_SUBSCRIPTION_SQL = `
  SELECT queue_name AS queue, consumer_name AS consumer, to_jsonb(s) ->> 'provider_database' AS provider
    FROM pgconvey.subscription s WHERE queue_name = $1 AND consumer_name = $2 AND to_jsonb(s) ->> 'provider_database' IS NOT NULL`;

const toReverse = (r: { queue: string; consumer: string; provider: string }): ReverseSubscription => ({ queue: r.queue, consumer: r.consumer, providerDatabase: r.provider });

/** Every reverse subscription of this database, by queue and consumer; none without the engine. */
export async function reverseSubscriptions(client: pg.Client): Promise<ReverseSubscription[]> {
  if (!(await client.query<{ ok: boolean }>(ENGINE_PRESENT_SQL)).rows[0]!.ok) return [];
  return (await client.query<{ queue: string; consumer: string; provider: string }>(REVERSE_SUBSCRIPTIONS_SQL)).rows.map(toReverse);
}

/** The reverse subscription of `forwardQueue`'s reverse queue by `consumer` (the old root), or null. Needs the engine. */
export async function reverseSubscriptionOf(client: pg.Client, forwardQueue: string, consumer: string): Promise<ReverseSubscription | null> {
  const { rows } = await client.query<{ queue: string; consumer: string; provider: string }>(REVERSE_SUBSCRIPTION_SQL, [reverseQueueName(forwardQueue), consumer]);
  return rows[0] ? toReverse(rows[0]) : null;
}

/** A table the reverse queue captures, with the forward queue's key columns. */
export interface ReverseTable extends QualifiedName {
  keyColumns: string[];
}

export interface ReverseSetup {
  forwardQueue: string;
  /** The old root's node name: the reverse queue's consumer. */
  consumer: string;
  /** The new node's database name, recorded on the old node as the subscription's provider. */
  providerDatabase: string;
  settings: QueueSettings;
  tables: readonly ReverseTable[];
  sequences: readonly QualifiedName[];
}

/**
 * On NEW (in one transaction) the reverse queue with the tables and
 * sequences, and its consumer registered; on OLD (in another) the
 * subscription at that position, naming NEW's database as its provider, every
 * table `ok`. Idempotent: a re-run keeps every position.
 */
export async function setUpReverse(old: pg.Client, neu: pg.Client, setup: ReverseSetup): Promise<{ queue: string }> {
  const queue = reverseQueueName(setup.forwardQueue);
  let position = '';
  await inTransaction(neu, async () => {
    await createQueue(neu, queue, setup.settings);
    for (const t of setup.tables) await addTable(neu, queue, t.schema, t.name, t.keyColumns);
    for (const s of setup.sequences) await addSequence(neu, queue, s.schema, s.name);
    position = await registerConsumer(neu, queue, setup.consumer);
  });
  await inTransaction(old, async () => {
    await old.query(
      `INSERT INTO pgconvey.subscription (queue_name, consumer_name, completed_tick, provider_database) VALUES ($1, $2, $3, $4)
       ON CONFLICT (queue_name, consumer_name) DO NOTHING`,
      [queue, setup.consumer, position, setup.providerDatabase],
    );
    for (const t of setup.tables) await addSubscriberTable(old, queue, setup.consumer, t.schema, t.name, 'ok');
  });
  return { queue };
}

/** On the new node: the reverse queue's consumer and the queue itself. Run inside the caller's transaction. */
export async function dropReverseQueue(neu: pg.Client, forwardQueue: string, consumer: string): Promise<void> {
  const queue = reverseQueueName(forwardQueue);
  await unregisterConsumer(neu, queue, consumer);
  await dropQueue(neu, queue);
}

/** On the old node: the reverse subscription (and its tables). Run inside the caller's transaction. */
export async function removeReverseSubscription(old: pg.Client, forwardQueue: string, consumer: string): Promise<void> {
  await old.query('DELETE FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [reverseQueueName(forwardQueue), consumer]);
}
