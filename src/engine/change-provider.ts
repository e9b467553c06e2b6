/**
 * Cascades: moving a subscriber (a leaf or a branch) to another provider of
 * its queue, without a copy (`~ change_provider`, as pgq_node's
 * change-provider). Under the node's worker lock (no worker applies
 * meanwhile): the node's consumer is registered on the new provider at the
 * node's own completed tick — which the new provider must still hold with
 * every event after it (some consumer of its queue is at or before it: the
 * branch watermarks keep that, engine/watermark.ts) —; a branch's queue then
 * follows the new provider and its watermark moves there; last, the node's
 * consumer, watermark and copy pins on the old provider go. Tick ids are the
 * same across the cascade, so the next batch from the new provider starts
 * exactly at the node's position: nothing lost, nothing twice. Refused while
 * a table of the node is being copied or merged. Idempotent: a move that
 * stopped half way is finished by running it again.
 */
import type pg from 'pg';
import { PgconveyError, copyPinOwner, watermarkConsumerName } from '../kernel/index.js';
import { LOCK_CLASS, tryPieceLockSql } from './locks.js';
import { publishWatermark } from './watermark.js';

/** The move cannot be made exactly now: code `change_provider_refused`. */
export class ChangeProviderRefusedError extends PgconveyError {
  constructor(message: string, hint: string) {
    super('change_provider_refused', message, hint);
  }
}

export interface ChangeProviderResult {
  /** The tick the node continues from on its new provider. */
  tick: string;
  /** It was registered there by this call (false: a move finished again). */
  registered: boolean;
}

/**
 * Moves subscription `node` of `queue` (on `subscriber`) to `newProvider` (node name `newProviderName`);
 * `oldProvider`, when reachable and given, loses the node's consumer, watermark and copy pins.
 */
export async function changeProvider(
  oldProvider: pg.Client | null,
  newProvider: pg.Client,
  subscriber: pg.Client,
  queue: string,
  node: string,
  newProviderName: string,
): Promise<ChangeProviderResult> {
  const key = `worker:${queue}:${node}`;
  const { rows } = await subscriber.query<{ ok: boolean }>(tryPieceLockSql('$1'), [key]);
  if (!rows[0]!.ok) {
    throw new ChangeProviderRefusedError(
      `the worker of node "${node}" is running (it holds its lock): a node is moved to another provider while no worker applies to it`,
      'stop `pgconvey run` for this node (or the whole run), apply again, then start run again: it reads from the new provider',
    );
  }
  try {
    const sub = await subscriber.query<{ tick: string | null }>('SELECT completed_tick::text AS tick FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, node]);
    const tick = sub.rows[0]?.tick ?? null;
    if (tick === null) throw new ChangeProviderRefusedError(`node "${node}" has no position in queue "${queue}" to move`, 'run `pgconvey apply` with the file that subscribes it first');
    const busy = await subscriber.query<{ t: string }>(
      "SELECT format('%I.%I', table_schema, table_name) AS t FROM pgconvey.subscriber_table WHERE queue_name = $1 AND consumer_name = $2 AND state <> 'ok' ORDER BY 1",
      [queue, node],
    );
    if (busy.rows.length) {
      throw new ChangeProviderRefusedError(
        `node "${node}" is still copying or merging ${busy.rows.map((r) => r.t).join(', ')} from its provider`,
        'let the copies finish (`pgconvey status`), then apply again',
      );
    }
    const there = await newProvider.query<{ pos: string }>(
      'SELECT c.last_tick::text AS pos FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 AND c.consumer_name = $2',
      [queue, node],
    );
    let registered = false;
    if (!there.rows.length) {
      try {
        await newProvider.query('SELECT pgconvey.register_consumer_at($1, $2, $3)', [queue, node, tick]);
        registered = true;
      } catch (err) {
        const e = err as { code?: string; message?: string };
        if (e.code === 'PCB03' || e.code === 'PCB04') {
          throw new ChangeProviderRefusedError(
            `node "${node}" cannot continue from "${newProviderName}" at its tick ${tick}: ${e.message}`,
            `keep \`provider:\` as it is; once a node is held by "${newProviderName}"'s watermark (a branch's worker publishes it) the move can be made — or re-add the node (docs/operations.md, "Cascades")`,
          );
        }
        throw err;
      }
    }
    // A branch: its own queue follows the new provider, and its watermark moves there.
    const branch = await subscriber.query('UPDATE pgconvey.queue SET branch_provider = $2 WHERE queue_name = $1 AND branch_provider IS NOT NULL RETURNING queue_id', [queue, newProviderName]);
    if (branch.rowCount) await publishWatermark(newProvider, subscriber, queue, node);
    if (oldProvider) {
      const gone = await oldProvider.query<{ consumer_name: string }>(
        'SELECT c.consumer_name FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1',
        [queue],
      );
      for (const c of gone.rows.map((r) => r.consumer_name).filter((n) => n === node || n === watermarkConsumerName(node) || copyPinOwner(n) === node)) {
        await oldProvider.query('SELECT pgconvey.unregister_consumer($1, $2)', [queue, c]);
      }
    }
    return { tick, registered };
  } finally {
    await subscriber.query(`SELECT pg_catalog.pg_advisory_unlock(${LOCK_CLASS}, pg_catalog.hashtext($1))`, [key]).catch(() => undefined);
  }
}
