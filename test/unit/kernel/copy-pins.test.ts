/**
 * Copy pin names: unambiguous for new pins (the table shown with
 * displayName), unchanged for plain names, and pins of older engines still
 * recognised (owner, generation, staleness).
 */
import { describe, expect, it } from 'vitest';
import { isCopyInProgress } from '../../../src/engine/table-state.js';
import { copyPinGeneration, copyPinName, copyPinOwner, isCopyPin, stalePins } from '../../../src/kernel/index.js';

describe('copy pins', () => {
  it('are named as always for plain names', () => {
    expect(copyPinName('new_leaf', 7, 'public', 'orders')).toBe('copy:new_leaf:7:public.orders');
  });

  it('tell a schema with a dot from a table with a dot', () => {
    const a = copyPinName('new_leaf', 7, 'a.b', 'c');
    const b = copyPinName('new_leaf', 7, 'a', 'b.c');
    expect(a).toBe('copy:new_leaf:7:"a.b".c');
    expect(b).toBe('copy:new_leaf:7:a."b.c"');
    for (const pin of [a, b]) {
      expect(isCopyPin(pin)).toBe(true);
      expect(copyPinOwner(pin)).toBe('new_leaf');
      expect(copyPinGeneration(pin)).toBe(7n);
    }
  });

  it('recognise the pins of older engines (no generation; unquoted names)', () => {
    for (const pin of ['copy:new_leaf:public.orders', 'copy:new_leaf:a.b.c']) {
      expect(copyPinOwner(pin)).toBe('new_leaf');
      expect(copyPinGeneration(pin)).toBeNull();
    }
    expect(copyPinGeneration('copy:new_leaf:3:a.b.c')).toBe(3n);
  });

  it('keep a pin a running copy names, whatever its table is called', () => {
    const running = copyPinName('new_leaf', 9, 'Sales', 'Order Items');
    const holders = new Map([['new_leaf', [{ state: 'copying' as const, copyPin: running, copyGeneration: '9' }]]]);
    expect(stalePins([running, 'copy:new_leaf:3:public.orders'], holders, isCopyInProgress)).toEqual(['copy:new_leaf:3:public.orders']);
  });
});
