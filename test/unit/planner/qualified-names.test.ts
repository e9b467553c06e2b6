/**
 * Table names are data ({schema, name}), never a string joined and split
 * again: a schema named `a.b` with table `c` and a schema `a` with table
 * `b.c` are two tables, with two capture actions of distinct ids, each
 * carrying its own exact schema and name.
 */
import { describe, expect, it } from 'vitest';
import { buildPlan } from '../../../src/planner/index.js';
import { catalog, state, table } from './fixtures.js';

const FILE = `version: 1
databases:
  old: "\${PGCONVEY_OLD_DSN}"
  new: "\${PGCONVEY_NEW_DSN}"
queues:
  shop:
    nodes:
      old_root: { database: old, type: root }
      new_leaf: { database: new, type: leaf, provider: old_root }
    tables:
      entries:
        '"a.b".c': {}
        'a."b.c"': {}
`;

describe('planner: qualified names', () => {
  it('a schema with a dot and a table with a dot are two tables (two capture_table actions, distinct ids)', () => {
    const tables = [table('c', ['id'], ['id'], { schema: 'a.b' }), table('b.c', ['id'], ['id'], { schema: 'a' })];
    const plan = buildPlan({ state: state(FILE), catalogs: { old: catalog(12, tables, { sequences: [] }), new: catalog(17, tables, { sequences: [] }) }, engineVersion: 3 });
    expect(plan.checks).toEqual([]);
    const captures = plan.actions.filter((a) => a.kind === 'capture_table');
    expect(captures).toHaveLength(2);
    expect(new Set(captures.map((a) => a.id)).size).toBe(2);
    expect(captures.map((a) => [a.params.schema, a.params.table]).sort()).toEqual([
      ['a', 'b.c'],
      ['a.b', 'c'],
    ]);
    const adds = plan.actions.filter((a) => a.kind === 'add_subscriber_table');
    expect(adds).toHaveLength(2);
    expect(new Set(adds.map((a) => a.id)).size).toBe(2);
  });

  it('a captured table no longer selected is removed with its exact name (no split on the first dot)', () => {
    const tables = [table('c', ['id'], ['id'], { schema: 'a.b' })];
    const captured = [{ schema: 'a.b', name: 'c', keyColumns: ['id'], columns: ['id'] }];
    const settings = { tickerMaxCount: 0, tickerMaxLagMs: 0, tickerIdlePeriodMs: 0, tickerMinIntervalMs: 0, rotationTxids: 0, tickRetentionMs: 0 };
    const old = catalog(12, tables, { sequences: [], engine: { version: 3, content: null, queues: [{ name: 'shop', lastTick: '9', settings, consumers: [{ name: 'new_leaf', lastTick: '9' }], tables: captured, sequences: [] }], subscriptions: [] } });
    const neu = catalog(17, tables, {
      sequences: [],
      engine: { version: 3, content: null, queues: [], subscriptions: [{ queue: 'shop', consumer: 'new_leaf', completedTick: '9', tables: [{ schema: 'a.b', name: 'c', state: 'ok', copyPin: null, copyGeneration: null }] }] },
    });
    const only = FILE.replace(`        '"a.b".c': {}\n`, '');
    const plan = buildPlan({ state: state(only), catalogs: { old, new: neu }, engineVersion: 3 });
    const removal = plan.actions.find((a) => a.kind === 'remove_capture')!;
    expect([removal.params.schema, removal.params.table]).toEqual(['a.b', 'c']);
    const unsub = plan.actions.find((a) => a.kind === 'remove_subscriber_table')!;
    expect([unsub.params.schema, unsub.params.table]).toEqual(['a.b', 'c']);
  });
});
