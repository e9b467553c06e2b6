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

// The same checks on a partitioned table: its rows are captured on its partitions (one capture function
// for the tree), each partition checked on its own. pt_c is made on its own (columns in another order,
// one dropped) and attached; pt_late is attached after the table is captured (from PG 11 its row trigger
// is the parent's clone, and its capture is not made again before the writes; PG 10 has no row triggers
// on partitioned tables: it is captured again, as plan would).
const partSchema = `CREATE TABLE public.pt (id int NOT NULL, r int, y text) PARTITION BY RANGE (id);
  CREATE TABLE public.pt_a PARTITION OF public.pt (PRIMARY KEY (id)) FOR VALUES FROM (0) TO (100);
  CREATE TABLE public.pt_b PARTITION OF public.pt FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
  CREATE TABLE public.pt_b1 PARTITION OF public.pt_b (PRIMARY KEY (id)) FOR VALUES FROM (100) TO (200);
  CREATE TABLE public.pt_c (gone int, y text, r int, id int NOT NULL PRIMARY KEY);
  ALTER TABLE public.pt_c DROP COLUMN gone;
  ALTER TABLE public.pt ATTACH PARTITION public.pt_c FOR VALUES FROM (200) TO (300);
  INSERT INTO public.pt SELECT g, g, 'y' || g FROM generate_series(1, 3) g;
  INSERT INTO public.pt SELECT g, g, 'y' || g FROM generate_series(101, 103) g;
  INSERT INTO public.pt SELECT g, g, 'y' || g FROM generate_series(201, 203) g;`;
const lateSchema = `CREATE TABLE public.pt_late (y text, id int NOT NULL PRIMARY KEY, r int);
  ALTER TABLE public.pt ATTACH PARTITION public.pt_late FOR VALUES FROM (300) TO (400);`;

/** The parent's rows on one side, every column by name (the partitions' column orders differ). */
async function ptRows(c: import('pg').Client, cols: string): Promise<unknown[]> {
  return (await c.query(`SELECT ${cols} FROM public.pt ORDER BY id`)).rows;
}

/** Makes the pair, attaches pt_late on both sides (captured again on PG 10 only), then runs body. */
async function withPartitioned(prefix: string, subscriberSql: string, body: (p: Pair) => Promise<void>): Promise<void> {
  await withPair(prefix, { schema: partSchema, tables: [{ schema: 'public', table: 'pt', key: ['id'] }] }, async (p) => {
    await p.prov.query(lateSchema);
    await p.sub.query(lateSchema);
    await p.sub.query(subscriberSql);
    if ((await p.prov.query("SELECT current_setting('server_version_num')::int AS v")).rows[0].v < 110000) {
      const { addTable } = await import('../../src/engine/index.js');
      await addTable(p.prov, 'q', 'public', 'pt', ['id']);
    }
    await p.prov.query("INSERT INTO public.pt (id, r, y) SELECT g, g, 'y' || g FROM generate_series(301, 303) g");
    await p.sync();
    await body(p);
  });
}

