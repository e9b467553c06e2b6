/**
 * `switchover --verify counts` counts what replication carries for each
 * table: an inheritance parent's own rows (its children are tables of their
 * own, counted by themselves), a partitioned table's rows in all its
 * partitions. Before, a parent's count took its children's rows in too, so a
 * parent whose children differed between the nodes (or were not replicated)
 * read as a difference of the parent.
 */
import { describe, expect, it } from 'vitest';
import { countRows } from '../../src/operations/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer } from '../harness/servers.js';

describe('switchover row counts', () => {
  it('counts an inheritance parent ONLY, and a partitioned parent with its partitions', async () => {
    const db = await freshDatabase(sourceServer(), 'swcount');
    await db.query(`
      CREATE TABLE public.parent (id int PRIMARY KEY, v text);
      CREATE TABLE public.child (extra int) INHERITS (public.parent);
      INSERT INTO public.parent VALUES (1, 'a'), (2, 'b');
      INSERT INTO public.child VALUES (3, 'c', 1), (4, 'd', 2), (5, 'e', 3);
      CREATE TABLE public.measure (id int, at date) PARTITION BY RANGE (at);
      CREATE TABLE public.measure_1 PARTITION OF public.measure FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
      CREATE TABLE public.measure_2 PARTITION OF public.measure FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
      INSERT INTO public.measure VALUES (1, '2026-01-05'), (2, '2026-02-05'), (3, '2026-02-06');`);
    const c = await db.connect();
    try {
      const tables = ['parent', 'child', 'measure', 'measure_2'].map((name) => ({ schema: 'public', name }));
      expect(await countRows(c, tables)).toEqual([2, 3, 3, 2]);
    } finally {
      await c.end();
    }
  });
});
