/**
 * The planner on partitioned tables and inheritance (plain data): a
 * partitioned parent is one replicated table (its partitions with it, the
 * highest selected ancestor wins); partitions attached or detached since its
 * capture are planned and shown; inheritance children are tables of their own.
 */
import { describe, expect, it } from 'vitest';
import type { NodeCatalog, TableInfo } from '../../../src/catalog/index.js';
import { buildPlan } from '../../../src/planner/index.js';
import { FILE, TABLES, catalog, shopSettings, state, table } from './fixtures.js';

const Q = 7; // queue id: triggers are pgconvey_*_7
const ID = 4; // captured table id of public.payment: functions capture_4, capture_truncate_4, capture_truncate_rows_4

const part = (name: string, parent: string, kind: 'r' | 'p' = 'r', extra: Partial<TableInfo> = {}) =>
  table(name, ['id', 'total'], ['id'], { kind, partitionOf: { schema: 'public', name: parent }, ...extra });
/** The triggers add_table leaves on a partition (PG 10: the row trigger on each leaf too). */
const captured = (t: TableInfo, major: number): TableInfo => {
  const fns: Record<string, string> = { [`pgconvey_truncate_${Q}`]: `capture_truncate_${ID}`, [`pgconvey_truncate_rows_${Q}`]: `capture_truncate_rows_${ID}` };
  if (major < 11 && t.kind === 'r') fns[`pgconvey_capture_${Q}`] = `capture_${ID}`;
  return { ...t, triggers: Object.keys(fns), triggerModes: Object.fromEntries(Object.keys(fns).map((k) => [k, 'O'])), triggerFunctions: fns };
};
const parent = (major: number, withTriggers: boolean): TableInfo => {
  const names = [...(major >= 11 ? [`pgconvey_capture_${Q}`] : []), `pgconvey_truncate_${Q}`, `pgconvey_truncate_rows_${Q}`];
  return table('payment', ['id', 'total'], ['id'], {
    kind: 'p',
    ...(withTriggers ? { triggers: names, triggerModes: Object.fromEntries(names.map((n) => [n, 'O'])) } : {}),
  });
};
const tree = (major: number, withTriggers: boolean): TableInfo[] => {
  const parts = [part('payment_p1', 'payment'), part('payment_p2', 'payment', 'p'), part('payment_p2a', 'payment_p2')];
  return [parent(major, withTriggers), ...(withTriggers ? parts.map((p) => captured(p, major)) : parts)];
};

const engineOf = (tables: string[]) => ({
  version: 10,
  content: null,
  queues: [
    {
      name: 'shop',
      id: Q,
      lastTick: '9',
      settings: shopSettings(),
      consumers: [{ name: 'new_leaf', lastTick: '9' }],
      tables: tables.map((n, i) => ({ schema: 'public', name: n, keyColumns: n === 'audit' ? ['event_id'] : ['id'], columns: n === 'audit' ? ['event_id', 'body'] : n === 'customers' ? ['id', 'name'] : ['id', 'total'], id: n === 'payment' ? ID : 100 + i })),
      sequences: [{ schema: 'public', name: 'orders_id_seq' }],
    },
  ],
  subscriptions: [],
});
const CAPTURED = ['audit', 'customers', 'orders', 'payment'];
const withCapture = (t: TableInfo): TableInfo =>
  t.kind === 'r' && !t.partitionOf && t.name !== 'tmp_scratch'
    ? { ...t, triggers: [`pgconvey_capture_${Q}`, `pgconvey_truncate_${Q}`], triggerModes: { [`pgconvey_capture_${Q}`]: 'O', [`pgconvey_truncate_${Q}`]: 'O' } }
    : t;

/** Provider and subscriber in step: payment captured and copied. */
function converged(major: number, providerTables = [...TABLES.map(withCapture), ...tree(major, true)], subscriberTables = [...TABLES, ...tree(17, false)]): Record<string, NodeCatalog> {
  return {
    old: catalog(major, providerTables, { engine: engineOf(CAPTURED) }),
    new: catalog(17, subscriberTables, {
      engine: { version: 10, content: null, queues: [], subscriptions: [{ queue: 'shop', consumer: 'new_leaf', completedTick: '9', tables: CAPTURED.map((n) => ({ schema: 'public', name: n, state: 'ok', copyPin: null, copyGeneration: null })) }] },
    }),
  };
}

