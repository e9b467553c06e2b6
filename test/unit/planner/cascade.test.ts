/**
 * The planner's cascade step on plain data: a fresh root → branch → leaf is
 * planned provider-first (the leaf's subscription waits for the branch's
 * queue, which waits for the branch's subscription) and runs in that order;
 * a node subscribed elsewhere than the file's provider is refused
 * (change_provider_not_supported).
 */
import { describe, expect, it } from 'vitest';
import { buildPlan } from '../../../src/planner/index.js';
import { FILE, TABLES, catalog, state } from './fixtures.js';

const CASCADE = FILE.replace('  new: "${PGCONVEY_NEW_DSN}"', '  new: "${PGCONVEY_NEW_DSN}"\n  rep: "host=rep dbname=shop"').replace(
  'new_leaf: { database: new, type: leaf, provider: old_root }',
  'new_leaf: { database: new, type: branch, provider: old_root }\n      rep_leaf: { database: rep, type: leaf, provider: new_leaf }',
);

describe('planner: cascades', () => {
  it('plans a fresh cascade provider-first, and every action runs after what it depends on', () => {
    const plan = buildPlan({ state: state(CASCADE), catalogs: { old: catalog(12, TABLES), new: catalog(16, TABLES), rep: catalog(17, TABLES) }, engineVersion: 3 });
    expect(plan.checks).toEqual([]);
    const ids = plan.actions.map((a) => a.id);
    const at = (id: string) => ids.indexOf(id);
    expect(at('create_branch_queue:new_leaf:shop')).toBeGreaterThan(at('subscribe:new_leaf:shop'));
    expect(at('subscribe:rep_leaf:shop')).toBeGreaterThan(at('create_branch_queue:new_leaf:shop'));
    const sub = plan.actions.find((a) => a.id === 'subscribe:rep_leaf:shop')!;
    expect(sub.params).toMatchObject({ provider: 'new_leaf', providerDatabase: 'new' });
    expect(sub.dependsOn).toContain('create_branch_queue:new_leaf:shop');
    plan.actions.forEach((a, i) => a.dependsOn.forEach((d) => expect(at(d)).toBeLessThan(i)));
    expect(ids.filter((id) => id.startsWith('add_subscriber_table:rep_leaf:'))).toHaveLength(3);
  });

  it('refuses to move a subscribed node to another provider (change_provider is not supported yet)', () => {
    const subscribed = (consumer: string) => ({ version: 3, content: null, queues: [], subscriptions: [{ queue: 'shop', consumer, completedTick: '9', tables: [] }] });
    const rootQueue = { name: 'shop', lastTick: '9', settings: { tickerMaxCount: 500, tickerMaxLagMs: 100, tickerIdlePeriodMs: 30000, rotationTxids: 100000, tickRetentionMs: 3600000 }, consumers: [{ name: 'new_leaf', lastTick: '9' }, { name: 'rep_leaf', lastTick: '9' }], tables: [], sequences: [] };
    const plan = buildPlan({
      state: state(CASCADE),
      catalogs: { old: catalog(12, TABLES, { engine: { version: 3, content: null, queues: [rootQueue], subscriptions: [] } }), new: catalog(16, TABLES, { engine: subscribed('new_leaf') }), rep: catalog(17, TABLES, { engine: subscribed('rep_leaf') }) },
      engineVersion: 3,
    });
    expect(plan.checks).toContainEqual(expect.objectContaining({ severity: 'error', code: 'change_provider_not_supported', path: 'queues.shop.nodes.rep_leaf.provider' }));
    expect(plan.errored).toBe(true);
  });
});
