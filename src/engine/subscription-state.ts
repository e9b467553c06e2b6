/**
 * A subscription as its subscriber holds it (`pgconvey.subscription`):
 * whether it exists, the tick it has applied through, and its switched-over
 * mark — set in the hand-over of a switchover to this subscriber (it took
 * over the writes), cleared when the writes are switched back.
 */
import type pg from 'pg';

export async function isSubscribed(subscriber: pg.Client, queue: string, consumer: string): Promise<boolean> {
  return (await subscriber.query('SELECT 1 FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer])).rowCount! > 0;
}

/** The last tick the subscription applied, as text; null when it has none or does not exist. */
export async function completedTick(subscriber: pg.Client, queue: string, consumer: string): Promise<string | null> {
  const { rows } = await subscriber.query<{ tick: string | null }>('SELECT completed_tick::text AS tick FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
  return rows[0]?.tick ?? null;
}

/** When writes were switched over to this subscriber (null: never, or switched back; also on an engine older than the mark). */
export async function switchedOverAt(subscriber: pg.Client, queue: string, consumer: string): Promise<Date | null> {
  const { rows } = await subscriber.query<{ at: Date | null }>(
    "SELECT (to_jsonb(s) ->> 'switched_over_at')::timestamptz AS at FROM pgconvey.subscription s WHERE queue_name = $1 AND consumer_name = $2",
    [queue, consumer],
  );
  return rows[0]?.at ?? null;
}

/** The hand-over: this subscriber takes the writes now. Run inside the caller's transaction. */
export async function markSwitchedOver(subscriber: pg.Client, queue: string, consumer: string): Promise<void> {
  await subscriber.query('UPDATE pgconvey.subscription SET switched_over_at = now() WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
}

/** The switch back: the writes went back to the provider. Run inside the caller's transaction. */
export async function clearSwitchedOver(subscriber: pg.Client, queue: string, consumer: string): Promise<void> {
  await subscriber.query('UPDATE pgconvey.subscription SET switched_over_at = NULL WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
}