const plan = (catalogs: Record<string, NodeCatalog>, text = FILE) => buildPlan({ state: state(text), catalogs, engineVersion: 10 });
const codes = (p: ReturnType<typeof plan>) => p.checks.map((c) => c.code).sort();

describe('planner: partitioned tables', () => {
  it('captures and copies the parent as one table, never its partitions on their own', () => {
    const p = plan({ old: catalog(12, [...TABLES, ...tree(12, false)]), new: catalog(17, [...TABLES, ...tree(17, false)]) });
    expect(p.checks).toEqual([]);
    expect(p.actions.filter((a) => a.kind === 'capture_table' || a.kind === 'add_subscriber_table').map((a) => a.id)).toEqual([
      'capture_table:old_root:public.audit',
      'capture_table:old_root:public.customers',
      'capture_table:old_root:public.orders',
      'capture_table:old_root:public.payment',
      'add_subscriber_table:new_leaf:public.audit',
      'add_subscriber_table:new_leaf:public.customers',
      'add_subscriber_table:new_leaf:public.orders',
      'add_subscriber_table:new_leaf:public.payment',
    ]);
  });

  it('lets the parent win over a partition listed under entries, with a warning', () => {
    const file = FILE.replace('public.audit: { key: [event_id] }', 'public.audit: { key: [event_id] }\n        public.payment_p2a: {}');
    const p = plan({ old: catalog(12, [...TABLES, ...tree(12, false)]), new: catalog(17, [...TABLES, ...tree(17, false)]) }, file);
    expect(p.checks.map((c) => [c.code, c.message])).toEqual([
      ['partition_covered_by_parent', 'table public.payment_p2a is listed under entries, but it is a partition of public.payment, which is selected too: it replicates as part of public.payment'],
    ]);
    expect(p.actions.some((a) => a.object === 'public.payment_p2a')).toBe(false);
  });

  it('replicates a sub-partitioned level selected alone as its own tree', () => {
    const file = FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.payment"]');
    const p = plan({ old: catalog(12, [...TABLES, ...tree(12, false)]), new: catalog(17, [...TABLES, ...tree(17, false)]) }, file);
    expect(p.actions.filter((a) => a.kind === 'capture_table').map((a) => a.object)).toEqual(['public.audit', 'public.customers', 'public.orders', 'public.payment_p1', 'public.payment_p2']);
  });

  for (const major of [10, 12, 17]) {
    it(`plans nothing once captured, and captures a new partition at the next apply (PG ${major})`, () => {
      expect(plan(converged(major))).toMatchObject({ checks: [], actions: [] });
      const catalogs = converged(major, [...TABLES.map(withCapture), ...tree(major, true), part('payment_p3', 'payment')]);
      const p = plan(catalogs);
      expect(p.actions.map((a) => [a.id, a.change, a.reason])).toEqual([
        ['capture_table:old_root:public.payment', 'update', 'partition(s) public.payment_p3 attached or created since it was captured'],
      ]);
      // PG 10 has no row triggers on partitioned tables: the new leaf's rows are not captured until then.
      expect(codes(p)).toEqual(major < 11 ? ['partition_captured_late', 'partition_missing_on_subscriber'] : ['partition_missing_on_subscriber']);
    });
  }

  it('refuses a partition whose capture trigger is disabled', () => {
    const provider = [...TABLES.map(withCapture), ...tree(17, true).map((t) => (t.name === 'payment_p1' ? { ...t, triggerModes: { ...t.triggerModes, [`pgconvey_truncate_rows_${Q}`]: 'D' } } : t))];
    const p = plan(converged(17, provider));
    expect(p.errored).toBe(true);
    expect(p.checks.map((c) => [c.code, c.message])).toEqual([
      ['capture_trigger_disabled', `the capture trigger pgconvey_truncate_rows_${Q} of partition public.payment_p1 of public.payment (queue "shop") is disabled: writes to the partition are not captured`],
    ]);
  });

  it('shows a partition detached on the provider (and still attached on the subscriber) as drift', () => {
    const detached = { ...captured(part('payment_p1', 'payment'), 12), partitionOf: null };
    const provider = [...TABLES.map(withCapture), ...tree(12, true).filter((t) => t.name !== 'payment_p1'), detached];
    const file = FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.payment_p1"]');
    const p = plan(converged(12, provider), file);
    expect(p.actions.map((a) => [a.id, a.reason])).toEqual([['capture_table:old_root:public.payment', 'table(s) public.payment_p1 detached from it (their capture triggers go)']]);
    expect(p.checks.map((c) => [c.severity, c.code, c.message])).toEqual([
      ['warning', 'partition_detached', expect.stringContaining('table public.payment_p1 was a partition of public.payment (queue "shop") and is detached on the provider')],
      ['warning', 'partition_detached', expect.stringContaining('table public.payment_p1 is a partition of public.payment on node "new_leaf" but not on the provider')],
    ]);
    // Applied (the triggers gone) and detached on the subscriber too: nothing left.
    const done = { ...detached, triggers: [], triggerModes: {}, triggerFunctions: {} };
    const subscriber = [...TABLES, ...tree(17, false).filter((t) => t.name !== 'payment_p1'), { ...part('payment_p1', 'payment'), partitionOf: null }];
    expect(plan(converged(12, [...provider.filter((t) => t.name !== 'payment_p1'), done], subscriber), file)).toMatchObject({ checks: [], actions: [] });
  });

  it('warns of provider partitions the subscriber has no partition of the same name for', () => {
    const subscriber = [...TABLES, ...tree(17, false).filter((t) => t.name !== 'payment_p2a')];
    const p = plan(converged(12, undefined, subscriber));
    expect(p.checks.map((c) => c.code)).toEqual(['partition_missing_on_subscriber']);
    expect(p.checks[0]!.message).toContain('public.payment_p2a');
  });
});

