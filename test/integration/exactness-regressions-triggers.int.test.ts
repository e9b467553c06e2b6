/**
 * Exactness with other triggers on a captured table: a user AFTER ROW
 * trigger, a foreign key's action or a trigger on another table that writes a
 * row again before the capture of the row's earlier version has fired (for
 * the same row, or for a row the statement changed earlier). The capture
 * must not ship the earlier version last. Both sides are compared row by row
 * with the harness's own SQL (test/harness/exact.ts), never with pgconvey's
 * compare.
 */
import { describe, expect, it } from 'vitest';
import { makePair, type Pair } from '../harness/exact.js';

async function withPair(prefix: string, schema: string, tables: string[], body: (p: Pair) => Promise<void>): Promise<void> {
  const pair = await makePair(prefix, { schema, tables: tables.map((table) => ({ schema: 'public', table })) });
  try {
    await body(pair);
  } finally {
    await pair.close();
  }
}

const touchSchema = `CREATE TABLE public.t (id int PRIMARY KEY, v int, touched int NOT NULL DEFAULT 0);
  INSERT INTO public.t (id, v) SELECT g, g FROM generate_series(1, 5) g;`;

describe('capture exactness with other triggers', () => {
  it('an AFTER UPDATE trigger (firing before the capture) updates its own row again', async () => {
    await withPair('trig_self', touchSchema + `
      CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE public.t SET touched = touched + 1 WHERE id = NEW.id; RETURN NULL; END $$;
      CREATE TRIGGER a_touch AFTER UPDATE ON public.t FOR EACH ROW WHEN (pg_trigger_depth() < 2) EXECUTE PROCEDURE public.touch();`, ['t'], async (p) => {
      await p.prov.query('UPDATE public.t SET v = v + 10');
      await p.prov.query('UPDATE public.t SET v = v + 1 WHERE id = 3');
      await p.sync();
      await p.expectEqual('public', 't');
      expect((await p.sub.query('SELECT count(*)::int AS n FROM public.t WHERE touched = 0')).rows[0].n).toBe(0);
    });
  });

  it("a row's AFTER UPDATE trigger updates a row the same statement changed earlier (a later name than the capture's too)", async () => {
    await withPair('trig_cross', touchSchema + `
      CREATE FUNCTION public.touch_next() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE public.t SET touched = touched + 1 WHERE id = NEW.id - 1; RETURN NULL; END $$;
      CREATE TRIGGER z_touch AFTER UPDATE ON public.t FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE PROCEDURE public.touch_next();`, ['t'], async (p) => {
      // Row n's trigger (after row n's capture: z_ sorts after pgconvey_) updates row n - 1, whose capture fired already;
      // and the opposite order: a trigger sorting first updating row n + 1, whose capture fires later.
      await p.prov.query('UPDATE public.t SET v = v + 10');
      await p.prov.query(`CREATE FUNCTION public.touch_prev() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE public.t SET touched = touched + 100 WHERE id = NEW.id + 1; RETURN NULL; END $$;
        CREATE TRIGGER a_touch AFTER UPDATE ON public.t FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE PROCEDURE public.touch_prev();`);
      await p.prov.query('UPDATE public.t SET v = v + 10');
      await p.sync();
      await p.expectEqual('public', 't');
    });
  });

  it('a self-referencing foreign key ON UPDATE CASCADE, parents and children updated in one statement', async () => {
    await withPair('trig_fk_upd', `CREATE TABLE public.tree (id int PRIMARY KEY, parent int REFERENCES public.tree (id) ON UPDATE CASCADE ON DELETE CASCADE, v int);
      INSERT INTO public.tree VALUES (1, NULL, 1), (2, 1, 2), (3, 2, 3), (4, 1, 4), (5, NULL, 5);`, ['tree'], async (p) => {
      await p.prov.query('UPDATE public.tree SET id = id + 100, v = v + 1');
      await p.prov.query('UPDATE public.tree SET id = id - 50, v = v + 1 WHERE id IN (101, 102)');
      await p.sync();
      await p.expectEqual('public', 'tree');
      expect((await p.sub.query('SELECT id, parent FROM public.tree ORDER BY id')).rows).toEqual((await p.prov.query('SELECT id, parent FROM public.tree ORDER BY id')).rows);
    });
  });

  it('a DELETE cascading through a self-referencing foreign key, and an AFTER DELETE trigger writing the key again', async () => {
    await withPair('trig_fk_del', `CREATE TABLE public.tree (id int PRIMARY KEY, parent int REFERENCES public.tree (id) ON UPDATE CASCADE ON DELETE CASCADE, v int);
      INSERT INTO public.tree VALUES (1, NULL, 1), (2, 1, 2), (3, 2, 3), (4, 1, 4), (5, NULL, 5), (6, 5, 6);
      CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.v = 5 THEN INSERT INTO public.tree VALUES (OLD.id, NULL, -OLD.v); END IF; RETURN NULL; END $$;
      CREATE TRIGGER a_keep AFTER DELETE ON public.tree FOR EACH ROW EXECUTE PROCEDURE public.keep();`, ['tree'], async (p) => {
      await p.prov.query('DELETE FROM public.tree WHERE id IN (1, 3, 5)');
      await p.sync();
      await p.expectEqual('public', 'tree');
      expect((await p.prov.query('SELECT id, v FROM public.tree ORDER BY id')).rows).toEqual([{ id: 5, v: -5 }]); // 6 went with its parent
    });
  });

  it('a trigger on another table, written by the same statement, updates rows of the captured table', async () => {
    await withPair('trig_other', touchSchema + `
      CREATE TABLE public.u (id int PRIMARY KEY, tid int, n int NOT NULL DEFAULT 0);
      INSERT INTO public.u (id, tid) SELECT g, g FROM generate_series(1, 5) g;
      CREATE FUNCTION public.touch_t() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE public.t SET touched = touched + 1 WHERE id = NEW.tid; RETURN NULL; END $$;
      CREATE TRIGGER u_touch AFTER UPDATE ON public.u FOR EACH ROW EXECUTE PROCEDURE public.touch_t();`, ['t', 'u'], async (p) => {
      // The CTE runs to its end first (an initplan), so u's trigger events are queued before t's captures.
      await p.prov.query('WITH x AS (UPDATE public.u SET n = n + 1 RETURNING tid) UPDATE public.t SET v = v + 10 WHERE (SELECT count(*) FROM x) > 0');
      // t's own trigger writing u, whose trigger writes t again.
      await p.prov.query(`CREATE FUNCTION public.touch_u() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE public.u SET n = n + 1 WHERE id = NEW.id; RETURN NULL; END $$;
        CREATE TRIGGER a_touch_u AFTER UPDATE ON public.t FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE PROCEDURE public.touch_u();`);
      await p.prov.query('UPDATE public.t SET v = v + 1');
      await p.sync();
      await p.expectEqual('public', 't');
      await p.expectEqual('public', 'u');
    });
  });

  it('an AFTER INSERT trigger updates the inserted row; a key-changing UPDATE whose trigger moves the key again', async () => {
    await withPair('trig_ins', touchSchema + `
      CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF TG_OP = 'INSERT' THEN UPDATE public.t SET touched = touched + 1 WHERE id = NEW.id;
            ELSIF NEW.id >= 1000 THEN UPDATE public.t SET id = id + 1000 WHERE id = NEW.id; END IF; RETURN NULL; END $$;
      CREATE TRIGGER a_touch AFTER INSERT OR UPDATE ON public.t FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE PROCEDURE public.touch();`, ['t'], async (p) => {
      await p.prov.query('INSERT INTO public.t (id, v) SELECT g, g FROM generate_series(10, 14) g');
      await p.prov.query('UPDATE public.t SET id = id + 1000 WHERE id IN (1, 2, 10)');
      await p.sync();
      await p.expectEqual('public', 't');
      expect((await p.prov.query('SELECT array_agg(id ORDER BY id) AS ids FROM public.t WHERE id > 100')).rows[0].ids).toEqual([2001, 2002, 2010]);
    });
  });
});
