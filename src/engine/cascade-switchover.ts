/**
 * Switchover inside a cascade: the engine calls of the SQL in functions.sql's
 * "Switchover inside a cascade" section. A branch whose provider is the root
 * takes over writes as the root of its own queue (`promoteBranchQueue`, in the
 * hand-over's transaction), with the tick ids it re-queued, so the nodes below
 * it keep following; the old root's queue stops ticking just before
 * (`freezeQueue`). The way back (a switch back to the old root): the new
 * root's queue becomes a branch of the old root again at a junction tick both
 * queues take (`demoteQueue` there, then `thawQueue` on the old root). And
 * what a switchover asks about a node's queue (`queueRole`).
 */
import type pg from 'pg';
import { PgconveyError } from '../kernel/index.js';

/** What the queue is on this database: a root's (ticks here), a branch's (follows `provider`), or a root's frozen by a switchover to `provider`. */
export type QueueRole = { kind: 'none' } | { kind: 'root' } | { kind: 'branch'; provider: string; consumer: string } | { kind: 'frozen'; follows: string };

/** A cascade step found the queues out of step: code `switchover_cascade_out_of_step`. */
export class CascadeSwitchoverError extends PgconveyError {
  constructor(message: string) {
    super('switchover_cascade_out_of_step', message, 'the queues were changed behind the switchover; `pgconvey status FILE` shows each node\'s ticks (docs/operations.md, "Switchover inside a cascade")');
  }
}

function translate(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'PCS01' || e?.code === 'PCS02' || e?.code === 'PCB01') return new CascadeSwitchoverError(e.message ?? 'out of step');
  return err;
}

async function call<T>(client: pg.Client, sql: string, params: unknown[]): Promise<T> {
  try {
    return (await client.query<{ r: T }>(sql, params)).rows[0]!.r;
  } catch (err) {
    throw translate(err);
  }
}

export async function queueRole(client: pg.Client, queue: string): Promise<QueueRole> {
  const { rows } = await client.query<{ provider: string | null; consumer: string | null }>(
    "SELECT to_jsonb(q) ->> 'branch_provider' AS provider, to_jsonb(q) ->> 'branch_consumer' AS consumer FROM pgconvey.queue q WHERE queue_name = $1",
    [queue],
  );
  const r = rows[0];
  if (!r) return { kind: 'none' };
  if (r.provider === null) return { kind: 'root' };
  if (r.consumer === null) return { kind: 'frozen', follows: r.provider };
  return { kind: 'branch', provider: r.provider, consumer: r.consumer };
}

/** The old root: its queue ticks no more (a switchover to `follows` is handing over); its last tick. Idempotent. */
export async function freezeQueue(client: pg.Client, queue: string, follows: string): Promise<string> {
  return String(await call<string>(client, 'SELECT pgconvey.freeze_queue($1, $2)::text AS r', [queue, follows]));
}

/** The old root ticks again: as it was (tick null), or from the junction tick with `consumer` moved to it. Idempotent; its last tick. */
export async function thawQueue(client: pg.Client, queue: string, tick: string | null, consumer: string): Promise<string> {
  return String(await call<string>(client, 'SELECT pgconvey.thaw_queue($1, $2::bigint, $3)::text AS r', [queue, tick, consumer]));
}

/** The branch taking writes: its queue a root's, its tables captured; run inside the hand-over's transaction. How many tables. */
export async function promoteBranchQueue(client: pg.Client, queue: string, consumer: string): Promise<number> {
  return Number(await call<number>(client, 'SELECT pgconvey.promote_branch_queue($1, $2) AS r', [queue, consumer]));
}

/** The promoted branch's queue a branch of `provider` again, at a junction tick taken now (returned). Idempotent. */
export async function demoteQueue(client: pg.Client, queue: string, provider: string, consumer: string): Promise<string> {
  return String(await call<string>(client, 'SELECT pgconvey.demote_queue($1, $2, $3)::text AS r', [queue, provider, consumer]));
}

/** The consumer `consumer`'s position on this queue, and whether a batch is open; null when not registered. */
export async function consumerPosition(client: pg.Client, queue: string, consumer: string): Promise<{ tick: string; open: boolean } | null> {
  const { rows } = await client.query<{ tick: string; open: boolean }>(
    'SELECT c.last_tick::text AS tick, c.batch_end_tick IS NOT NULL AS open FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 AND c.consumer_name = $2',
    [queue, consumer],
  );
  return rows[0] ?? null;
}

/** The queue's last tick here (null: no queue). */
export async function lastTick(client: pg.Client, queue: string): Promise<string | null> {
  const { rows } = await client.query<{ t: string | null }>('SELECT max(t.tick_id)::text AS t FROM pgconvey.tick t JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1', [queue]);
  return rows[0]?.t ?? null;
}
