/**
 * The worker's info line about what it applied (daemons/engine-daemons.ts
 * AppliedSummary): the first batch at once, then one line per interval with
 * the sums of the batches since.
 */
import { describe, expect, it } from 'vitest';
import { APPLIED_SUMMARY_EVERY_MS, AppliedSummary } from '../../../src/daemons/engine-daemons.js';

const stats = (events: number) => ({ events, rowsDeleted: 1, rowsWritten: events - 1, truncates: 0 });

describe('the applied-batches log line', () => {
  it('comes for the first batch, then once per interval with the sums since', () => {
    const s = new AppliedSummary();
    expect(s.add('5', stats(3), 12, 1_000)).toMatchObject({ batches: 1, events: 3, end_tick: '5', lag_ms: 12, max_lag_ms: 12 });
    expect(s.add('6', stats(10), 40, 2_000)).toBeNull();
    expect(s.add('7', stats(4), 8, 1_000 + APPLIED_SUMMARY_EVERY_MS - 1)).toBeNull();
    expect(s.add('8', stats(6), 9, 1_000 + APPLIED_SUMMARY_EVERY_MS)).toEqual({
      batches: 3, events: 20, deleted: 3, written: 17, truncated: 0, end_tick: '8', lag_ms: 9, max_lag_ms: 40, seconds: 10,
    });
    expect(s.add('9', stats(2), 5, 1_000 + APPLIED_SUMMARY_EVERY_MS + 1)).toBeNull();
  });
});
