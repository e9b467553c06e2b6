/**
 * The planner on plain data: fresh setup, convergence, a new table, keys,
 * missing tables and columns, removals, branches, determinism.
 */
import { describe, expect, it } from 'vitest';
import type { NodeCatalog } from '../../../src/catalog/index.js';
import { buildPlan, type ActionOf } from '../../../src/planner/index.js';
import { FILE, FRESH_ACTIONS, TABLES, catalog, role, state, table, shopSettings } from './fixtures.js';

describe('planner', () => {
  it('plans a fresh setup in dependency order', () => {
    const plan = buildPlan({ state: state(), catalogs: { old: catalog(12, TABLES), new: catalog(17, TABLES) }, engineVersion: 3 });
    expect(plan.checks).toEqual([]);
    expect(plan.actions.map((a) => a.id)).toEqual(FRESH_ACTIONS);
    expect(plan.summary).toEqual({ add: 11, change: 0, remove: 0 });
    const audit = plan.actions.find((a) => a.id === 'capture_table:old_root:public.audit')!;
    expect(audit.params).toEqual({ schema: 'public', table: 'audit', keyColumns: ['event_id'] });
    expect(audit.dependsOn).toEqual(['install_engine:db:old', 'create_queue:old_root:shop']);
    expect(plan.actions.find((a) => a.id === 'add_subscriber_table:new_leaf:public.orders')!.dependsOn).toEqual(['subscribe:new_leaf:shop', 'capture_table:old_root:public.orders']);
    // Every dependency comes earlier.
    plan.actions.forEach((a, i) => a.dependsOn.forEach((d) => expect(plan.actions.findIndex((x) => x.id === d)).toBeLessThan(i)));
  });

  const converged = () => {
    const captured = [
      { schema: 'public', name: 'audit', keyColumns: ['event_id'], columns: ['event_id', 'body'] },
      { schema: 'public', name: 'customers', keyColumns: ['id'], columns: ['id', 'name'] },
      { schema: 'public', name: 'orders', keyColumns: ['id'], columns: ['id', 'total'] },
    ];
    return {
      old: catalog(12, TABLES, { engine: { version: 3, content: null, queues: [{ name: 'shop', lastTick: '9', settings: shopSettings(), consumers: [{ name: 'new_leaf', lastTick: '9' }], tables: captured, sequences: [{ schema: 'public', name: 'orders_id_seq' }] }], subscriptions: [] } }),
      new: catalog(17, TABLES, {
        engine: { version: 3, content: null, queues: [], subscriptions: [{ queue: 'shop', consumer: 'new_leaf', completedTick: '9', tables: captured.map((t) => ({ schema: t.schema, name: t.name, state: 'ok', copyPin: null, copyGeneration: null })) }] },
      }),
    };
  };

  it('warns about subscriber triggers that fire during replication (ENABLE ALWAYS / REPLICA), not about ordinary ones', () => {
    const sub = TABLES.map((t) =>
      t.name === 'orders' ? { ...t, triggers: ['audit_a', 'audit_o', 'audit_r', 'pgconvey_fence'], triggerModes: { audit_a: 'A', audit_o: 'O', audit_r: 'R', pgconvey_fence: 'A' } } : t,
    );
    const plan = buildPlan({ state: state(), catalogs: { old: catalog(12, TABLES), new: catalog(17, sub) }, engineVersion: 3 });
    const warnings = plan.checks.filter((c) => c.code === 'subscriber_trigger_fires_on_apply');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain('audit_a, audit_r');
  });

  it('plans nothing once the databases match the file', () => {
    const plan = buildPlan({ state: state(), catalogs: converged(), engineVersion: 3 });
    expect(plan).toEqual({ checks: [], actions: [], summary: { add: 0, change: 0, remove: 0 }, errored: false });
  });

  it('unregisters the consumer of a node that left the file (not copy pins), flagged destructive', () => {
    const catalogs = converged();
    catalogs.old.engine!.queues[0]!.consumers.push({ name: 'gone_leaf', lastTick: '3' }, { name: 'copy:new_leaf:public.orders', lastTick: '8' });
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.actions.map((a) => `${a.change} ${a.id} ${a.destructive}`)).toEqual([
      'delete remove_consumer:old_root:copy:new_leaf:public.orders false',
      'delete remove_consumer:old_root:gone_leaf true',
    ]);
  });

  it('removes stale copy pins, and keeps those a copy in progress (or a newer one) needs', () => {
    const catalogs = converged();
    const tables = catalogs.new.engine!.subscriptions[0]!.tables;
    Object.assign(tables.find((t) => t.name === 'orders')!, { state: 'copying', copyPin: 'copy:new_leaf:7:public.orders', copyGeneration: '7' });
    Object.assign(tables.find((t) => t.name === 'customers')!, { state: 'ok', copyPin: 'copy:new_leaf:5:public.customers', copyGeneration: '5' });
    catalogs.old.engine!.queues[0]!.consumers.push(
      { name: 'copy:new_leaf:7:public.orders', lastTick: '8' }, // its copy is running
      { name: 'copy:new_leaf:5:public.customers', lastTick: '8' }, // merged: stale
      { name: 'copy:new_leaf:3:public.orders', lastTick: '2' }, // superseded by generation 7: stale
      { name: 'copy:new_leaf:9:public.audit', lastTick: '9' }, // newer than any row read: a copy that just began
      { name: 'copy:gone_leaf:4:public.orders', lastTick: '2' }, // its node left the file: stale
    );
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 7 });
    expect(plan.actions.filter((a) => a.object?.startsWith('copy:')).map((a) => a.object).sort()).toEqual([
      'copy:gone_leaf:4:public.orders',
      'copy:new_leaf:3:public.orders',
      'copy:new_leaf:5:public.customers',
    ]);
  });

  it('flags as destructive a copy into a subscriber table that holds rows', () => {
    const catalogs = { old: catalog(12, TABLES), new: catalog(17, TABLES) };
    Object.assign(catalogs.new.tables.find((t) => t.name === 'orders')!, { bytes: 65_536, estimatedRows: 1200 });
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    const destructive = plan.actions.filter((a) => a.destructive);
    expect(destructive.map((a) => a.id)).toEqual(['add_subscriber_table:new_leaf:public.orders']);
    expect(destructive[0]!.reason).toContain('the table here is not empty (1200 rows estimated) and the copy replaces its rows');
  });

  it('configures the queue again when its settings in the file changed', () => {
    const catalogs = converged();
    catalogs.old.engine!.queues[0]!.settings = { ...shopSettings(), tickerMaxLagMs: 250, rotationTxids: 5000 };
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.actions.map((a) => `${a.change} ${a.id}: ${a.reason}`)).toEqual([
      'update configure_queue:old_root:shop: its settings differ from the file: tickerMaxLagMs 250 → 100, rotationTxids 5000 → 100000',
    ]);
  });

  it('captures a table again when its columns changed on the provider', () => {
    const catalogs = converged();
    const orders = (c: NodeCatalog) => c.tables.find((t) => t.name === 'orders')!;
    for (const c of [catalogs.old, catalogs.new]) orders(c).columns.push({ name: 'note', type: 'text', notNull: false, generated: '', hasDefault: false });
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.actions.map((a) => `${a.change} ${a.id}: ${a.reason}`)).toEqual([
      'update capture_table:old_root:public.orders: its columns changed from (id, total) to (id, total, note) (ALTER TABLE on the provider)',
    ]);
    // A generated column is not shipped, so adding one changes nothing.
    orders(catalogs.old).columns.pop();
    orders(catalogs.old).columns.push({ name: 'doubled', type: 'numeric', notNull: false, generated: 's', hasDefault: true });
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3 }).actions).toEqual([]);
  });

  it('picks up a new table that matches include', () => {
    const catalogs = converged();
    catalogs.old.tables.push(table('invoices', ['id', 'amount']));
    catalogs.new.tables.push(table('invoices', ['id', 'amount']));
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.actions.map((a) => a.id)).toEqual(['capture_table:old_root:public.invoices', 'add_subscriber_table:new_leaf:public.invoices']);
  });

  it('plans an engine upgrade and refuses a newer engine', () => {
    const catalogs = converged();
    catalogs.new.engine!.version = 2;
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3 }).actions.map((a) => a.id)).toEqual(['upgrade_engine:db:new']);
    catalogs.new.engine!.version = 4;
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.errored).toBe(true);
    expect(plan.checks.map((c) => c.code)).toEqual(['engine_too_new']);
  });

  it('plans an engine upgrade when the content differs at the same migration, with from and to', () => {
    const catalogs = converged();
    for (const c of Object.values(catalogs)) c.engine!.content = 'a'.repeat(64);
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3, engineContent: 'a'.repeat(64) }).actions).toEqual([]);
    catalogs.new.engine!.content = 'b'.repeat(64);
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3, engineContent: 'a'.repeat(64) });
    expect(plan.actions.map((a) => [a.id, a.change])).toEqual([['upgrade_engine:db:new', 'update']]);
    expect(plan.actions[0]!.params).toEqual({ from: 3, to: 3, fromContent: 'b'.repeat(64), toContent: 'a'.repeat(64) });
    expect(plan.actions[0]!.reason).toBe('the engine in database "new" is version 3 (content bbbbbbbbbbbb), this pgconvey installs version 3 (content aaaaaaaaaaaa)');
    catalogs.new.engine!.content = null;
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3, engineContent: 'a'.repeat(64) }).actions.map((a) => a.id)).toEqual(['upgrade_engine:db:new']);
    // A newer migration is refused whatever its content.
    catalogs.new.engine!.version = 4;
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3, engineContent: 'a'.repeat(64) }).checks.map((c) => c.code)).toEqual(['engine_too_new']);
  });

  it('reports a table without a key, naming a candidate key when there is one', () => {
    const catalogs = converged();
    catalogs.old.tables.push(table('events', ['id', 'code'], [], { uniqueNotNull: [['code']] }));
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.errored).toBe(true);
    expect(plan.checks).toEqual([
      expect.objectContaining({ code: 'table_without_key', message: 'table public.events has no primary key', hint: expect.stringContaining('key: [code]') }),
    ]);
  });

  it('reports tables and columns missing on the subscriber, and roles', () => {
    const catalogs = converged();
    catalogs.new.tables = [table('orders', ['id']), table('audit', ['event_id', 'body'], [])];
    catalogs.new.roles = catalogs.new.roles.filter((r) => r.name !== 'app');
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.checks.map((c) => `${c.severity} ${c.code}`)).toEqual(['warning roles_missing_on_subscriber', 'error table_missing_on_subscriber', 'error columns_missing_on_subscriber']);
  });

  it('plans removals, flagged destructive, when a table leaves the file', () => {
    const plan = buildPlan({ state: state(FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.customers"]')), catalogs: converged(), engineVersion: 3 });
    expect(plan.actions.map((a) => `${a.id} ${a.destructive}`)).toEqual(['remove_subscriber_table:new_leaf:public.customers true', 'remove_capture:old_root:public.customers true']);
    expect(plan.summary).toEqual({ add: 0, change: 0, remove: 2 });
  });

  it('plans a branch queue for a subscribed branch, and refuses a subscriber that cannot set the replica role', () => {
    const text = FILE.replace('new_leaf: { database: new, type: leaf, provider: old_root }', 'new_leaf: { database: new, type: branch, provider: old_root }');
    const branchPlan = buildPlan({ state: state(text), catalogs: converged(), engineVersion: 3 });
    expect(branchPlan.checks).toEqual([]);
    expect(branchPlan.actions.map((a) => a.id)).toEqual(['create_branch_queue:new_leaf:shop']);
    const catalogs = converged();
    catalogs.new.privileges = { user: 'mover', superuser: false, canCreateSchema: true, canSetReplicationRole: false };
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.checks).toEqual([expect.objectContaining({ code: 'cannot_set_replication_role', hint: expect.stringMatching(/^GRANT SET ON PARAMETER session_replication_role TO mover; /) })]);
  });

  it('warns when the capture functions would run as the connecting role: no capture role, and it may not create one', () => {
    const catalogs = converged();
    const captureRole = { name: 'pgconvey_capture_16384', exists: false };
    catalogs.old.privileges = { user: 'mover', superuser: false, canCreateSchema: true, canSetReplicationRole: true, canCreateRole: false, captureRole };
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3 }).checks).toEqual([
      expect.objectContaining({
        code: 'capture_owner_not_dedicated',
        severity: 'warning',
        hint: expect.stringContaining('CREATE ROLE pgconvey_capture_16384 NOLOGIN; GRANT pgconvey_capture_16384 TO mover;'),
      }),
    ]);
    // An admin made the role, or the role may create it: nothing to say.
    catalogs.old.privileges = { ...catalogs.old.privileges, captureRole: { ...captureRole, exists: true } };
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3 }).checks).toEqual([]);
    catalogs.old.privileges = { ...catalogs.old.privileges, captureRole, canCreateRole: true };
    expect(buildPlan({ state: state(), catalogs, engineVersion: 3 }).checks).toEqual([]);
  });

  const PREPARE = FILE.replace('queues:', 'prepare: { roles: copy, schema: copy }\nqueues:');

  it('with prepare.roles: copy, creates the missing roles and memberships instead of warning', () => {
    const catalogs = converged();
    catalogs.old.roles.push(role('app_ro', { canLogin: false }), role('alice', { memberOf: ['app', 'app_ro'] }));
    catalogs.new.roles = catalogs.new.roles.filter((r) => r.name !== 'app');
    catalogs.new.roles.push(role('alice'));
    const plan = buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3 });
    expect(plan.checks).toEqual([]);
    expect(plan.actions.map((a) => `${a.id} <- ${a.dependsOn.join(',')}`)).toEqual([
      'create_role:db:new:app <- ',
      'create_role:db:new:app_ro <- ',
      'grant_role:db:new:alice:app <- create_role:db:new:app',
      'grant_role:db:new:alice:app_ro <- create_role:db:new:app_ro',
    ]);
    expect((plan.actions[0] as ActionOf<'create_role'>).params.role).toMatchObject({ name: 'app', canLogin: true });
    catalogs.old.privileges = { ...catalogs.old.privileges, superuser: false };
    expect(buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3 }).checks.map((c) => c.code)).toEqual(['role_passwords_not_copied']);
  });

  it('with prepare.schema: copy, creates missing tables with a pg_dump at least as new as the provider', () => {
    const catalogs = converged();
    catalogs.new.tables = catalogs.new.tables.filter((t) => t.name !== 'orders' && t.name !== 'customers');
    const pgDump = { path: '/usr/bin/pg_dump', major: 15, version: '15.18' };
    const plan = buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3, tools: { pgDump } });
    expect(plan.checks).toEqual([]);
    expect(plan.actions.map((a) => a.id)).toEqual(['copy_schema:new_leaf:shop', 'add_subscriber_table:new_leaf:public.customers', 'add_subscriber_table:new_leaf:public.orders']);
    expect(plan.actions[0]!.params).toEqual({ tables: [{ schema: 'public', table: 'customers' }, { schema: 'public', table: 'orders' }], consumer: 'new_leaf', mode: 'tables', providerDatabase: 'old' });
    expect(plan.actions[1]!.dependsOn).toContain('copy_schema:new_leaf:shop');
    const none = buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3, tools: { pgDump: null } });
    expect(none.checks.map((c) => c.code)).toEqual(['pg_dump_not_found']);
    expect(none.checks[0]!.message).toContain('needs pg_dump of PostgreSQL 12 or newer');
    const old = buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3, tools: { pgDump: { ...pgDump, major: 11, version: '11.22' } } });
    expect(old.checks.map((c) => c.code)).toEqual(['pg_dump_too_old']);
    catalogs.new.roles = catalogs.new.roles.filter((r) => r.name !== 'app');
    const noRoles = buildPlan({ state: state(FILE.replace('queues:', 'prepare: { schema: copy }\nqueues:')), catalogs, engineVersion: 3, tools: { pgDump } });
    expect(noRoles.checks.map((c) => c.code)).toEqual(['roles_missing_on_subscriber', 'roles_missing_for_schema_copy']);
  });

  it("with the schema copy's dry-run findings: lists what it creates and turns each object it cannot create into an error", () => {
    const catalogs = converged();
    catalogs.new.tables = catalogs.new.tables.filter((t) => t.name !== 'orders');
    const pgDump = { path: '/usr/bin/pg_dump', major: 15, version: '15.18' };
    const objects = [{ type: 'SEQUENCE', name: 'SEQUENCE public.orders_id_seq' }, { type: 'TABLE', name: 'TABLE public.orders' }, { type: 'CONSTRAINT', name: 'CONSTRAINT orders_pkey on public.orders' }];
    const ok = buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3, tools: { pgDump }, schemaCopies: { 'copy_schema:new_leaf:shop': { objects, problems: [] } } });
    expect(ok.errored).toBe(false);
    expect((ok.actions[0] as ActionOf<'copy_schema'>).params.objects).toEqual(objects);
    expect(ok.actions[0]!.reason).toContain('and what they need: 1 sequence, 1 table, 1 constraint');
    const problem = { code: 'schema_copy_extension_unavailable', object: 'EXTENSION postgis', message: 'creating EXTENSION postgis on node "new_leaf" would fail: …', hint: 'install it' };
    const bad = buildPlan({ state: state(PREPARE), catalogs, engineVersion: 3, tools: { pgDump }, schemaCopies: { 'copy_schema:new_leaf:shop': { objects, problems: [problem] } } });
    expect(bad.errored).toBe(true);
    expect(bad.checks).toEqual([{ severity: 'error', code: problem.code, message: problem.message, hint: problem.hint, path: 'prepare.schema' }]);
  });

  it('lists the root\'s materialized views as not replicated (a warning, once per root database)', () => {
    const catalogs = converged();
    catalogs.old.materializedViews = [{ schema: 'public', name: 'sales_by_day' }];
    const plan = buildPlan({ state: state(), catalogs, engineVersion: 3 });
    expect(plan.errored).toBe(false);
    expect(plan.checks).toEqual([expect.objectContaining({ severity: 'warning', code: 'materialized_view_not_replicated', message: expect.stringContaining('public.sales_by_day') })]);
  });

  it('is deterministic', () => {
    const input = { state: state(), catalogs: { old: catalog(12, TABLES), new: catalog(17, TABLES) }, engineVersion: 3 };
    expect(JSON.stringify(buildPlan(input))).toBe(JSON.stringify(buildPlan(input)));
  });
});