describe('planner: inheritance (INHERITS)', () => {
  const logs = [table('logs', ['id', 'total']), table('logs_2023', ['id', 'total'], ['id'], { inherits: [{ schema: 'public', name: 'logs' }] })];
  it('replicates parent and children as tables of their own, and says when a child is left out', () => {
    const all = plan({ old: catalog(12, [...TABLES, ...logs]), new: catalog(17, [...TABLES, ...logs]) });
    expect(all.checks).toEqual([]);
    expect(all.actions.filter((a) => a.kind === 'capture_table').map((a) => a.object)).toContain('public.logs_2023');
    const file = FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.logs_2*"]');
    const p = plan({ old: catalog(12, [...TABLES, ...logs]), new: catalog(17, [...TABLES, ...logs]) }, file);
    expect(p.checks.map((c) => [c.code, c.message])).toEqual([
      ['inheritance_children_not_selected', 'table public.logs has inheritance children public.logs_2023 that are not selected: only the rows of public.logs itself replicate (as with ONLY), theirs do not'],
    ]);
  });
});

describe('planner: partition trees keyed by {schema, name}', () => {
  // "a.b".c and a."b.c" were one string, a.b.c, in the catalog's partitionOf: the partitions of one
  // were taken for the other's (seen failing before partitionOf became a {schema, name}).
  const parent = (schema: string, name: string): TableInfo => ({ ...table(name, ['id', 'total']), schema, kind: 'p' });
  const tables = [parent('a.b', 'c'), parent('a', 'b.c'), { ...table('c_1', ['id', 'total']), schema: 'a.b', partitionOf: { schema: 'a.b', name: 'c' } }];
  it('finds the partitions of the right parent only', async () => {
    const { partitionsOf, ancestorsOf } = await import('../../../src/planner/partitions.js');
    const cat = catalog(17, tables);
    expect(partitionsOf(cat, { schema: 'a.b', name: 'c' }).map((t) => t.name)).toEqual(['c_1']);
    expect(partitionsOf(cat, { schema: 'a', name: 'b.c' })).toEqual([]);
    expect(ancestorsOf(cat, cat.tables[2]!).map((t) => [t.schema, t.name])).toEqual([['a.b', 'c']]);
  });
});
