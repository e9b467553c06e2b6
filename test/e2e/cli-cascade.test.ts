/**
 * Cascades (issue 16) as a user runs them, on three majors: the test run's
 * source server (12) holds the root, a PostgreSQL 16 server started here the
 * first branch, the target server (17) a leaf of it and a second branch,
 * which feeds a leaf on the 16 server:
 *
 *   root (12) → b1 (16) → l1 (17)
 *                       → b2 (17) → l2 (16)
 *
 * `pgconvey apply`, then `pgconvey run --node X` per node as child
 * processes, a writer on the root, and SIGKILLs of b1's run at random moments
 * (seed printed; PGCONVEY_SEED replays it). Every node must end equal to the
 * root row by row (the harness's own SQL), every table `ok`, every node past
 * the root's last tick (tick ids are the same all the way down), the
 * sequences carried, and `pgconvey plan` must say "No changes". The leaves
 * copy their tables from their provider, a branch.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import { cascadeYaml, extraServerDatabase, type Db } from '../harness/cascade.js';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { compareTable } from '../harness/exact.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';
import { mkdtempSync, writeFileSync } from 'node:fs';

const SCHEMA = `
  CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL, note text);
  CREATE TABLE public.items (id bigserial PRIMARY KEY, account int NOT NULL, payload jsonb, at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE public.tags (k text PRIMARY KEY, v int);`;

const SEED = `
  INSERT INTO public.accounts SELECT g, g * 10, 'seed ' || g FROM generate_series(1, 2000) g;
  INSERT INTO public.items (account, payload) SELECT g % 2000 + 1, jsonb_build_object('n', g) FROM generate_series(1, 3000) g;
  INSERT INTO public.tags SELECT 'k' || g, g FROM generate_series(1, 50) g;`;

/** A database on the 16 server started here (thrown away with it). */
const db16 = (): Promise<Db> => extraServerDatabase(pg16!, 'cas');

let pg16: RunningServer | undefined;

beforeAll(async () => {
  pg16 = await startServer({ major: 16 });
}, 120_000);
afterAll(async () => {
  await pg16?.stop();
});

const NODES = ['b1', 'l1', 'b2', 'l2'] as const;

const cascadeFile = (dsn: Record<'root' | (typeof NODES)[number], string>): string =>
  cascadeYaml(
    dsn,
    [
      ['root', 'root'],
      ['b1', 'branch', 'root'],
      ['l1', 'leaf', 'b1'],
      ['b2', 'branch', 'b1'],
      ['l2', 'leaf', 'b2'],
    ],
    { sequences: true },
  );