describe('capture shape check, partitioned table', () => {
  it('ALTER TABLE inside the writing transaction, before and after its writes (and rolled back): every row of every partition travels under its own columns', async () => {
    await withPartitioned('cshape_ptx', 'ALTER TABLE public.pt ADD COLUMN w int', async (p) => {
      const w = await p.session();
      const before = (await eventColumns(p)).length;
      await w.query('UPDATE public.pt SET r = r + 100 WHERE id IN (1, 101, 201, 301)'); // each partition's check planned
      await w.query('BEGIN');
      await w.query('UPDATE public.pt SET r = r + 1 WHERE id IN (2, 102, 202, 302)');
      await w.query('ALTER TABLE public.pt ADD COLUMN w int');
      await w.query('UPDATE public.pt SET w = id * 10, r = r + 1 WHERE id IN (2, 102, 202, 302)');
      await w.query("INSERT INTO public.pt (id, r, y, w) VALUES (50, 1, 'new', 1), (150, 1, 'new', 1), (250, 1, 'new', 1), (350, 1, 'new', 1)");
      await w.query('COMMIT');
      await w.query('BEGIN');
      await w.query("UPDATE public.pt SET y = 'before drop' WHERE id IN (3, 103, 203, 303)");
      await w.query('ALTER TABLE public.pt DROP COLUMN y');
      await w.query('UPDATE public.pt SET r = r + 1, w = 44 WHERE id IN (3, 103, 203, 303)');
      await w.query('INSERT INTO public.pt (id, r, w) VALUES (51, 1, 1), (151, 1, 1), (251, 1, 1), (351, 1, 1)');
      await w.query('DELETE FROM public.pt WHERE id IN (1, 101, 201, 301)');
      await w.query('COMMIT');
      await w.query('BEGIN');
      await w.query('ALTER TABLE public.pt ADD COLUMN v text');
      await w.query("INSERT INTO public.pt (id, r, w, v) VALUES (52, 1, 1, 'gone'), (352, 1, 1, 'gone')");
      await w.query('ROLLBACK');
      await w.query('UPDATE public.pt SET r = r + 1 WHERE id IN (50, 150, 250, 350)');

      const events = (await eventColumns(p)).slice(before);
      for (const e of events) if (e.data !== null) expect(e.data.slice(1, -1).split(',').length, `${e.data} under ${JSON.stringify(e.columns)}`).toBe(e.columns!.length);
      // Every row's columns by name, in its partition's order: compare the sets (orders differ by partition).
      const sets = events.map((e) => [...e.columns!].sort().join(','));
      expect(sets, JSON.stringify(events)).toEqual([
        ...Array(8).fill('id,r,y'),
        ...Array(12).fill('id,r,w,y'), // after the ADD COLUMN of the same transaction, and up to the DROP of the next
        ...Array(16).fill('id,r,w'), // after it, the deletes (their keys only) and the writes after the rollback
      ]);
      await p.sync();
      expect(await ptRows(p.sub, 'id, r, w')).toEqual(await ptRows(p.prov, 'id, r, w'));
    });
  });

  it('a REPEATABLE READ writer whose snapshot predates a concurrent ALTER TABLE: rows of every partition travel under the columns they carry', async () => {
    await withPartitioned('cshape_prr', 'ALTER TABLE public.pt ADD COLUMN z text', async (p) => {
      const w = await p.session();
      const ddl = await p.session();
      const before = (await eventColumns(p)).length;
      await w.query('UPDATE public.pt SET r = r + 100 WHERE id IN (1, 101, 201, 301)');
      await w.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await w.query('SELECT 1');
      await ddl.query('ALTER TABLE public.pt DROP COLUMN y, ADD COLUMN z text');
      await w.query("UPDATE public.pt SET r = r + 1, z = 'rr' || id WHERE id IN (2, 102, 202, 302)");
      await w.query("INSERT INTO public.pt (id, r, z) VALUES (60, 1, 'rr new'), (160, 1, 'rr new'), (260, 1, 'rr new'), (360, 1, 'rr new')");
      await w.query('COMMIT');
      await w.query("UPDATE public.pt SET z = 'after' WHERE id IN (3, 103, 203, 303)");

      const events = (await eventColumns(p)).slice(before);
      for (const e of events) if (e.data !== null) expect(e.data.slice(1, -1).split(',').length, `${e.data} under ${JSON.stringify(e.columns)}`).toBe(e.columns!.length);
      expect(events.map((e) => [...e.columns!].sort().join(','))).toEqual([...Array(4).fill('id,r,y'), ...Array(12).fill('id,r,z')]);
      await p.sync();
      expect(await ptRows(p.sub, 'id, r, z')).toEqual(await ptRows(p.prov, 'id, r, z'));
      expect((await p.sub.query("SELECT count(*)::int AS n FROM public.pt WHERE y LIKE 'rr%'")).rows[0].n).toBe(0);
    });
  });
});

describe('capture shape check, many partitions', () => {
  it('37 leaves (every third made on its own, columns reordered, and attached): each row is told apart by its leaf, through the binary search on TG_RELID, before and after an ALTER TABLE of the same transaction', async () => {
    const n = 37;
    const leaves = Array.from({ length: n }, (_, i) =>
      i % 3 === 0
        ? `CREATE TABLE public.m_${i} (v text, id int NOT NULL PRIMARY KEY); ALTER TABLE public.m ATTACH PARTITION public.m_${i} FOR VALUES FROM (${i * 10}) TO (${i * 10 + 10});`
        : `CREATE TABLE public.m_${i} PARTITION OF public.m (PRIMARY KEY (id)) FOR VALUES FROM (${i * 10}) TO (${i * 10 + 10});`,
    ).join('\n');
    const mSchema = `CREATE TABLE public.m (id int NOT NULL, v text) PARTITION BY RANGE (id);\n${leaves}`;
    await withPair('cshape_many', { schema: mSchema, tables: [{ schema: 'public', table: 'm', key: ['id'] }] }, async (p) => {
      await p.sub.query('ALTER TABLE public.m ADD COLUMN w int');
      const w = await p.session();
      await w.query(`INSERT INTO public.m (id, v) SELECT i * 10, 'a' || i FROM generate_series(0, ${n - 1}) i`);
      await w.query('BEGIN');
      await w.query(`UPDATE public.m SET v = v || 'b'`);
      await w.query('ALTER TABLE public.m ADD COLUMN w int');
      await w.query(`UPDATE public.m SET w = id`);
      await w.query(`INSERT INTO public.m (id, v, w) SELECT i * 10 + 1, 'c' || i, i FROM generate_series(0, ${n - 1}) i`);
      await w.query('COMMIT');

      const events = await eventColumns(p);
      for (const e of events) if (e.data !== null) expect(e.data.slice(1, -1).split(',').length, `${e.data} under ${JSON.stringify(e.columns)}`).toBe(e.columns!.length);
      // The id field of each row text, read by its own shape's columns, names a row of the leaf it came from.
      for (const e of events) {
        const fields = e.data!.slice(1, -1).split(',');
        const id = Number(fields[e.columns!.indexOf('id')]);
        expect(Number.isInteger(id) && id >= 0 && id < n * 10, `${e.data} under ${JSON.stringify(e.columns)}`).toBe(true);
        expect(e.columns!.slice().sort().join(','), e.data!).toBe(events.indexOf(e) < 2 * n ? 'id,v' : 'id,v,w');
        expect(e.columns![0], e.data!).toBe(Math.floor(id / 10) % 3 === 0 ? 'v' : 'id');
      }
      await p.sync();
      expect(await p.sub.query('SELECT id, v, w FROM public.m ORDER BY id').then((r) => r.rows)).toEqual(await p.prov.query('SELECT id, v, w FROM public.m ORDER BY id').then((r) => r.rows));
    });
  });
});
