/**
 * Step 7, `reverse` (forward, with --reverse): replication from the new node
 * back to the old one, set up by engine/reverse.ts over the forward queue's
 * tables (those just verified equal, same keys) and sequences. And on the
 * way back, `drop-reverse`: the reverse queue goes, the new node's
 * switched-over mark is cleared and its fence becomes standby, in one
 * transaction on the new node.
 */
import type pg from 'pg';
import type { DatabaseSpec } from '../../config/index.js';
import { inTransaction } from '../../db/index.js';
import { capturedSequences, capturedTables, clearSwitchedOver, dropReverseQueue, markStandby, reverseQueueName, setUpReverse } from '../../engine/index.js';
import { nameKey, type QualifiedName } from '../../kernel/index.js';
import type { SwitchoverReport } from './report.js';
import type { SwitchoverRun } from './run.js';

export async function setUpReverseStep(run: SwitchoverRun, old: pg.Client, neu: pg.Client, newDb: DatabaseSpec, tables: readonly QualifiedName[]): Promise<void> {
  await run.step('reverse', async () => {
    const reverse = await reverseReplication(run, old, neu, newDb, tables);
    run.report.reverse = reverse;
    return { value: null, detail: `queue "${reverse.queue}" on "${run.topology.target.name}": ${reverse.tables} tables, ${reverse.sequences} sequences, consumer "${reverse.consumer}"` };
  });
}

async function reverseReplication(run: SwitchoverRun, old: pg.Client, neu: pg.Client, newDb: DatabaseSpec, tables: readonly QualifiedName[]): Promise<NonNullable<SwitchoverReport['reverse']>> {
  const t = run.topology;
  const consumer = t.root.name;
  const wanted = new Set(tables.map(nameKey));
  const carried = (await capturedTables(old, t.queue.name)).filter((c) => wanted.has(nameKey(c)));
  const sequences = await capturedSequences(old, t.queue.name);
  const d = t.queue.daemons;
  const { queue } = await setUpReverse(old, neu, {
    forwardQueue: t.queue.name,
    consumer,
    providerDatabase: newDb.name,
    settings: {
      tickerMaxCount: d.ticker.maxEvents,
      tickerMaxLagMs: d.ticker.maxLagMs,
      tickerIdlePeriodMs: d.ticker.idlePeriodMs,
      tickerMinIntervalMs: d.ticker.minIntervalMs,
      rotationTxids: d.maintenance.rotationTransactions,
      tickRetentionMs: d.maintenance.tickRetentionMs,
    },
    tables: carried,
    sequences,
  });
  return { queue, consumer, provider: newDb.name, tables: carried.length, sequences: sequences.length };
}

/** The way back, on the new node `leaf` in one transaction: its reverse queue (when still there), its switched-over mark, and its fence becomes standby. */
export async function dropReverseStep(run: SwitchoverRun, neu: pg.Client, leaf: string, reverseExists: boolean): Promise<void> {
  const forwardQueue = run.topology.queue.name;
  const consumer = run.topology.root.name;
  await run.step('drop-reverse', async () => {
    await inTransaction(neu, async () => {
      if (reverseExists) await dropReverseQueue(neu, forwardQueue, consumer);
      await clearSwitchedOver(neu, forwardQueue, leaf);
      await markStandby(neu, consumer);
    });
    const queue = reverseQueueName(forwardQueue);
    return { value: null, detail: reverseExists ? `reverse queue "${queue}" dropped on "${leaf}"` : `reverse queue "${queue}" was dropped already` };
  });
}
