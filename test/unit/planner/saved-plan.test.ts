/**
 * Saved plans on plain data: what the fingerprints ignore (rows, sizes, tick
 * positions, copy states) and what makes a plan stale (a schema change, the
 * file, the engine version) or foreign (another database at that address).
 */
import { describe, expect, it } from 'vitest';
import { buildPlan, fingerprintCatalog, makeSavedPlan, verifySavedPlan, type SavedPlan } from '../../../src/planner/index.js';
import { FILE, TABLES, catalog, state, table, shopSettings } from './fixtures.js';

const catalogs = () => ({ old: catalog(12, TABLES), new: catalog(17, TABLES) });

function saved(): SavedPlan {
  const c = catalogs();
  return makeSavedPlan({ state: state(), catalogs: c, engineVersion: 3, plan: buildPlan({ state: state(), catalogs: c, engineVersion: 3 }), now: new Date('2026-01-01T00:00:00Z') });
}

describe('saved plans', () => {
  it('carry no password', () => {
    const withPassword = { ...state(), databases: state().databases.map((d) => ({ ...d, connection: { ...d.connection, password: 'sekret' } })) };
    const s = makeSavedPlan({ state: withPassword, catalogs: catalogs(), engineVersion: 3, plan: buildPlan({ state: withPassword, catalogs: catalogs(), engineVersion: 3 }), now: new Date() });
    expect(JSON.stringify(s)).not.toContain('sekret');
    expect(verifySavedPlan(s, state(), catalogs(), 3)).toBeNull();
  });

  it('may be applied while only volatile catalog facts moved', () => {
    const c = catalogs();
    c.old.tables[0]!.estimatedRows = 123_456;
    c.old.tables[0]!.bytes = 99_999_999;
    expect(verifySavedPlan(saved(), state(), c, 3)).toBeNull();
    const withEngine = catalog(12, TABLES, { engine: { version: 3, content: null, queues: [{ name: 'shop', lastTick: '5', settings: shopSettings(), consumers: [{ name: 'new_leaf', lastTick: '4' }], tables: [], sequences: [] }], subscriptions: [] } });
    const moved = structuredClone(withEngine);
    moved.engine!.queues[0]!.lastTick = '900';
    moved.engine!.queues[0]!.consumers[0]!.lastTick = '899';
    expect(fingerprintCatalog(moved)).toBe(fingerprintCatalog(withEngine));
  });

  it('are stale after a schema change, a file change or another engine version', () => {
    const c = catalogs();
    c.old.tables.push(table('invoices', ['id']));
    expect(verifySavedPlan(saved(), state(), c, 3)).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('the catalog of database "old" changed') });
    const edited = state(FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.customers"]'));
    expect(verifySavedPlan(saved(), edited, catalogs(), 3)).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('shop.yaml changed') });
    expect(verifySavedPlan(saved(), state(), catalogs(), 4)).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('engine version 3') });
  });

  it('are stale when the engine content changed: in a database, or the one this pgconvey installs', () => {
    const withEngine = (content: string | null) =>
      catalog(12, TABLES, { engine: { version: 3, content, queues: [], subscriptions: [] } });
    const c = { old: withEngine('a'.repeat(64)), new: catalog(17, TABLES) };
    const s = makeSavedPlan({ state: state(), catalogs: c, engineVersion: 3, engineContent: 'a'.repeat(64), plan: buildPlan({ state: state(), catalogs: c, engineVersion: 3 }), now: new Date() });
    expect(s.engineContent).toBe('a'.repeat(64));
    expect(verifySavedPlan(s, state(), c, 3, 'a'.repeat(64))).toBeNull();
    expect(fingerprintCatalog(withEngine('b'.repeat(64)))).not.toBe(fingerprintCatalog(withEngine('a'.repeat(64))));
    expect(verifySavedPlan(s, state(), { ...c, old: withEngine('b'.repeat(64)) }, 3, 'a'.repeat(64))).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('the catalog of database "old" changed') });
    expect(verifySavedPlan(s, state(), c, 3, 'c'.repeat(64))).toMatchObject({ code: 'plan_stale', message: expect.stringContaining('engine content is aaaaaaaaaaaa, this one installs cccccccccccc') });
  });

  it('are foreign when another database answers at the same address', () => {
    const c = catalogs();
    c.new.identity = { databaseOid: 99_999, systemIdentifier: c.new.identity.systemIdentifier };
    expect(verifySavedPlan(saved(), state(), c, 3)).toMatchObject({ code: 'plan_for_other_databases', message: expect.stringContaining('database "new"') });
    const elsewhere = state(FILE);
    elsewhere.databases[0] = { ...elsewhere.databases[0]!, display: 'app@other:5432/shop' };
    expect(verifySavedPlan(saved(), elsewhere, catalogs(), 3)).toMatchObject({ code: 'plan_for_other_databases', message: expect.stringContaining('the plan was made for') });
  });
});
