/**
 * One pair of nodes (a provider and its subscriber, or any two nodes of a cascade): its sessions opened once, then every `ok`
 * table compared in turn; a table whose lock is held by a long transaction
 * is deferred and visited again after the pair's other tables. Tables not
 * `ok` are reported as not compared.
 */
import type pg from 'pg';
import { displayQualified } from '../../config/index.js';
import { compareTable } from './chunks.js';
import { Deferred, newLockReport, type LockReport } from './consistency-point.js';
import type { Settings } from './options.js';
import type { TableComparison } from './report.js';
import type { PairPlan, PlannedTable } from './resolve.js';
import { openConnections } from './sessions.js';

export async function comparePair(plan: PairPlan, opts: Settings): Promise<TableComparison[]> {
  const base = (t: PlannedTable) => ({
    queue: plan.queue,
    direction: plan.direction,
    node: plan.subscriberNode,
    providerNode: plan.providerNode,
    provider: plan.providerDb.display,
    subscriber: plan.subscriberDb.display,
    table: displayQualified(t.captured.schema, t.captured.name),
    keyColumns: t.captured.keyColumns,
    state: t.state,
  });
  const notCompared = (t: PlannedTable): TableComparison => ({
    ...base(t),
    compared: false,
    providerRows: null,
    subscriberRows: null,
    equal: null,
    chunks: 0,
    differingRanges: [],
    moreDifferingRanges: 0,
    writersPausedMs: null,
    writersLongestPauseMs: null,
    lockAttempts: null,
    waitedFor: [],
    seconds: null,
  });
  if (!plan.tables.some((t) => t.state === 'ok')) return plan.tables.map(notCompared);

  const opened: pg.Client[] = [];
  try {
    const conns = await openConnections(plan, opts, opened);
    const out = new Map<PlannedTable, TableComparison>();
    // A table whose lock is held by a long transaction is visited again after the others.
    const revisit: Array<{ table: PlannedTable; lock: LockReport }> = [];
    for (const [i, t] of plan.tables.entries()) {
      if (t.state !== 'ok') {
        out.set(t, notCompared(t));
        continue;
      }
      const othersLeft = plan.tables.slice(i + 1).some((x) => x.state === 'ok');
      try {
        out.set(t, { ...base(t), ...(await compareTable(plan, t, conns, opts, othersLeft ? opts.revisitAfterMs : opts.lockWaitMs, othersLeft, newLockReport())) });
      } catch (err) {
        if (!(err instanceof Deferred)) throw err;
        revisit.push({ table: t, lock: err.lock });
      }
    }
    for (const { table, lock } of revisit) out.set(table, { ...base(table), ...(await compareTable(plan, table, conns, opts, opts.lockWaitMs, false, lock)) });
    return plan.tables.map((t) => out.get(t)!);
  } finally {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  }
}
