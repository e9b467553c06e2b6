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
import { ACCOUNTS_SCHEMA, ACCOUNTS_SEED, accountsWriter, cascadeYaml, caughtUp as caughtUpAll, differingFromRoot } from '../harness/cascade.js';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';
import { mkdtempSync, writeFileSync } from 'node:fs';

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
      await c.query(ACCOUNTS_SCHEMA);
    }
    const root = clients.get('root')!;
    await root.query(ACCOUNTS_SEED);
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

    const writer = accountsWriter(dbs.root, rng);

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
      expect(await writer.stop()).toBeGreaterThan(20);
      await caughtUp('after the move and the writer');
      const differing = await differingFromRoot(root, clients, NODES, ['accounts', 'items']);
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
      await writer.stop().catch(() => undefined);
      await Promise.all([...runs.values()].map((p) => p.kill('SIGTERM')));
      await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
    }
  });
});
