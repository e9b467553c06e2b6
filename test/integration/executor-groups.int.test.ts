/**
 * Apply's groups with batches (src/executor/groups.ts runGroup): a run of one
 * kind goes in batches under a savepoint (the first of GROUP.firstBatch); a
 * batch that fails is rolled back to its savepoint and its actions run one by
 * one, so the group commits the actions before the failing one and nothing of
 * it; progress hooks fire once per committed action. Fake actions writing rows
 * of a table, checked row by row.
 */
import { describe, expect, it } from 'vitest';
import type { Action } from '../../src/actions/index.js';
import { GROUP, runGroup } from '../../src/executor/groups.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer } from '../harness/servers.js';

const fake = (n: number): Action => ({ id: `capture_table:n:${n}`, kind: 'capture_table', params: { n } }) as unknown as Action;
const numberOf = (a: Action) => (a as unknown as { params: { n: number } }).params.n;

describe('runGroup with batches', () => {
  it('runs a run in batches, and one by one after a failed batch, committing only what comes before the failure', { timeout: 60_000 }, async () => {
    const db = await freshDatabase(sourceServer(), 'groups');
    await db.query('CREATE TABLE public.done (n int PRIMARY KEY)');
    const c = await db.connect();
    try {
      const bad = new Set<number>();
      const batches: number[][] = [];
      const singles: number[] = [];
      const insert = async (ns: number[]) => {
        if (ns.some((n) => bad.has(n))) throw new Error('bad action');
        await c.query('INSERT INTO public.done SELECT unnest($1::int[])', [ns]);
      };
      const execute = async (a: Action) => {
        singles.push(numberOf(a));
        await insert([numberOf(a)]);
      };
      const batchOf = () => async (as: Action[]) => {
        batches.push(as.map(numberOf));
        await insert(as.map(numberOf));
      };
      const hooked: number[] = [];
      const hooks = { onDone: (a: Action) => hooked.push(numberOf(a)) };
      const rows = async () => (await c.query<{ n: number }>('SELECT n FROM public.done ORDER BY n')).rows.map((r) => r.n);

      // All good: batches (the first of GROUP.firstBatch), every action committed, hooks for each.
      const all = Array.from({ length: 20 }, (_, i) => fake(i + 1));
      expect(await runGroup(c, all, execute, hooks, batchOf)).toBe(20);
      expect(batches[0]!.length).toBe(GROUP.firstBatch);
      expect(batches.flat()).toEqual(all.map(numberOf));
      expect(singles).toEqual([]);
      expect(await rows()).toEqual(all.map(numberOf));
      expect(hooked).toEqual(all.map(numberOf));

      // Action 105 fails: its batch is rolled back to the savepoint and run one by one; the group then
      // rolls back and commits 101..104 alone (the caller runs 105 on its own).
      await c.query('TRUNCATE public.done');
      batches.length = 0;
      hooked.length = 0;
      bad.add(105);
      const withBad = Array.from({ length: 10 }, (_, i) => fake(101 + i));
      expect(await runGroup(c, withBad, execute, hooks, batchOf)).toBe(4);
      expect(await rows()).toEqual([101, 102, 103, 104]);
      expect(hooked).toEqual([101, 102, 103, 104]);
      expect(singles).toContain(105);
      expect((await c.query<{ s: string }>("SELECT pg_catalog.txid_current_if_assigned() IS NULL AS s")).rows[0]!.s).toBe(true); // no transaction left open

      // Without a batch call the group runs the actions one by one, as before.
      await c.query('TRUNCATE public.done');
      singles.length = 0;
      expect(await runGroup(c, [fake(201), fake(202)], execute)).toBe(2);
      expect(singles).toEqual([201, 202]);
      expect(await rows()).toEqual([201, 202]);
    } finally {
      await c.end();
    }
  });
});
