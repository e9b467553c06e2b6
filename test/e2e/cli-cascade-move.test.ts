/**
 * Cascades (issue 16, parts 2 and 3) as a user runs them: root (12) →
 * branch b1 (17) → leaf l1 (12), a writer on the root all along, `pgconvey
 * run --node X` per node as child processes.
 *
 * 1. l1's run is stopped: the root keeps l1's events through b1's watermark
 *    (`watermark:b1` on the root reaches l1's tick), and `status --json`
 *    says the root keeps them for l1 through b1.
 * 2. The file moves l1 to the root: `plan` shows `change_provider`, `apply`
 *    moves it (no copy), l1's run starts again and reads from the root; the
 *    writer goes on; then every node equals the root row by row (the
 *    harness's own SQL) and `plan` says "No changes".
 * 3. l1 stopped again while b1 goes on: moving it back under b1 is refused
 *    (`change_provider_tick_gone`: b1 does not hold l1's tick).
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { cascadeYaml, caughtUp as caughtUpAll } from '../harness/cascade.js';
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
  CREATE TABLE public.items (id bigserial PRIMARY KEY, account int NOT NULL, payload jsonb);`;
const SEED = `
  INSERT INTO public.accounts SELECT g, g * 10, 'seed ' || g FROM generate_series(1, 2000) g;
  INSERT INTO public.items (account, payload) SELECT g % 2000 + 1, jsonb_build_object('n', g) FROM generate_series(1, 3000) g;`;

const NODES = ['b1', 'l1'] as const;

const yaml = (dsn: Record<string, string>, l1Provider: string): string =>
  cascadeYaml(dsn, [
    ['root', 'root'],
    ['b1', 'branch', 'root'],
    ['l1', 'leaf', l1Provider],
  ]);

describe('pgconvey: moving a leaf from a branch to the root (~ change_provider) under a writer', () => {
  it('the root keeps a stopped leaf\'s events; the moved leaf equals the root row by row; a move whose tick is gone is refused', { timeout: 600_000 }, async () => {
    const seed = testSeed();
    const rng = createRng(seed);
    process.stderr.write(`[cli-cascade-move] seed ${seed} (PGCONVEY_SEED=${seed} replays it)\n`);
    const dbs = { root: await freshDatabase(sourceServer(), 'casm_root'), b1: await freshDatabase(targetServer(), 'casm_b1'), l1: await freshDatabase(sourceServer(), 'casm_l1') };
    const clients = new Map<string, pg.Client>();
    for (const [name, d] of Object.entries(dbs)) {
      const c = await d.connect();
      clients.set(name, c);
      await c.query(SCHEMA);
    }
    const root = clients.get('root')!;
    await root.query(SEED);
    const dsn = Object.fromEntries(Object.entries(dbs).map(([k, d]) => [k, d.dsn]));
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/cascade.yaml`;
    writeFileSync(file, yaml(dsn, 'b1'));
    const applied = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const runs = new Map<string, CliProcess>();
    const startRun = (node: string) => runs.set(node, startCli(['run', file, '--node', node, '--log-format', 'json']));
    const completed = async (n: string) => (await clients.get(n)!.query<{ t: string | null }>("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE queue_name = 'shop'")).rows[0]?.t ?? null;
    const consumerAt = async (n: string, consumer: string) =>
      (await clients.get(n)!.query<{ t: string }>("SELECT c.last_tick::text AS t FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'shop' AND c.consumer_name = $1", [consumer])).rows[0]?.t ?? null;
    const caughtUp = (what: string, nodes: readonly string[] = NODES) => caughtUpAll(what, root, clients, nodes, { logs: () => [...runs].map(([n, p]) => `--- ${n}:\n${p.lines.slice(-12).join('\n')}`).join('\n') });

    let writing = true;
    let written = 0;
    const writer = (async () => {
      const w = await dbs.root.connect();
      try {
        let next = 10_000;
        while (writing) {
          await w.query('BEGIN');
          for (let i = rng.int(1, 5); i > 0; i--) {
            const id = rng.int(1, 2500);
            switch (rng.int(0, 4)) {
              case 0:
                await w.query('INSERT INTO public.accounts VALUES ($1, $2, $3)', [next++, rng.int(0, 1000), `n${rng.int(0, 99)}`]);
                break;
              case 1:
                await w.query('UPDATE public.accounts SET balance = balance + $2, note = $3 WHERE id = $1', [id, rng.int(-50, 50), rng.chance(0.2) ? null : `u${rng.int(0, 99)}`]);
                break;
              case 2:
                await w.query('DELETE FROM public.accounts WHERE id = $1', [id]);
                break;
              case 3:
                await w.query('UPDATE public.accounts SET id = $2 WHERE id = $1', [id, next++]);
                break;
              default:
                await w.query("INSERT INTO public.items (account, payload) SELECT $1, jsonb_build_object('w', g) FROM generate_series(1, $2) g", [id, rng.int(1, 10)]);
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
      await caughtUp('after the initial copies');

      // 1. l1 stops; the writer and b1 go on. The root keeps l1's events through b1's watermark.
      await runs.get('l1')!.kill('SIGTERM');
      const stoppedAt = (await completed('l1'))!;
      // l1's consumer on b1: at its completed tick, or one batch before when its last finish did not reach b1.
      const heldAt = (await consumerAt('b1', 'l1'))!;
      expect(BigInt(heldAt) <= BigInt(stoppedAt)).toBe(true);
      await waitFor(`b1's watermark on the root at l1's tick ${heldAt}`, async () => (await consumerAt('root', 'watermark:b1')) === heldAt, 60_000, 200);
      await caughtUp('b1 past the stopped l1', ['b1']);
      expect(await consumerAt('root', 'watermark:b1')).toBe(heldAt);
      const status = JSON.parse((await runCli(['status', file, '--json'], { timeoutMs: 60_000 })).stdout) as { queues: Array<{ root: { retention: { tick: string; held_by: string; through: string[] } | null } }> };
      expect(status.queues[0]!.root.retention).toMatchObject({ tick: heldAt, held_by: 'l1', through: ['b1', 'l1'] });

      // 2. The file moves l1 to the root: plan shows change_provider, apply moves it, run reads from the root.
      writeFileSync(file, yaml(dsn, 'root'));
      const planned = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(planned.code, planned.stdout + planned.stderr).toBe(0);
      expect(planned.stdout).toMatch(/~ change_provider root/);
      const moved = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
      expect(moved.code, moved.stdout + moved.stderr).toBe(0);
      expect(await consumerAt('root', 'l1')).toBe(stoppedAt);
      expect(await consumerAt('b1', 'l1')).toBeNull();
      startRun('l1');
      await new Promise((r) => setTimeout(r, rng.int(1000, 3000)));
      writing = false;
      await writer;
      expect(written).toBeGreaterThan(20);
      await caughtUp('after the move and the writer');
      const differing: string[] = [];
      for (const n of NODES) {
        for (const t of ['accounts', 'items']) {
          const d = await compareTable(root, clients.get(n)!, 'public', t);
          if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) differing.push(`${n} public.${t}: ${JSON.stringify(d).slice(0, 500)}`);
        }
      }
      expect(differing).toEqual([]);
      // No table of l1 was copied again: they stayed ok through the move.
      const again = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('No changes');

      // 3. l1 stops; b1 goes on past it. Moving l1 back under b1 is refused: b1 does not hold l1's tick.
      await runs.get('l1')!.kill('SIGTERM');
      await root.query("INSERT INTO public.accounts VALUES (99999, 1, 'after')");
      await caughtUp('b1 past l1 again', ['b1']);
      writeFileSync(file, yaml(dsn, 'b1'));
      const refused = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(refused.code, refused.stdout + refused.stderr).not.toBe(0);
      expect(refused.stdout + refused.stderr).toMatch(/change_provider_tick_gone/);
    } finally {
      writing = false;
      await writer.catch(() => undefined);
      await Promise.all([...runs.values()].map((p) => p.kill('SIGTERM')));
      await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
    }
  });
});
