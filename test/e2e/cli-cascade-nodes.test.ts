/**
 * Cascades (issue 16, parts 3 and 5) as a user runs them, on three servers
 * of three majors: root (source, 12) → branch b1 (a PostgreSQL 16 server
 * started here) → leaves l1 (target, 17) and l2 (source, 12), `pgconvey run
 * --node X` per node, a seeded writer on the root (harness/cascade.ts).
 *
 * 1. `pgconvey compare` while the writer runs: every node against its
 *    provider (root → b1, b1 → l1, b1 → l2) and `--nodes root,l1` are equal
 *    (exit 0). A row changed on l1 behind replication's back is named by
 *    `--node l1` and `--nodes l2,l1` (exit 1), confirmed with the harness's
 *    own SQL, then put back.
 * 2. The branch removed after its subscribers moved: a file that drops b1
 *    and forgets l2 is refused (`branch_removed_with_subscribers`); the file
 *    that moves l1 and l2 to the root and drops b1 plans each step in order
 *    (the two `change_provider` moves, then b1's watermark and consumer on
 *    the root), apply converges, the leaves run from the root under the
 *    writer and equal the root row by row, and `plan` says "No changes".
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import { ACCOUNTS_SCHEMA, ACCOUNTS_SEED, NodeRuns, accountsWriter, cascadeYaml, caughtUp, differingFromRoot, extraServerDatabase, type CascadeNode, type Db } from '../harness/cascade.js';
import { runCli } from '../harness/cli.js';
import { freshDatabase } from '../harness/databases.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';
import { mkdtempSync, writeFileSync } from 'node:fs';

let pg16: RunningServer | undefined;
beforeAll(async () => {
  pg16 = await startServer({ major: 16 });
}, 120_000);
afterAll(async () => {
  await pg16?.stop();
});

const TABLES = ['accounts', 'items'];
const CASCADE: CascadeNode[] = [
  ['root', 'root'],
  ['b1', 'branch', 'root'],
  ['l1', 'leaf', 'b1'],
  ['l2', 'leaf', 'b1'],
];
const MOVED: CascadeNode[] = [
  ['root', 'root'],
  ['l1', 'leaf', 'root'],
  ['l2', 'leaf', 'root'],
];

interface CompareJson {
  equal: boolean;
  tables: Array<{ name: string; node: string; provider_node: string; equal: boolean; differing_ranges: Array<{ changed: Array<Record<string, string>>; missing: unknown[]; extra: unknown[] }> }>;
}

describe('pgconvey: compare between nodes of a cascade, and a branch removed after its subscribers moved', () => {
  it('compares any two nodes under a writer, finds a row changed under the branch; removes the branch in order; plan says No changes', { timeout: 600_000 }, async () => {
    const seed = testSeed();
    const rng = createRng(seed);
    process.stderr.write(`[cli-cascade-nodes] seed ${seed} (PGCONVEY_SEED=${seed} replays it)\n`);
    const dbs: Record<string, Db> = {
      root: await freshDatabase(sourceServer(), 'casn_root'),
      b1: await extraServerDatabase(pg16!, 'casn_b1'),
      l1: await freshDatabase(targetServer(), 'casn_l1'),
      l2: await freshDatabase(sourceServer(), 'casn_l2'),
    };
    const clients = new Map<string, pg.Client>();
    for (const [name, d] of Object.entries(dbs)) {
      const c = await d.connect();
      clients.set(name, c);
      await c.query(ACCOUNTS_SCHEMA);
    }
    const root = clients.get('root')!;
    await root.query(ACCOUNTS_SEED);
    const dsn = Object.fromEntries(Object.entries(dbs).map(([k, d]) => [k, d.dsn]));
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/cascade.yaml`;
    writeFileSync(file, cascadeYaml(dsn, CASCADE));
    const applied = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const runs = new NodeRuns(file);
    let writer = accountsWriter(dbs.root!, rng);
    try {
      for (const n of ['root', 'b1', 'l1', 'l2']) runs.start(n);
      await caughtUp('after the initial copies', root, clients, ['b1', 'l1', 'l2'], { runs });

      // 1. compare under the writer: every node against its provider, and the root against a leaf under the branch.
      const compare = async (...args: string[]) => {
        const r = await runCli(['compare', file, '--json', ...args], { timeoutMs: 180_000 });
        return { code: r.code, out: r.stdout + r.stderr, json: r.stdout.trim().startsWith('{') ? (JSON.parse(r.stdout) as CompareJson) : null };
      };
      const before = writer.written();
      const all = await compare();
      expect(all.code, all.out).toBe(0);
      expect([...new Set(all.json!.tables.map((t) => `${t.provider_node}→${t.node}`))]).toEqual(['root→b1', 'b1→l1', 'b1→l2']);
      const rootLeaf = await compare('--nodes', 'root,l1');
      expect(rootLeaf.code, rootLeaf.out).toBe(0);
      expect(rootLeaf.json!.tables.map((t) => `${t.provider_node}→${t.node} ${t.name} ${t.equal}`)).toEqual(['root→l1 public.accounts true', 'root→l1 public.items true']);
      expect(writer.written() - before, 'the writer kept writing during compare').toBeGreaterThan(10);

      // A row changed on l1 behind replication's back (the writer only inserts items: item 7 stays as seeded).
      const l1 = clients.get('l1')!;
      await l1.query(`UPDATE public.items SET payload = '{"planted": true}' WHERE id = 7`);
      // Independently (the writer goes on, so only this row is read): it differs on l1, not on b1 or l2.
      const item7 = async (n: string) => (await clients.get(n)!.query<{ r: string }>('SELECT t::text AS r FROM public.items t WHERE id = 7')).rows[0]!.r;
      expect(await item7('l1')).not.toBe(await item7('root'));
      for (const n of ['b1', 'l2']) expect(await item7(n)).toBe(await item7('root'));
      for (const args of [['--node', 'l1'], ['--nodes', 'l2,l1']]) {
        const r = await compare(...args, 'items');
        expect(r.code, r.out).toBe(1);
        expect(r.json!.tables).toHaveLength(1);
        expect(r.json!.tables[0]).toMatchObject({ name: 'public.items', node: 'l1', equal: false });
        expect(r.json!.tables[0]!.differing_ranges.flatMap((d) => [...d.changed, ...(d.missing as never[]), ...(d.extra as never[])])).toEqual([{ id: '7' }]);
      }
      expect((await compare('--node', 'l2', 'items')).code).toBe(0);
      await l1.query(`UPDATE public.items SET payload = '{"n": 7}' WHERE id = 7`);
      expect(await item7('l1')).toBe(await item7('root'));

      // 2. Remove the branch. Its runs and its leaves' runs stop (a move needs the node's worker stopped).
      const written = await writer.stop();
      expect(written).toBeGreaterThan(20);
      await caughtUp('after the writer', root, clients, ['b1', 'l1', 'l2'], { runs });
      for (const n of ['l1', 'l2', 'b1']) await runs.stop(n);
      // A file that removes b1 but forgets l2, which still reads from it: refused.
      writeFileSync(file, cascadeYaml(dsn, MOVED.slice(0, 2)));
      const refused = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(refused.code, refused.stdout + refused.stderr).not.toBe(0);
      expect(refused.stdout + refused.stderr).toMatch(/branch_removed_with_subscribers[\s\S]*"l2"/);

      writeFileSync(file, cascadeYaml(dsn, MOVED));
      const planned = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(planned.code, planned.stdout + planned.stderr).toBe(0);
      expect(planned.stdout).toMatch(/~ change_provider root/);
      // Each step, in the order apply runs them: the moves first, then the branch's consumer and watermark on the root.
      const json = await runCli(['plan', file, '--json'], { timeoutMs: 120_000 });
      const actions = (JSON.parse(json.stdout) as { actions: Array<{ id: string; kind: string; node: string; object: string; depends_on: string[] }> }).actions;
      expect(actions.map((x) => `${x.kind} ${x.node} ${x.object}`)).toEqual(['change_provider l1 root', 'change_provider l2 root', 'remove_consumer root b1', 'remove_consumer root watermark:b1']);
      for (const x of actions.slice(2)) expect(x.depends_on).toEqual(['change_provider:l1:shop', 'change_provider:l2:shop']);
      const moved = await runCli(['apply', file, '--auto-approve', '--allow-destructive'], { timeoutMs: 180_000 });
      expect(moved.code, moved.stdout + moved.stderr).toBe(0);
      const consumers = (await root.query<{ n: string }>("SELECT c.consumer_name AS n FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'shop' ORDER BY 1")).rows.map((r) => r.n);
      expect(consumers.filter((n) => !n.startsWith('copy:'))).toEqual(['l1', 'l2']);

      // The leaves run from the root under the writer again, and equal it row by row.
      writer = accountsWriter(dbs.root!, rng);
      for (const n of ['l1', 'l2']) runs.start(n);
      await new Promise((r) => setTimeout(r, rng.int(1000, 2500)));
      expect(await writer.stop()).toBeGreaterThan(5);
      await caughtUp('after the move and the writer', root, clients, ['l1', 'l2'], { runs });
      expect(await differingFromRoot(root, clients, ['l1', 'l2'], TABLES)).toEqual([]);
      const after = await compare();
      expect(after.code, after.out).toBe(0);
      expect([...new Set(after.json!.tables.map((t) => `${t.provider_node}→${t.node}`))]).toEqual(['root→l1', 'root→l2']);
      const again = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('No changes');
    } finally {
      await writer.stop().catch(() => undefined);
      await runs.stopAll();
      await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
    }
  });
});
