/**
 * The planner's cascade step on plain data: a fresh root → branch → leaf is
 * planned provider-first (the leaf's subscription waits for the branch's
 * queue, which waits for the branch's subscription) and runs in that order;
 * a node moved in the file to another provider is `~ change_provider` when
 * the new provider still holds its tick (the branch's watermark there), and
 * refused when it does not, or when the new provider has no queue yet.
 */
import { describe, expect, it } from 'vitest';
import type { EngineInfo, EngineQueueInfo } from '../../../src/catalog/model.js';
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

  it('checks the rights of a node under a branch on the branch\'s catalog: SELECT on its sequences there, no TRIGGER', () => {
    // The branch's role (no superuser) may write its tables and move the sequence, not read it: a subscriber
    // of the branch could not read its sequence values. The root's role may do everything.
    const managedRole = { user: 'adm', superuser: false, canCreateSchema: true, canSetReplicationRole: true, canAlterDatabase: true, databaseOwner: 'adm', canSignalBackends: true, actsAs: [], canBecome: [] };
    const DML = { owner: true, select: true, insert: true, update: true, delete: true, truncate: true, trigger: false };
    const branch = catalog(16, TABLES.map((t) => ({ ...t, access: DML })), { privileges: managedRole, sequences: [{ schema: 'public', name: 'orders_id_seq', owner: 'app', access: { ...DML, select: false } }] });
    const plan = buildPlan({ state: state(CASCADE), catalogs: { old: catalog(12, TABLES), new: branch, rep: catalog(17, TABLES) }, engineVersion: 3 });
    const errors = plan.checks.filter((c) => c.severity === 'error');
    expect(errors.map((c) => [c.code, c.path])).toEqual([['branch_provider_cannot_read', 'queues.shop.nodes.new_leaf']]);
    expect(errors[0]!.message).toContain('public.orders_id_seq (SELECT)');
  });

  const settings = { tickerMaxCount: 500, tickerMaxLagMs: 100, tickerIdlePeriodMs: 30000, tickerMinIntervalMs: 20, rotationTxids: 100000, tickRetentionMs: 3600000 };
  const subscribed = (consumer: string, tick: string, queues: EngineQueueInfo[] = []): EngineInfo => ({ version: 3, content: null, queues, subscriptions: [{ queue: 'shop', consumer, completedTick: tick, tables: [] }] });

  it('refuses to move a node under a branch that has no queue yet (change_provider_no_queue)', () => {
    const rootQueue = { name: 'shop', lastTick: '9', settings, consumers: [{ name: 'new_leaf', lastTick: '9' }, { name: 'rep_leaf', lastTick: '9' }], tables: [], sequences: [] };
    const plan = buildPlan({
      state: state(CASCADE),
      catalogs: { old: catalog(12, TABLES, { engine: { version: 3, content: null, queues: [rootQueue], subscriptions: [] } }), new: catalog(16, TABLES, { engine: subscribed('new_leaf', '9') }), rep: catalog(17, TABLES, { engine: subscribed('rep_leaf', '9') }) },
      engineVersion: 3,
    });
    expect(plan.checks).toContainEqual(expect.objectContaining({ severity: 'error', code: 'change_provider_no_queue', path: 'queues.shop.nodes.rep_leaf.provider' }));
    expect(plan.errored).toBe(true);
  });

  // rep_leaf reads from the branch new_leaf today (at tick 9); the file moves it to the root.
  const MOVED = CASCADE.replace('rep_leaf: { database: rep, type: leaf, provider: new_leaf }', 'rep_leaf: { database: rep, type: leaf, provider: old_root }');
  const moving = (rootConsumers: Array<{ name: string; lastTick: string }>) =>
    buildPlan({
      state: state(MOVED),
      catalogs: {
        old: catalog(12, TABLES, { engine: { version: 3, content: null, queues: [{ name: 'shop', lastTick: '20', settings, consumers: rootConsumers, tables: [], sequences: [] }], subscriptions: [] } }),
        new: catalog(16, TABLES, { engine: subscribed('new_leaf', '20', [{ name: 'shop', lastTick: '20', settings, branchProvider: 'old_root', consumers: [{ name: 'rep_leaf', lastTick: '9' }], tables: [], sequences: [] }]) }),
        rep: catalog(17, TABLES, { engine: subscribed('rep_leaf', '9') }),
      },
      engineVersion: 3,
    });

  it('moves a leaf from a branch to the root the watermark keeps its tick on (~ change_provider)', () => {
    const plan = moving([{ name: 'new_leaf', lastTick: '20' }, { name: 'watermark:new_leaf', lastTick: '9' }]);
    expect(plan.checks.filter((c) => c.severity === 'error')).toEqual([]);
    const move = plan.actions.find((a) => a.kind === 'change_provider')!;
    expect(move).toMatchObject({ id: 'change_provider:rep_leaf:shop', change: 'update', database: 'rep', params: { consumer: 'rep_leaf', from: 'new_leaf', fromDatabase: 'new', to: 'old_root', toDatabase: 'old', tick: '9' } });
    // Neither the branch's watermark on the root nor the moved node's consumer on the branch is removed by another action.
    expect(plan.actions.filter((a) => a.kind === 'remove_consumer')).toEqual([]);
  });

  it('refuses the move when the root no longer holds the leaf\'s tick (change_provider_tick_gone)', () => {
    const plan = moving([{ name: 'new_leaf', lastTick: '20' }]);
    expect(plan.checks).toContainEqual(expect.objectContaining({ severity: 'error', code: 'change_provider_tick_gone', path: 'queues.shop.nodes.rep_leaf.provider' }));
    expect(plan.actions.filter((a) => a.kind === 'change_provider')).toEqual([]);
  });

  // The branch new_leaf removed from the file (its database stays), rep_leaf moved to the root in the same edit.
  const REMOVED = MOVED.replace('new_leaf: { database: new, type: branch, provider: old_root }\n      ', '');
  const removing = (text: string, branchConsumers: Array<{ name: string; lastTick: string }>, rootConsumers = [{ name: 'new_leaf', lastTick: '20' }, { name: 'watermark:new_leaf', lastTick: '9' }], withBranchDb = true) =>
    buildPlan({
      state: state(text),
      catalogs: {
        old: catalog(12, TABLES, { engine: { version: 3, content: null, queues: [{ name: 'shop', lastTick: '20', settings, consumers: rootConsumers, tables: [], sequences: [] }], subscriptions: [] } }),
        ...(withBranchDb ? { new: catalog(16, TABLES, { engine: subscribed('new_leaf', '20', [{ name: 'shop', lastTick: '20', settings, branchProvider: 'old_root', consumers: branchConsumers, tables: [], sequences: [] }]) }) } : {}),
        rep: catalog(17, TABLES, { engine: subscribed('rep_leaf', '9') }),
      },
      engineVersion: 3,
    });

  it('removes a branch whose subscribers move away in the same plan: the moves first, then its consumer and watermark on the root', () => {
    expect(REMOVED).not.toContain('new_leaf:');
    const plan = removing(REMOVED, [{ name: 'rep_leaf', lastTick: '9' }]);
    expect(plan.checks.filter((c) => c.severity === 'error')).toEqual([]);
    const steps = plan.actions.map((a) => `${a.kind} ${a.node} ${a.object}`);
    expect(steps.filter((x) => /change_provider|remove_consumer/.test(x))).toEqual(['change_provider rep_leaf old_root', 'remove_consumer old_root new_leaf', 'remove_consumer old_root watermark:new_leaf']);
    const move = plan.actions.find((a) => a.kind === 'change_provider')!;
    expect(move.params).toMatchObject({ from: 'new_leaf', fromDatabase: 'new', to: 'old_root', tick: '9' });
    for (const a of plan.actions.filter((x) => x.kind === 'remove_consumer')) expect(a.dependsOn).toContain(move.id);
    // Once moved, only the branch's consumer and watermark are left to remove; then nothing.
    const later = removing(REMOVED, [], [{ name: 'new_leaf', lastTick: '20' }, { name: 'watermark:new_leaf', lastTick: '9' }, { name: 'rep_leaf', lastTick: '9' }]);
    expect(later.checks.filter((c) => c.severity === 'error')).toEqual([]);
    expect(later.actions.map((a) => `${a.kind} ${a.object}`).filter((x) => /change_provider|remove_consumer/.test(x))).toEqual(['remove_consumer new_leaf', 'remove_consumer watermark:new_leaf']);
  });

  it('refuses to remove a branch a node still reads from (branch_removed_with_subscribers)', () => {
    // A node not in the file still registered on the branch's queue.
    const stranger = removing(REMOVED, [{ name: 'rep_leaf', lastTick: '9' }, { name: 'other_leaf', lastTick: '12' }]);
    expect(stranger.checks).toContainEqual(expect.objectContaining({ severity: 'error', code: 'branch_removed_with_subscribers', path: 'queues.shop.nodes' }));
    expect(stranger.checks.find((c) => c.code === 'branch_removed_with_subscribers')!.message).toContain('node(s) "other_leaf" still read from it');
    expect(stranger.errored).toBe(true);
    // A subscriber whose move is refused (the root no longer holds its tick): both errors.
    const stuck = removing(REMOVED, [{ name: 'rep_leaf', lastTick: '9' }], [{ name: 'new_leaf', lastTick: '20' }]);
    expect(stuck.checks.filter((c) => c.severity === 'error').map((c) => c.code)).toEqual(['change_provider_tick_gone', 'branch_removed_with_subscribers']);
    // The branch's node and its database both gone from the file: its watermark on the root gives it away.
    const NO_DB = REMOVED.replace(/\n {2}new: [^\n]*/, '');
    expect(NO_DB).not.toMatch(/^ {2}new:/m);
    const gone = removing(NO_DB, [], undefined, false);
    expect(gone.checks).toContainEqual(expect.objectContaining({ severity: 'error', code: 'branch_removed_with_subscribers', path: 'queues.shop.nodes.rep_leaf' }));
  });
});
