/**
 * Twin path: a scenario materialised in real PostgreSQL (12 → 17), read by
 * the catalog module and planned, gives the actions the planner gives on
 * plain data; once the engine state matches, the plan is empty.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { introspectNode } from '../../src/catalog/index.js';
import { loadDesiredStateFromText } from '../../src/config/index.js';
import * as engine from '../../src/engine/index.js';
import { buildPlan } from '../../src/planner/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

/** The scenario's fresh-setup actions: the same on plain data and on real catalogs (twin path). */
const FRESH_ACTIONS = JSON.parse(readFileSync('test/fixtures/scenarios/shop.fresh.actions.json', 'utf8')) as string[];

const SCHEMA = `
  CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric);
  CREATE TABLE public.customers (id int PRIMARY KEY, name text);
  CREATE TABLE public.audit (event_id bigint NOT NULL, body text);
  CREATE TABLE public.tmp_scratch (id int PRIMARY KEY);
`;

describe('planning against real catalogs', () => {
  it('plans a fresh setup, and nothing once the engine state matches', async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'plan_p'), await freshDatabase(targetServer(), 'plan_s')];
    const [p, s] = [await pdb.connect(), await sdb.connect()];
    try {
      await p.query(SCHEMA);
      await s.query(SCHEMA);
      const file = readFileSync('test/fixtures/scenarios/shop.yaml', 'utf8');
      const state = loadDesiredStateFromText('shop.yaml', file, { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn }).state!;
      const plan = async () =>
        buildPlan({ state, catalogs: { old: await introspectNode(p), new: await introspectNode(s) }, engineVersion: engine.ENGINE_VERSION, engineContent: engine.ENGINE_CONTENT });
      const first = await plan();
      expect(first.checks).toEqual([]);
      expect(first.actions.map((a) => a.id)).toEqual(FRESH_ACTIONS);

      // Bring both databases to the planned state by hand (the executor will do this), then plan again.
      await engine.installEngine(p);
      await engine.installEngine(s);
      await engine.createQueue(p, 'shop');
      await engine.addTable(p, 'shop', 'public', 'audit', ['event_id']);
      await engine.addTable(p, 'shop', 'public', 'customers');
      await engine.addTable(p, 'shop', 'public', 'orders');
      await engine.addSequence(p, 'shop', 'public', 'orders_id_seq');
      await engine.subscribe(p, s, 'shop', 'new_leaf');
      for (const t of ['audit', 'customers', 'orders']) await engine.addSubscriberTable(s, 'shop', 'new_leaf', 'public', t, 'pending');
      const second = await plan();
      expect(second.checks).toEqual([]);
      expect(second.actions).toEqual([]);

      // A new table matching include shows up in the next plan.
      await p.query('CREATE TABLE public.invoices (id int PRIMARY KEY, amount numeric)');
      await s.query('CREATE TABLE public.invoices (id int PRIMARY KEY, amount numeric)');
      expect((await plan()).actions.map((a) => a.id)).toEqual(['capture_table:old_root:public.invoices', 'add_subscriber_table:new_leaf:public.invoices']);

      // Another content of the same migration (a functions.sql-only change) in one database: planned as an upgrade, and applied by installing.
      const other = { ...engine.ENGINE_SOURCES, functions: `${engine.ENGINE_SOURCES.functions}\n-- another build\n` };
      await engine.installEngine(s, { sources: other });
      const upgrade = (await plan()).actions.find((a) => a.kind === 'upgrade_engine')!;
      expect(upgrade).toMatchObject({ id: 'upgrade_engine:db:new', change: 'update', params: { from: engine.ENGINE_VERSION, to: engine.ENGINE_VERSION, toContent: engine.ENGINE_CONTENT } });
      expect(upgrade.params.fromContent).toBe(engine.engineBuild(other).content);
      expect(await engine.installEngine(s)).toMatchObject({ action: 'upgraded', toContent: engine.ENGINE_CONTENT });
      expect((await plan()).actions.filter((a) => a.kind === 'upgrade_engine')).toEqual([]);
    } finally {
      await p.end();
      await s.end();
    }
  });

  it('shows schema drift read from real catalogs: a rename, a dropped NOT NULL column, a key changed on the provider', async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'drift_p'), await freshDatabase(targetServer(), 'drift_s')];
    const [p, s] = [await pdb.connect(), await sdb.connect()];
    try {
      await p.query(SCHEMA);
      await s.query(SCHEMA);
      await p.query('ALTER TABLE public.customers RENAME COLUMN name TO "Full Name"');
      await s.query("ALTER TABLE public.audit ADD COLUMN origin text NOT NULL, ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY");
      await p.query('ALTER TABLE public.orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, total)');
      await p.query('ALTER TABLE public.orders ALTER COLUMN total SET NOT NULL');
      const file = readFileSync('test/fixtures/scenarios/shop.yaml', 'utf8');
      const state = loadDesiredStateFromText('shop.yaml', file, { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn }).state!;
      const plan = buildPlan({ state, catalogs: { old: await introspectNode(p), new: await introspectNode(s) }, engineVersion: engine.ENGINE_VERSION, engineContent: engine.ENGINE_CONTENT });
      const drift = plan.checks.filter((c) => ['column_renamed', 'columns_extra_on_subscriber', 'subscriber_unique_not_on_provider'].includes(c.code));
      expect(drift.map((c) => [c.code, c.severity])).toEqual([
        ['columns_extra_on_subscriber', 'error'],
        ['column_renamed', 'error'],
        ['subscriber_unique_not_on_provider', 'warning'],
      ]);
      // origin (NOT NULL, no default) blocks inserts; the identity column n does not.
      expect(drift[0]!.message).toMatch(/origin is NOT NULL without a default/);
      expect(drift[1]!.hint).toContain('RENAME COLUMN "name" TO "Full Name"');
    } finally {
      await p.end();
      await s.end();
    }
  });
});
