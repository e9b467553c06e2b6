/**
 * The capture's shape check: every event names the columns its row really
 * carries, whatever ALTER TABLE ran and where — in the writing transaction
 * itself (before and after its writes, and rolled back), and in another
 * session after a REPEATABLE READ writer took its snapshot (pg_attribute as
 * that snapshot sees it is older than the rows). Both sides are compared row
 * by row with the harness's own SQL (test/harness/exact.ts).
 */
import { describe, expect, it } from 'vitest';
import { makePair, type Pair, type PairOptions } from '../harness/exact.js';

async function withPair(prefix: string, o: PairOptions, body: (p: Pair) => Promise<void>): Promise<void> {
  const pair = await makePair(prefix, o);
  try {
    await body(pair);
  } finally {
    await pair.close();
  }
}

const schema = `CREATE TABLE public.t (id int PRIMARY KEY, r int, y text);
                INSERT INTO public.t SELECT g, g, 'y' || g FROM generate_series(1, 5) g;`;

/** The recorded shape (columns) of each queued event's row, in event order. */
async function eventColumns(p: Pair): Promise<Array<{ data: string | null; columns: string[] | null }>> {
  const parts = [0, 1, 2].map((i) => `SELECT e.ev_id, e.ev_data AS data, s.columns FROM pgconvey.event_1_${i} e LEFT JOIN pgconvey.table_shape s ON s.shape_id = e.ev_shape`);
  return (await p.prov.query(`SELECT data, columns FROM (${parts.join(' UNION ALL ')}) x ORDER BY ev_id`)).rows;
}

describe('capture shape check', () => {
  it('ALTER TABLE inside the writing transaction, before and after its writes (and rolled back): every row travels under its own columns', async () => {
    await withPair('cshape_tx', { schema, tables: [{ schema: 'public', table: 't' }] }, async (p) => {
      // The subscriber gets the new column first (the usual order for ADD COLUMN) and keeps y (dropped later on the provider).
      await p.sub.query('ALTER TABLE public.t ADD COLUMN w int');
      const w = await p.session();
      await w.query('UPDATE public.t SET r = r + 100 WHERE id = 1'); // the session's capture plans its check
      await w.query('BEGIN');
      await w.query('UPDATE public.t SET r = r + 1 WHERE id = 2');
      await w.query('ALTER TABLE public.t ADD COLUMN w int');
      await w.query('UPDATE public.t SET w = id * 10, r = r + 1 WHERE id <= 3');
      await w.query("INSERT INTO public.t (id, r, y, w) VALUES (100, 100, 'new', 1000)");
      await w.query('COMMIT');
      await w.query('BEGIN');
      await w.query("UPDATE public.t SET y = 'before drop' WHERE id = 4");
      await w.query('ALTER TABLE public.t DROP COLUMN y');
      await w.query('UPDATE public.t SET r = r + 1, w = 44 WHERE id = 4');
      await w.query('INSERT INTO public.t (id, r, w) VALUES (101, 101, 1010)');
      await w.query('DELETE FROM public.t WHERE id = 5');
      await w.query('COMMIT');
      // Rolled back: the columns are the committed ones again.
      await w.query('BEGIN');
      await w.query('ALTER TABLE public.t ADD COLUMN v text');
      await w.query("INSERT INTO public.t (id, r, w, v) VALUES (102, 102, 1020, 'gone')");
      await w.query('ROLLBACK');
      await w.query('UPDATE public.t SET r = r + 1 WHERE id IN (1, 100)');
      await w.query('INSERT INTO public.t (id, r, w) VALUES (103, 103, 1030)');

      const events = await eventColumns(p);
      for (const e of events) if (e.data !== null) expect(e.data.slice(1, -1).split(',').length, `${e.data} under ${JSON.stringify(e.columns)}`).toBe(e.columns!.length);
      expect(events.map((e) => e.columns?.join(','))).toEqual([
        'id,r,y',
        'id,r,y',
        'id,r,y,w',
        'id,r,y,w',
        'id,r,y,w',
        'id,r,y,w',
        'id,r,y,w',
        'id,r,w',
        'id,r,w',
        'id,r,w', // the DELETE (its key only)
        'id,r,w',
        'id,r,w',
        'id,r,w',
      ]);
      await p.sync();
      await p.expectEqual('public', 't', { commonColumns: true });
      expect((await p.sub.query('SELECT id, r, w FROM public.t ORDER BY id')).rows).toEqual((await p.prov.query('SELECT id, r, w FROM public.t ORDER BY id')).rows);
    });
  });

  it('a REPEATABLE READ writer whose snapshot predates a concurrent ALTER TABLE: its rows travel under the columns they carry', async () => {
    await withPair('cshape_rr', { schema, tables: [{ schema: 'public', table: 't' }] }, async (p) => {
      await p.sub.query('ALTER TABLE public.t ADD COLUMN z text');
      const w = await p.session();
      const ddl = await p.session();
      await w.query('UPDATE public.t SET r = r + 100 WHERE id = 1'); // the session's capture plans its check
      await w.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await w.query('SELECT 1'); // the snapshot (no lock on t: the ALTER must not wait for this transaction)
      await ddl.query('ALTER TABLE public.t DROP COLUMN y, ADD COLUMN z text');
      await w.query("UPDATE public.t SET r = r + 1, z = 'rr' || id WHERE id <= 2");
      await w.query("INSERT INTO public.t (id, r, z) VALUES (200, 200, 'rr new')");
      await w.query('COMMIT');
      await w.query("UPDATE public.t SET z = 'after' WHERE id = 3");

      const events = await eventColumns(p);
      expect(events.map((e) => e.columns!.join(','))).toEqual(['id,r,y', 'id,r,z', 'id,r,z', 'id,r,z', 'id,r,z']);
      await p.sync();
      // y stays on the subscriber (dropped only on the provider): every provider column compares.
      await p.expectEqual('public', 't', { commonColumns: true });
      expect((await p.sub.query('SELECT count(*)::int AS n FROM public.t WHERE y LIKE \'rr%\'')).rows[0].n).toBe(0);
    });
  });
});
