/**
 * Where a dotted path of a loaded file is (as plan checks name it, e.g.
 * `queues.shop.tables.entries`): what gives a plan check its FILE:LINE:COL.
 */
import { describe, expect, it } from 'vitest';
import { loadDesiredStateFromText } from '../../../src/config/index.js';

const TEXT = `version: 1
databases:
  old: "host=a dbname=x"
  new: "host=b dbname=x"
queues:
  shop:
    nodes:
      old_root: { database: old, type: root }
      new_leaf: { database: new, type: leaf, provider: old_root }
    tables:
      include: ["public.*"]
      entries:
        public.audit: { key: [event_id] }
`;

describe('locate', () => {
  it('gives the position of the key a dotted path ends at, and nothing for a path the file lacks', () => {
    const { state, locate } = loadDesiredStateFromText('plans/shop.yaml', TEXT);
    expect(state).toBeDefined();
    expect(locate!('queues.shop.tables')).toEqual({ file: 'plans/shop.yaml', line: 10, col: 5 });
    expect(locate!('queues.shop.tables.entries')).toEqual({ file: 'plans/shop.yaml', line: 12, col: 7 });
    expect(locate!('queues.shop.tables.include')).toEqual({ file: 'plans/shop.yaml', line: 11, col: 7 });
    expect(locate!('queues.shop.sequences')).toBeUndefined();
    expect(locate!('queues.other.tables')).toBeUndefined();
  });
});
