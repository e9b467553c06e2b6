/**
 * The pure parts of holding one table on a schema mismatch (#17 part 3,
 * engine/table-hold.ts): which tables can be held alone and at which tick,
 * the message status shows, and that a held table's pin is kept.
 */
import { describe, expect, it } from 'vitest';
import { HOLD_NO_SNAPSHOT, holdMessage, holdTickOf } from '../../src/engine/table-hold.js';
import { SchemaMismatchError } from '../../src/engine/ddl-mismatch.js';
import { holdsEvents, isCopyInProgress, TABLE_STATES } from '../../src/engine/table-state.js';
import { parseSnapshot, snapshotSees } from '../../src/engine/snapshot.js';
import { copyPinName, stalePins } from '../../src/kernel/index.js';

describe('holding one table on a schema mismatch', () => {
  const base = { schema: 'public', name: 'Orders', copyGeneration: '3' };

  it('holds an ok table at the batch start, a replaying one at its held tick, never a table merging a copy', () => {
    expect(holdTickOf({ ...base, copySnapshot: null, copyTick: null }, '40')).toBe('40');
    expect(holdTickOf({ ...base, copySnapshot: HOLD_NO_SNAPSHOT, copyTick: '12' }, '40')).toBe('12');
    expect(holdTickOf({ ...base, copySnapshot: '100:120:105', copyTick: '12' }, '40')).toBeNull();
  });

  it('a resumed table skips nothing and is merged by any batch', () => {
    const none = parseSnapshot(HOLD_NO_SNAPSHOT);
    expect(snapshotSees(parseSnapshot('500:510:503,507'), none)).toBe(true);
  });

  it('says which columns, since which tick, and what to run', () => {
    const err = new SchemaMismatchError({ schema: 'public', name: 'Orders' }, ['Total'], ['ALTER TABLE "public"."Orders" ADD COLUMN "Total" numeric;'], { start: '40', end: '41' }, 'q', []);
    expect(holdMessage(err, '40')).toBe(
      "held since tick 40: the subscriber's table lacks the column(s) Total that the provider's rows carry (a schema change made on the provider without pgconvey execute); " +
        'its events are kept on the provider and the other tables go on; run on the subscriber: ALTER TABLE "public"."Orders" ADD COLUMN "Total" numeric; — the worker then applies the held events by itself',
    );
  });

  it('keeps the pin of a held table, not its copy as in progress', () => {
    expect(TABLE_STATES).toContain('held');
    expect(isCopyInProgress('held')).toBe(false);
    expect(holdsEvents('held')).toBe(true);
    const pin = copyPinName('s', 7, 'public', 'Orders');
    expect(stalePins([pin], new Map([['s', [{ state: 'held' as const, copyPin: pin, copyGeneration: '7' }]]]), holdsEvents)).toEqual([]);
    expect(stalePins([pin], new Map([['s', [{ state: 'ok' as const, copyPin: pin, copyGeneration: '7' }]]]), holdsEvents)).toEqual([pin]);
  });
});