describe('pgconvey: cascades (root → branch → leaf, root → branch → branch → leaf)', () => {
  it('apply, run per node, a writer on the root, SIGKILLs of the branch: every node equals the root row by row; plan says No changes', { timeout: 600_000 }, async () => {
    const seed = testSeed();
    const rng = createRng(seed);
    process.stderr.write(`[cli-cascade] seed ${seed} (PGCONVEY_SEED=${seed} replays it)\n`);
    const rootDb = await freshDatabase(sourceServer(), 'cas_root');
    const l1Db = await freshDatabase(targetServer(), 'cas_l1');
    const b2Db = await freshDatabase(targetServer(), 'cas_b2');
    const [b1Db, l2Db] = [await db16(), await db16()];
    const all: Record<'root' | (typeof NODES)[number], Db> = { root: rootDb, b1: b1Db, l1: l1Db, b2: b2Db, l2: l2Db };
    const clients = new Map<string, pg.Client>();
    for (const [name, d] of Object.entries(all)) {
      const c = await d.connect();
      clients.set(name, c);
      await c.query(SCHEMA);
    }
    const root = clients.get('root')!;
    await root.query(SEED);
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/cascade.yaml`;
    writeFileSync(file, cascadeFile(Object.fromEntries(Object.entries(all).map(([k, d]) => [k, d.dsn])) as Record<'root' | (typeof NODES)[number], string>));

    const planned = await runCli(['plan', file], { timeoutMs: 120_000 });
    expect(planned.code, planned.stdout + planned.stderr).toBe(2 - 2); // plan exits 0 without --detailed-exitcode
    expect(planned.stdout).toMatch(/create_branch_queue shop/);
    const applied = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const runs = new Map<string, CliProcess>();
    const startRun = (node: string) => runs.set(node, startCli(['run', file, '--node', node, '--log-format', 'json']));
    const tableStates = async () => {
      const out: string[] = [];
      for (const n of NODES) out.push(`${n}: ${JSON.stringify((await clients.get(n)!.query('SELECT table_name, state, last_error FROM pgconvey.subscriber_table ORDER BY 1')).rows)}`);
      return out.join('\n');
    };
    /** Every node's tables ok and every node past a root tick taken now. */
    const caughtUp = async (what: string) => {
      const tick = (await root.query<{ t: string }>("SELECT pgconvey.force_tick('shop')::text AS t")).rows[0]!.t;
      let polls = 0;
      await waitFor(
        `${what}: every table ok and tick ${tick} applied on every node`,
        async () => {
          // A copy under a branch merges at the next tick from above: tick the root now and then (else its idle period).
          if (++polls % 5 === 0) await root.query("SELECT pgconvey.force_tick('shop')");
          for (const n of NODES) {
            const r = await clients.get(n)!.query("SELECT (SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = 'shop') AS done, (SELECT count(*) FROM pgconvey.subscriber_table WHERE state <> 'ok')::int AS busy");
            if (r.rows[0].busy !== 0 || BigInt(r.rows[0].done ?? 0) < BigInt(tick)) return false;
          }
          return true;
        },
        180_000,
        200,
      ).catch(async (err) => {
        const logs = [...runs].map(([n, p]) => `--- ${n}:\n${p.lines.slice(-12).join('\n')}`).join('\n');
        throw new Error(`${(err as Error).message}\ntables:\n${await tableStates()}\nrun logs:\n${logs}`);
      });
    };

    let writing = true;
    let written = 0;
    const writer = (async () => {
      const w = await rootDb.connect();
      try {
        let nextAccount = 10_000;
        while (writing) {
          const ops = rng.int(1, 6);
          await w.query('BEGIN');
          for (let i = 0; i < ops; i++) {
            const id = rng.int(1, 2500);
            switch (rng.int(0, 6)) {
              case 0:
                await w.query('INSERT INTO public.accounts VALUES ($1, $2, $3)', [nextAccount++, rng.int(0, 1000), `n${rng.int(0, 99)}`]);
                break;
              case 1:
                await w.query('UPDATE public.accounts SET balance = balance + $2, note = $3 WHERE id = $1', [id, rng.int(-50, 50), rng.chance(0.2) ? null : `u${rng.int(0, 99)}`]);
                break;
              case 2:
                await w.query('DELETE FROM public.accounts WHERE id = $1', [id]);
                break;
              case 3:
                await w.query("INSERT INTO public.items (account, payload) SELECT $1, jsonb_build_object('w', g, 'null', null) FROM generate_series(1, $2) g", [id, rng.int(1, 20)]);
                break;
              case 4:
                await w.query('UPDATE public.items SET payload = payload || $2::jsonb WHERE id % 97 = $1', [rng.int(0, 96), JSON.stringify({ u: rng.int(0, 9) })]);
                break;
              case 5:
                // A key change: a DELETE of the old key and an INSERT of the new one.
                await w.query('UPDATE public.accounts SET id = $2 WHERE id = $1', [id, nextAccount++]);
                break;
              default:
                await w.query('INSERT INTO public.tags VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v', [`k${rng.int(1, 80)}`, rng.int(0, 1000)]);
            }
          }
          await w.query(rng.chance(0.05) ? 'ROLLBACK' : 'COMMIT');
          written++;
          await new Promise((r) => setTimeout(r, rng.int(0, 15)));
        }
      } finally {
        await w.end();
      }
    })();

    try {
      for (const n of ['root', ...NODES]) startRun(n);
      // SIGKILLs of the branch b1 (its worker re-queues for l1 and b2) at random moments, under the writer.
      const kills = 6;
      for (let k = 0; k < kills; k++) {
        await new Promise((r) => setTimeout(r, rng.int(300, 2500)));
        await runs.get('b1')!.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, rng.int(0, 500)));
        startRun('b1');
      }
      await new Promise((r) => setTimeout(r, rng.int(500, 1500)));
      writing = false;
      await writer;
      expect(written).toBeGreaterThan(20);
      const waited = Date.now();
      await caughtUp('after the writer and the kills');
      process.stderr.write(`[cli-cascade] ${written} transactions; caught up ${Date.now() - waited} ms after the writer stopped\n`);
      for (const [n, p] of runs) {
        const errors = p.lines.filter((l) => /"level":"(error|warn)"/.test(l));
        if (errors.length) process.stderr.write(`[cli-cascade] ${n}: ${errors.length} error/warn lines, e.g. ${errors.slice(0, 3).join(' | ').slice(0, 900)}\n`);
      }

      const tables = ['accounts', 'items', 'tags'];
      const differing: string[] = [];
      for (const n of NODES) {
        for (const t of tables) {
          const d = await compareTable(root, clients.get(n)!, 'public', t);
          if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) differing.push(`${n} public.${t}: ${JSON.stringify(d).slice(0, 500)}`);
        }
      }
      expect(differing).toEqual([]);
      // Sequences travel down the cascade too.
      const rootSeq = BigInt((await root.query("SELECT last_value::text AS v FROM public.items_id_seq")).rows[0].v);
      for (const n of NODES) {
        const v = BigInt((await clients.get(n)!.query("SELECT last_value::text AS v FROM public.items_id_seq")).rows[0].v);
        expect(v >= rootSeq, `${n}'s items_id_seq ${v} >= the root's ${rootSeq}`).toBe(true);
      }
      // Every branch tick is a root tick of the same id (the batches are the root's).
      for (const b of ['b1', 'b2']) {
        const ids = (await clients.get(b)!.query<{ t: string }>("SELECT tick_id::text AS t FROM pgconvey.tick t JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'shop'")).rows.map((r) => r.t);
        const onRoot = new Set((await root.query<{ t: string }>('SELECT tick_id::text AS t FROM pgconvey.tick WHERE tick_id = ANY ($1::bigint[])', [ids])).rows.map((r) => r.t));
        expect(ids.filter((t) => !onRoot.has(t)), `${b}'s ticks not on the root`).toEqual([]);
      }

      // The application's writes on a branch's replicated tables are refused (they would diverge from the root).
      for (const b of ['b1', 'b2']) await expect(clients.get(b)!.query('UPDATE public.accounts SET balance = 0 WHERE id = 1')).rejects.toThrow(/pgconvey branch/);

      // status as a tree: each node after its provider, with its type, provider, depth and lag behind the root.
      const status = await runCli(['status', file, '--json'], { timeoutMs: 60_000 });
      const report = JSON.parse(status.stdout) as { problems: string[]; queues: Array<{ subscribers: Array<{ node: string; type: string; provider: string; depth: number; lag_seconds: number | null; tables: unknown[] }> }> };
      expect(report.problems).toEqual([]);
      expect(report.queues[0]!.subscribers.map((s) => `${s.node}:${s.type}:${s.provider}:${s.depth}`)).toEqual(['b1:branch:root:1', 'l1:leaf:b1:2', 'b2:branch:b1:2', 'l2:leaf:b2:3']);
      for (const s of report.queues[0]!.subscribers) {
        expect(s.lag_seconds, s.node).not.toBeNull();
        expect(s.tables, s.node).toHaveLength(3);
      }
      const text = await runCli(['status', file], { timeoutMs: 60_000 });
      // A node under a branch is indented one level more than the branch.
      expect(text.stdout).toMatch(/\n( *)→ b1 \(branch\)[\s\S]*?\n\1  → l1 [\s\S]*?\n\1  → b2 \(branch\)[\s\S]*?\n\1    → l2 /);

      // A switchover goes to a node whose provider is the root: b2 (under b1) is refused, with its code.
      const switched = await runCli(['switchover', file, '--to', 'b2'], { timeoutMs: 60_000 });
      expect(switched.code, switched.stdout + switched.stderr).toBe(1);
      expect(switched.stdout + switched.stderr).toMatch(/switchover_target_not_child/);

      const again = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('No changes');
    } finally {
      writing = false;
      await writer.catch(() => undefined);
      await Promise.all([...runs.values()].map((p) => p.kill('SIGTERM')));
      await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
    }
  });
});
