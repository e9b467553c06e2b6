/**
 * Chunk planning for one table: its consistency point taken, the table is
 * cut in the provider's key order into chunks of chunkRows rows (each cut
 * the key at that offset after the previous one), and each chunk's count and
 * checksum compared on both sides (narrowing the ones that differ); both
 * snapshots are released at the end.
 */
import { displayQualified } from '../../config/index.js';
import { takeSnapshotsAtOnePosition, type LockReport } from './consistency-point.js';
import { keyAtOffset, type KeyTuple } from './hashing.js';
import { RangeComparer } from './narrow.js';
import type { Settings } from './options.js';
import type { CompareProgress, TableComparison } from './report.js';
import type { PairPlan, PlannedTable } from './resolve.js';
import type { Connections } from './sessions.js';
import { tableShapes } from './table-shape.js';

type Measured = Omit<TableComparison, 'queue' | 'direction' | 'node' | 'providerNode' | 'provider' | 'subscriber' | 'table' | 'keyColumns' | 'state'>;

export async function compareTable(plan: PairPlan, t: PlannedTable, conns: Connections, opts: Settings, lockBudgetMs: number, canDefer: boolean, lock: LockReport): Promise<Measured> {
  const started = Date.now();
  const shapes = await tableShapes(plan, t, conns);
  const table = displayQualified(t.captured.schema, t.captured.name);
  const progress = (p: Pick<CompareProgress, 'rowsDone' | 'chunksDone' | 'waitingFor'>) =>
    opts.onProgress?.({ queue: plan.queue, node: plan.subscriberNode, table, rowsEstimated: t.estimatedRows, seconds: (Date.now() - started) / 1000, ...p });
  await takeSnapshotsAtOnePosition(plan, t, conns, opts, { deadline: Date.now() + lockBudgetMs, canDefer, report: lock, progress });
  try {
    const ranges = new RangeComparer(conns, shapes, t.captured.keyColumns, opts);
    let after: KeyTuple | null = null;
    let chunks = 0;
    for (;;) {
      const through = await keyAtOffset(conns.provider, shapes.provider, { after, through: null }, opts.chunkRows - 1);
      await ranges.compareChunk({ after, through });
      chunks++;
      progress({ rowsDone: ranges.providerRows, chunksDone: chunks });
      if (!through) break;
      after = through;
    }
    const equal = ranges.differing.length === 0 && ranges.moreDiffering === 0;
    return {
      compared: true,
      providerRows: ranges.providerRows,
      subscriberRows: ranges.subscriberRows,
      equal,
      chunks,
      differingRanges: ranges.differing,
      moreDifferingRanges: ranges.moreDiffering,
      writersPausedMs: Math.round(lock.pausedMs),
      writersLongestPauseMs: Math.round(lock.longestPauseMs),
      lockAttempts: lock.attempts,
      waitedFor: [...lock.waited.values()].map((w) => ({ ...w, waitedMs: Math.round(w.waitedMs) })),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    // Read-only snapshots: nothing to keep.
    await conns.provider.query('ROLLBACK');
    await conns.subscriber.query('ROLLBACK');
  }
}
