/**
 * Cascades: retention across the cascade, as pgq_node's subscriber
 * watermarks. A branch's worker publishes to its provider its local
 * watermark — the lowest tick it and every node below it still need (its own
 * completed tick, and every consumer of its own queue: its subscribers, their
 * watermarks, copy pins) — as the provider consumer `watermark:<node>`. A
 * consumer holds the provider's event tables and ticks from its position
 * (maint_rotate, maint_ticks), so the root (and every branch) keeps what any
 * node below it needs, and a node can be moved up (change_provider) at its
 * own position. A watermark never moves backwards. A node that stops holds
 * its branch and, through the watermark, every provider above it: status
 * shows who holds each provider (`readRetention`).
 */
import type pg from 'pg';
import { watermarkConsumerName } from '../kernel/index.js';

/**
 * Publishes the subscriber's local watermark to its provider when the
 * subscriber is a branch of `queue`; returns the position the provider holds
 * for it, or null (a leaf: its own consumer on the provider is its position).
 */
export async function publishWatermark(provider: pg.Client, subscriber: pg.Client, queue: string, node: string): Promise<string | null> {
  const { rows } = await subscriber.query<{ wm: string | null }>('SELECT pgconvey.local_watermark($1)::text AS wm', [queue]);
  const wm = rows[0]?.wm ?? null;
  if (wm === null) return null;
  const set = await provider.query<{ pos: string | null }>('SELECT pgconvey.set_subscriber_watermark($1, $2, $3)::text AS pos', [queue, node, wm]);
  return set.rows[0]?.pos ?? null;
}

/** Drops `node`'s watermark on a provider (it no longer reads from there); true if there was one. */
export async function dropWatermark(provider: pg.Client, queue: string, node: string): Promise<boolean> {
  const { rows } = await provider.query<{ ok: boolean }>('SELECT pgconvey.unregister_consumer($1, $2) AS ok', [queue, watermarkConsumerName(node)]);
  return rows[0]!.ok;
}

/** What holds a provider's rotation: its lowest consumer, the tick it is at, and that tick's age. */
export interface RetentionHolder {
  /** The consumer's name on the provider (a node, `watermark:<node>`, or a copy pin). */
  consumer: string;
  tick: string;
  ageSeconds: number | null;
}

/** The consumer of `queue` here at the lowest position (null when it has none). */
export async function readRetention(client: pg.Client, queue: string): Promise<RetentionHolder | null> {
  const { rows } = await client.query<{ consumer_name: string; last_tick: string; age: number | null }>(
    `SELECT c.consumer_name, c.last_tick::text AS last_tick, extract(epoch FROM clock_timestamp() - t.tick_time)::float8 AS age
       FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id)
       LEFT JOIN pgconvey.tick t ON t.queue_id = c.queue_id AND t.tick_id = c.last_tick
      WHERE q.queue_name = $1 ORDER BY c.last_tick, c.consumer_name LIMIT 1`,
    [queue],
  );
  const r = rows[0];
  return r ? { consumer: r.consumer_name, tick: r.last_tick, ageSeconds: r.age === null ? null : Number(r.age) } : null;
}
