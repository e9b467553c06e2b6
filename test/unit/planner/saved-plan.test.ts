/**
 * Saved plans on plain data: what the fingerprints ignore (rows, sizes, tick
 * positions, copy states), what makes a plan stale (a schema change, the
 * file, the engine version, a fresh plan that differs) or foreign (another
 * database at that address), and that any edit of its actions is refused.
 */
import { describe, expect, it } from 'vitest';
import { buildPlan, fingerprintCatalog, fingerprintPlan, makeSavedPlan, verifySavedPlan, type Plan, type SavedPlan } from '../../../src/planner/index.js';
import { FILE, TABLES, catalog, state, table, shopSettings } from './fixtures.js';

const catalogs = () => ({ old: catalog(12, TABLES), new: catalog(17, TABLES) });

function saved(): SavedPlan {
  const c = catalogs();
  return makeSavedPlan({ state: state(), catalogs: c, engineVersion: 3, plan: buildPlan({ state: state(), catalogs: c, engineVersion: 3 }), now: new Date('2026-01-01T00:00:00Z') });
}

/** The plan made now from `st` and `c`: what verifySavedPlan compares the saved one with. */
const fresh = (c = catalogs(), st = state()): Plan => buildPlan({ state: st, catalogs: c, engineVersion: 3 });

