/**
 * compare between any two nodes of a cascade (issue 16, part 5): root (source
 * server) → branch b1 (target) → leaves l1 (source) and l2 (target), set up
 * from a desired-state file (plan + apply) and run by the ticker and worker
 * daemons. While a seeded random writer changes the root's tables, compare
 * finds every pair equal — each node against its provider (b1 → l1, b1 → l2
 * under the branch), the root against a leaf under the branch and the two
 * leaves (--nodes) — which only holds if both nodes are read at one root
 * tick. Then rows changed, deleted and inserted on l1 behind replication's
 * back are named exactly by every pair with l1 and by none without it; the
 * harness's own row-by-row reads (harness/exact.ts) confirm each result
 * independently. Bad --node / --nodes are refused with their codes.
 * Replay with PGCONVEY_SEED=<seed>.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { introspectDatabases } from '../../src/catalog/index.js';
import { loadDesiredStateFromText, parseDsn, type DesiredState } from '../../src/config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import { ENGINE_VERSION } from '../../src/engine/index.js';
import { connectionsOf, executePlan } from '../../src/executor/index.js';
import { compareState, type CompareReport } from '../../src/operations/index.js';
import { buildPlan } from '../../src/planner/index.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { compareTable, equalDiff } from '../harness/exact.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const SCHEMA = `
  CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), updated timestamptz);
  CREATE TABLE public.order_lines (order_code text NOT NULL, line int NOT NULL, qty int NOT NULL, note text, PRIMARY KEY (order_code, line));`;
const ROWS = `
  INSERT INTO public.items SELECT g, 'item ' || g, g * 1.25, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
  INSERT INTO public.order_lines SELECT code, l, l * 3, CASE WHEN l % 2 = 0 THEN NULL ELSE 'note ' || code END
    FROM unnest(ARRAY['a-1', 'B-2', 'b-3', 'Z', 'é-4', '_x']) AS code, generate_series(1, 50) l;`;
const TABLES = ['items', 'order_lines'] as const;
const NODES = ['b1', 'l1', 'l2'] as const;

function yaml(dsn: Record<string, string>): string {
  return [
    'version: 1',
    'databases:',
    ...Object.entries(dsn).map(([k, v]) => `  ${k}_db: "${v}"`),
    'queues:',
    '  q:',
    '    nodes:',
    '      root: { database: root_db, type: root }',
    '      b1: { database: b1_db, type: branch, provider: root }',
    '      l1: { database: l1_db, type: leaf, provider: b1 }',
    '      l2: { database: l2_db, type: leaf, provider: b1 }',
    '    tables: { include: ["public.*"] }',
    '',
  ].join('\n');
}

async function writeOnce(c: pg.Client, rng: Rng, next: { id: number }): Promise<void> {
  await c.query('BEGIN');
  for (let i = rng.int(1, 4); i > 0; i--) {
    const id = rng.int(1, 3500);
    switch (rng.int(0, 5)) {
      case 0:
        await c.query("INSERT INTO public.items VALUES ($1::int, 'new ' || $1::text, $2, now()) ON CONFLICT (id) DO NOTHING", [next.id++, rng.int(0, 999)]);
        break;
      case 1:
        await c.query('UPDATE public.items SET price = price + 1, updated = now() WHERE id = $1', [id]);
        break;
      case 2:
        await c.query('DELETE FROM public.items WHERE id = $1', [id]);
        break;
      case 3:
        await c.query('UPDATE public.items SET id = $2 WHERE id = $1', [id, next.id++]);
        break;
      case 4:
        await c.query('UPDATE public.order_lines SET qty = qty + 1, note = $3 WHERE order_code = $1 AND line = $2', [rng.pick(['a-1', 'B-2', 'Z']), rng.int(1, 50), rng.chance(0.3) ? null : `w${rng.int(0, 9)}`]);
        break;
      default:
        await c.query('INSERT INTO public.order_lines VALUES ($1, $2, 1, NULL) ON CONFLICT DO NOTHING', [`w-${rng.int(0, 20)}`, rng.int(1, 30)]);
    }
  }
  await c.query(rng.chance(0.05) ? 'ROLLBACK' : 'COMMIT');
}

describe(`compare between any two nodes of a cascade (seed ${SEED})`, () => {
  const dbs: Record<string, TestDatabase> = {};
  const clients: Record<string, pg.Client> = {};
  let state: DesiredState;
  const stop = new AbortController();
  const daemons: Array<Promise<void>> = [];

  beforeAll(async () => {
    console.log(`[compare-cascade] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    dbs.root = await freshDatabase(sourceServer(), 'cmpc_r');
    dbs.b1 = await freshDatabase(targetServer(), 'cmpc_b');
    dbs.l1 = await freshDatabase(sourceServer(), 'cmpc_l');
    dbs.l2 = await freshDatabase(targetServer(), 'cmpc_m');
    for (const [name, d] of Object.entries(dbs)) {
      await d.query(SCHEMA + (name === 'root' ? ROWS : ''));
      clients[name] = await d.connect();
    }
    const loaded = loadDesiredStateFromText('cascade.yaml', yaml(Object.fromEntries(Object.entries(dbs).map(([k, d]) => [k, d.dsn]))), {});
    expect(loaded.diagnostics).toEqual([]);
    state = loaded.state!;
    const plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION });
    expect(plan.errored, JSON.stringify(plan.checks.filter((c) => c.severity === 'error'))).toBe(false);
    await executePlan(plan, connectionsOf(state.databases));
    const log = createLogger({ level: 'error' });
    daemons.push(runTickerDaemon({ provider: parseDsn(dbs.root!.dsn), queue: 'q', log, signal: stop.signal }));
    for (const [node, provider] of [['b1', 'root'], ['l1', 'b1'], ['l2', 'b1']] as const) {
      daemons.push(runWorkerDaemon({ provider: parseDsn(dbs[provider]!.dsn), subscriber: parseDsn(dbs[node]!.dsn), queue: 'q', consumer: node, log, signal: stop.signal }));
    }
    await caughtUp('every table copied on every node');
  }, 180_000);

  afterAll(async () => {
    stop.abort();
    await Promise.all(daemons);
    await Promise.all(Object.values(clients).map((c) => c.end().catch(() => undefined)));
  });

  async function caughtUp(what: string): Promise<void> {
    const tick = (await clients.root!.query<{ t: string }>("SELECT pgconvey.force_tick('q')::text AS t")).rows[0]!.t;
    await waitFor(
      `${what}: tick ${tick} applied and every table ok on ${NODES.join(', ')}`,
      async () => {
        for (const n of NODES) {
          const r = await clients[n]!.query("SELECT (SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = 'q') AS done, (SELECT count(*) FROM pgconvey.subscriber_table WHERE state <> 'ok')::int AS busy");
          if (r.rows[0].busy !== 0 || r.rows[0].done === null || BigInt(r.rows[0].done) < BigInt(tick)) return false;
        }
        return true;
      },
      120_000,
      100,
    );
  }

  /** Row by row, with the harness's own SQL: the node's tables against the root's. */
  async function differences(node: string): Promise<string[]> {
    const out: string[] = [];
    for (const t of TABLES) {
      const d = await compareTable(clients.root!, clients[node]!, 'public', t);
      if (JSON.stringify(d) !== JSON.stringify(equalDiff(d))) out.push(`${node} public.${t}: ${JSON.stringify(d).slice(0, 400)}`);
    }
    return out;
  }

  const pairs = (r: CompareReport) => [...new Set(r.tables.map((t) => `${t.providerNode}→${t.node}`))];
  const unequal = (r: CompareReport) => r.tables.filter((t) => !t.compared || !t.equal).map((t) => `${t.providerNode}→${t.node} ${t.table}: ${t.state} ${JSON.stringify(t.differingRanges).slice(0, 300)}`);

  it('finds every pair equal while a random writer changes the root: each node against its provider, the root against a leaf under the branch, two leaves', { timeout: 240_000 }, async () => {
    let writing = true;
    let written = 0;
    const writer = (async () => {
      const c = await dbs.root!.connect();
      const rng = createRng(SEED);
      const next = { id: 10_000 };
      try {
        while (writing) {
          await writeOnce(c, rng, next);
          written++;
        }
      } finally {
        await c.end();
      }
    })();
    try {
      await waitFor('the writer under way', async () => written > 30);
      const all = await compareState(state, { chunkRows: 500 });
      expect(pairs(all)).toEqual(['root→b1', 'b1→l1', 'b1→l2']);
      expect(unequal(all), `default compare under writes (seed ${SEED})`).toEqual([]);
      for (const nodes of [['root', 'l1'], ['l1', 'l2'], ['l2', 'b1']]) {
        const before = written;
        const r = await compareState(state, { nodes, chunkRows: 500 });
        expect(pairs(r)).toEqual([`${nodes[0]}→${nodes[1]}`]);
        expect(r.tables).toHaveLength(TABLES.length);
        expect(unequal(r), `--nodes ${nodes.join(',')} under writes (seed ${SEED})`).toEqual([]);
        expect(written - before, 'the writer kept writing during compare').toBeGreaterThan(5);
      }
      const one = await compareState(state, { node: 'l2', chunkRows: 500 });
      expect(pairs(one)).toEqual(['b1→l2']);
      expect(unequal(one)).toEqual([]);
    } finally {
      writing = false;
      await writer;
    }
    await caughtUp('after the writer');
    for (const n of NODES) expect(await differences(n), `seed ${SEED}`).toEqual([]);
  });

  it('names rows changed, deleted and inserted on a leaf under the branch, in every pair with that leaf and in no other', { timeout: 180_000 }, async () => {
    await caughtUp('before planting');
    const l1 = clients.l1!;
    const changed = (await clients.root!.query<{ id: string }>('SELECT id::text FROM public.items WHERE id >= 1234 ORDER BY id LIMIT 1')).rows[0]!.id;
    const deleted = (await clients.root!.query<{ order_code: string; line: string }>("SELECT order_code, line::text FROM public.order_lines WHERE order_code = 'b-3' AND line = 17")).rows[0]!;
    expect(deleted).toBeDefined();
    await l1.query('UPDATE public.items SET price = price + 0.01 WHERE id = $1', [changed]);
    await l1.query("DELETE FROM public.order_lines WHERE order_code = 'b-3' AND line = 17");
    await l1.query("INSERT INTO public.items VALUES (999999, 'planted', 1, now())");
    // Independently: l1 differs from the root by exactly those rows; b1 and l2 do not differ.
    const items = await compareTable(clients.root!, l1, 'public', 'items');
    expect(items.missing).toHaveLength(1);
    expect(items.extra).toHaveLength(2);
    expect((await compareTable(clients.root!, l1, 'public', 'order_lines')).missing).toHaveLength(1);
    expect(await differences('b1')).toEqual([]);
    expect(await differences('l2')).toEqual([]);

    const expectPlanted = (r: CompareReport, l1IsSubscriber: boolean) => {
      const byTable = Object.fromEntries(r.tables.map((t) => [t.table, t]));
      const ranges = (t: string) => byTable[t]!.differingRanges;
      const items = ranges('public.items');
      const lines = ranges('public.order_lines');
      const [onL1, onOther] = l1IsSubscriber ? (['extra', 'missing'] as const) : (['missing', 'extra'] as const);
      expect(items.flatMap((x) => x.changed)).toEqual([{ id: changed }]);
      expect(items.flatMap((x) => x[onL1])).toEqual([{ id: '999999' }]);
      expect(items.flatMap((x) => x[onOther])).toEqual([]);
      expect(lines.flatMap((x) => x[onOther])).toEqual([{ order_code: 'b-3', line: '17' }]);
      expect(lines.flatMap((x) => [...x[onL1], ...x.changed])).toEqual([]);
    };
    const all = await compareState(state, {});
    expect(all.equal).toBe(false);
    expect(all.tables.filter((t) => !t.equal).map((t) => `${t.providerNode}→${t.node} ${t.table}`)).toEqual(['b1→l1 public.items', 'b1→l1 public.order_lines']);
    expectPlanted({ ...all, tables: all.tables.filter((t) => t.node === 'l1') }, true);
    expectPlanted(await compareState(state, { nodes: ['root', 'l1'] }), true);
    expectPlanted(await compareState(state, { nodes: ['l1', 'l2'] }), false);
    expect((await compareState(state, { nodes: ['root', 'l2'] })).equal).toBe(true);

    // Put l1 back as the root has it (the deleted line's row is read from the root).
    const row = (await clients.root!.query("SELECT * FROM public.order_lines WHERE order_code = 'b-3' AND line = 17")).rows[0];
    await l1.query('INSERT INTO public.order_lines VALUES ($1, $2, $3, $4)', [row.order_code, row.line, row.qty, row.note]);
    await l1.query('DELETE FROM public.items WHERE id = 999999');
    await l1.query('UPDATE public.items SET price = price - 0.01 WHERE id = $1', [changed]);
    expect(await differences('l1')).toEqual([]);
    expect((await compareState(state, { node: 'l1' })).equal).toBe(true);
  });

  it('refuses a root as --node, a node named twice, an unknown node and --node with --nodes', async () => {
    await expect(compareState(state, { node: 'root' })).rejects.toMatchObject({ code: 'compare_node_is_root' });
    await expect(compareState(state, { nodes: ['l1', 'l1'] })).rejects.toMatchObject({ code: 'compare_nodes_invalid' });
    await expect(compareState(state, { nodes: ['l1'] })).rejects.toMatchObject({ code: 'compare_nodes_invalid' });
    await expect(compareState(state, { nodes: ['l1', 'l3'] })).rejects.toMatchObject({ code: 'unknown_node', hint: expect.stringContaining('did you mean "l1"') });
    await expect(compareState(state, { node: 'l1', nodes: ['root', 'l1'] })).rejects.toMatchObject({ code: 'compare_nodes_conflict' });
  });
});