describe('saved plans', () => {
  it('carry no password', () => {
    const withPassword = { ...state(), databases: state().databases.map((d) => ({ ...d, connection: { ...d.connection, password: 'sekret' } })) };
    const s = makeSavedPlan({ state: withPassword, catalogs: catalogs(), engineVersion: 3, plan: buildPlan({ state: withPassword, catalogs: catalogs(), engineVersion: 3 }), now: new Date() });
    expect(JSON.stringify(s)).not.toContain('sekret');
    expect(verifySavedPlan(s, state(), catalogs(), 3, fresh())).toBeNull();
  });

  it('may be applied while only volatile catalog facts moved', () => {
    const c = catalogs();
    c.old.tables[0]!.estimatedRows = 123_456;
    c.old.tables[0]!.bytes = 99_999_999;
    expect(verifySavedPlan(saved(), state(), c, 3, fresh(c))).toBeNull();
    const withEngine = catalog(12, TABLES, { engine: { version: 3, content: null, queues: [{ name: 'shop', lastTick: '5', settings: shopSettings(), consumers: [{ name: 'new_leaf', lastTick: '4' }], tables: [], sequences: [] }], subscriptions: [] } });
    const moved = structuredClone(withEngine);
    moved.engine!.queues[0]!.lastTick = '900';
    moved.engine!.queues[0]!.consumers[0]!.lastTick = '899';
    expect(fingerprintCatalog(moved)).toBe(fingerprintCatalog(withEngine));
  });

  it('are stale after a schema change, a file change or another engine version', () => {
    const c = catalogs();
    c.old.tables.push(table('invoices', ['id']));
    expect(verifySavedPlan(saved(), state(), c, 3, fresh(c))).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('the catalog of database "old" changed') });
    const edited = state(FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.customers"]'));
    expect(verifySavedPlan(saved(), edited, catalogs(), 3, fresh(catalogs(), edited))).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('shop.yaml changed') });
    expect(verifySavedPlan(saved(), state(), catalogs(), 4, fresh())).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('engine version 3') });
  });

  it('are stale when the engine content changed: in a database, or the one this pgconvey installs', () => {
    const withEngine = (content: string | null) =>
      catalog(12, TABLES, { engine: { version: 3, content, queues: [], subscriptions: [] } });
    const c = { old: withEngine('a'.repeat(64)), new: catalog(17, TABLES) };
    const s = makeSavedPlan({ state: state(), catalogs: c, engineVersion: 3, engineContent: 'a'.repeat(64), plan: buildPlan({ state: state(), catalogs: c, engineVersion: 3 }), now: new Date() });
    expect(s.engineContent).toBe('a'.repeat(64));
    expect(verifySavedPlan(s, state(), c, 3, s.plan, 'a'.repeat(64))).toBeNull();
    expect(fingerprintCatalog(withEngine('b'.repeat(64)))).not.toBe(fingerprintCatalog(withEngine('a'.repeat(64))));
    expect(verifySavedPlan(s, state(), { ...c, old: withEngine('b'.repeat(64)) }, 3, s.plan, 'a'.repeat(64))).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('the catalog of database "old" changed') });
    expect(verifySavedPlan(s, state(), c, 3, s.plan, 'c'.repeat(64))).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('engine content is aaaaaaaaaaaa, this one installs cccccccccccc') });
  });

  it('are foreign when another database answers at the same address', () => {
    const c = catalogs();
    c.new.identity = { databaseOid: 99_999, systemIdentifier: c.new.identity.systemIdentifier };
    expect(verifySavedPlan(saved(), state(), c, 3, fresh(c))).toMatchObject({ code: 'plan_for_other_databases', message: expect.stringContaining('database "new"') });
    const elsewhere = state(FILE);
    elsewhere.databases[0] = { ...elsewhere.databases[0]!, display: 'app@other:5432/shop' };
    expect(verifySavedPlan(saved(), elsewhere, catalogs(), 3, fresh(catalogs(), elsewhere))).toMatchObject({ code: 'plan_for_other_databases', message: expect.stringContaining('the plan was made for') });
  });

  it('are equal to a fresh plan when nothing changed, and then may be applied', () => {
    expect(verifySavedPlan(saved(), state(), catalogs(), 3, fresh())).toBeNull();
  });

  const edits: Array<[string, (p: Plan) => void]> = [
    ['a parameter changed', (p) => void (p.actions.find((a) => a.kind === 'capture_table')!.params.keyColumns = ['total'])],
    ['an action added', (p) => void p.actions.push({ ...p.actions[0]!, id: 'grant_role x:y', kind: 'grant_role', params: { parent: 'pg_monitor', member: 'x' } })],
    ['an action removed', (p) => void p.actions.pop()],
    ['two actions swapped', (p) => void p.actions.splice(0, 2, p.actions[1]!, p.actions[0]!)],
    ['a pg_dump path slipped in', (p) => void ((p.actions[0]!.params as unknown as Record<string, unknown>).pgDump = '/bin/sh')],
    ['a reason reworded', (p) => void (p.actions[0]!.reason = 'harmless')],
  ];

  it.each(edits)('are refused as tampered when edited: %s', (_label, edit) => {
    const s = saved();
    edit(s.plan);
    expect(verifySavedPlan(s, state(), catalogs(), 3, fresh())).toMatchObject({ code: 'plan_tampered', message: expect.stringContaining('changed after it was made') });
  });

  it.each(edits)('are refused when edited with the fingerprint made again: %s', (_label, edit) => {
    const s = saved();
    edit(s.plan);
    s.planFingerprint = fingerprintPlan(s.plan);
    expect(verifySavedPlan(s, state(), catalogs(), 3, fresh())).toMatchObject({ code: 'plan_stale', message: expect.stringMatching(/is not what a plan made now .* would do: (the saved action|the action|the actions)/) });
  });

  it('are refused when a fresh plan differs though file and catalogs did not change (another pg_dump, another planner)', () => {
    const other = fresh();
    other.actions[0]!.reason = 'planned otherwise';
    expect(verifySavedPlan(saved(), state(), catalogs(), 3, other)).toMatchObject({ code: 'plan_stale', message: expect.stringContaining(`the action ${other.actions[0]!.id} has other parameters`) });
  });

  it('are refused as tampered without a fingerprint', () => {
    const s = saved() as Partial<SavedPlan>;
    delete s.planFingerprint;
    expect(verifySavedPlan(s as SavedPlan, state(), catalogs(), 3, fresh())).toMatchObject({ code: 'plan_tampered' });
  });
});
