/**
 * Regression tests of issue 10 ("exact by construction"), constraints and
 * table structure: findings 2 (GENERATED ALWAYS identity), 3 (a value swap
 * under a partial, an expression unique index, or an EXCLUDE constraint),
 * 7 (a DEFERRABLE primary key is refused), 8 (inheritance: ONLY on the
 * provider stays ONLY on the subscriber; the copy takes the parent's own
 * rows), 10 (a TRUNCATE group of FK-tied tables at a chunk boundary) and
 * 11 (key columns changed while DELETEs of the old key are queued). Each case
 * has its own provider/subscriber pair; writes land in ONE batch, the worker
 * is stepped until idle, and both sides are compared row by row with the
 * harness's own SQL (test/harness/exact.ts).
 */
import { describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair, type PairOptions } from '../harness/exact.js';

async function withPair(prefix: string, o: PairOptions, body: (p: Pair) => Promise<void>): Promise<void> {
  const pair = await makePair(prefix, o);
  try {
    await body(pair);
  } finally {
    await pair.close();
  }
}

const count = async (p: Pair, side: 'prov' | 'sub', sql: string): Promise<number> => Number((await p[side].query(sql)).rows[0].n);

describe('finding 2: GENERATED ALWAYS AS IDENTITY', () => {
  it('an identity primary key: inserts, updates and deletes after the initial copy replicate', async () => {
    await withPair(
      'x2a',
      {
        schema: 'CREATE TABLE public.ident_pk (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);',
        providerRows: "INSERT INTO public.ident_pk (v) SELECT 'seed ' || g FROM generate_series(1, 5) g;",
        tables: [{ schema: 'public', table: 'ident_pk' }],
        copy: true,
      },
      async (p) => {
        await p.copyAll();
        await p.expectEqual('public', 'ident_pk');
        const w = await p.session();
        await w.query("INSERT INTO public.ident_pk (v) VALUES ('new 1'), ('new 2')");
        await w.query("UPDATE public.ident_pk SET v = 'updated' WHERE id IN (2, 6)");
        await w.query('DELETE FROM public.ident_pk WHERE id = 3');
        await w.query("INSERT INTO public.ident_pk OVERRIDING SYSTEM VALUE VALUES (100, 'explicit')");
        await p.sync();
        await p.expectEqual('public', 'ident_pk');
      },
    );
  });

  it('a non-key ALWAYS identity column: inserts, updates (also SET col = DEFAULT) and deletes after the copy replicate', async () => {
    await withPair(
      'x2b',
      {
        schema: 'CREATE TABLE public.ident_col (k int PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY, v text);',
        providerRows: "INSERT INTO public.ident_col (k, v) SELECT g, 'seed' FROM generate_series(1, 5) g;",
        tables: [{ schema: 'public', table: 'ident_col' }],
        copy: true,
      },
      async (p) => {
        await p.copyAll();
        await p.expectEqual('public', 'ident_col');
        const w = await p.session();
        await w.query("INSERT INTO public.ident_col (k, v) VALUES (6, 'new')");
        await w.query('UPDATE public.ident_col SET n = DEFAULT WHERE k = 1');
        await w.query("UPDATE public.ident_col SET v = 'updated' WHERE k = 2");
        await w.query('UPDATE public.ident_col SET k = 20 WHERE k = 4');
        await w.query('DELETE FROM public.ident_col WHERE k = 3');
        await p.sync();
        await p.expectEqual('public', 'ident_col');
        expect(await count(p, 'sub', 'SELECT n AS n FROM public.ident_col WHERE k = 1')).toBe(await count(p, 'prov', 'SELECT n AS n FROM public.ident_col WHERE k = 1'));
      },
    );
  });
});

describe('finding 3: a value swap inside one transaction under other unique constraints', () => {
  const swap = (table: string, column: string, a: string, b: string, tmp: string) => [
    'BEGIN',
    `UPDATE public.${table} SET ${column} = ${tmp} WHERE id = 1`,
    `UPDATE public.${table} SET ${column} = ${a} WHERE id = 2`,
    `UPDATE public.${table} SET ${column} = ${b} WHERE id = 1`,
    'COMMIT',
  ];

  it('(a) a partial unique index WHERE NOT deleted', async () => {
    await withPair(
      'x3a',
      {
        schema: `CREATE TABLE public.users_p (id int PRIMARY KEY, email text NOT NULL, deleted boolean NOT NULL DEFAULT false);
                 CREATE UNIQUE INDEX users_p_live_email ON public.users_p (email) WHERE NOT deleted;
                 INSERT INTO public.users_p VALUES (1, 'a@x', false), (2, 'b@x', false), (3, 'a@x', true);`,
        tables: [{ schema: 'public', table: 'users_p' }],
      },
      async (p) => {
        const w = await p.session();
        for (const sql of swap('users_p', 'email', "'a@x'", "'b@x'", "'tmp'")) await w.query(sql);
        await p.sync();
        await p.expectEqual('public', 'users_p');
      },
    );
  });

  it('(b) a unique expression index on lower(email)', async () => {
    await withPair(
      'x3b',
      {
        schema: `CREATE TABLE public.users_e (id int PRIMARY KEY, email text NOT NULL);
                 CREATE UNIQUE INDEX users_e_lower ON public.users_e (lower(email));
                 INSERT INTO public.users_e VALUES (1, 'A@x'), (2, 'b@X');`,
        tables: [{ schema: 'public', table: 'users_e' }],
      },
      async (p) => {
        const w = await p.session();
        for (const sql of swap('users_e', 'email', "'a@X'", "'B@x'", "'tmp'")) await w.query(sql);
        await p.sync();
        await p.expectEqual('public', 'users_e');
      },
    );
  });

  it('(c) an EXCLUDE USING btree (x WITH =) constraint', async () => {
    await withPair(
      'x3c',
      {
        schema: `CREATE TABLE public.slots (id int PRIMARY KEY, x int NOT NULL, EXCLUDE USING btree (x WITH =));
                 INSERT INTO public.slots VALUES (1, 10), (2, 20), (3, 30);`,
        tables: [{ schema: 'public', table: 'slots' }],
      },
      async (p) => {
        const w = await p.session();
        for (const sql of swap('slots', 'x', '10', '20', '-1')) await w.query(sql);
        await p.sync();
        await p.expectEqual('public', 'slots');
      },
    );
  });
});

describe('finding 7: a DEFERRABLE primary key is refused', () => {
  it('addTable refuses DEFERRABLE INITIALLY IMMEDIATE and INITIALLY DEFERRED keys, naming "deferrable"', async () => {
    await withPair(
      'x7',
      {
        schema: `CREATE TABLE public.def_imm (id int PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE, v int);
                 CREATE TABLE public.def_def (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v int);
                 CREATE TABLE public.def_uniq (id int PRIMARY KEY DEFERRABLE, code int NOT NULL, UNIQUE (code) DEFERRABLE);`,
        tables: [],
      },
      async (p) => {
        await expect(engine.addTable(p.prov, 'q', 'public', 'def_imm')).rejects.toThrow(/deferrable/i);
        await expect(engine.addTable(p.prov, 'q', 'public', 'def_def')).rejects.toThrow(/deferrable/i);
        await expect(engine.addTable(p.prov, 'q', 'public', 'def_def', ['id'])).rejects.toThrow(/deferrable/i);
        await expect(engine.addTable(p.prov, 'q', 'public', 'def_uniq', ['code'])).rejects.toThrow(/deferrable/i);
        expect(await count(p, 'prov', 'SELECT count(*) AS n FROM pgconvey.captured_table')).toBe(0);
      },
    );
  });
});

describe('finding 8: inheritance', () => {
  const schema = `
    CREATE TABLE public.parent (id int PRIMARY KEY, v text);
    CREATE TABLE public.child (extra text) INHERITS (public.parent);
    ALTER TABLE public.child ADD PRIMARY KEY (id);`;
  const rows = `
    INSERT INTO public.parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
    INSERT INTO public.child VALUES (1, 'c1', 'e'), (2, 'c2', 'e'), (3, 'c3', 'e'), (4, 'c4', 'e');`;
  const tables = [
    { schema: 'public', table: 'parent' },
    { schema: 'public', table: 'child' },
  ];
  const expectBoth = async (p: Pair) => {
    await p.expectEqual('public', 'parent');
    await p.expectEqual('public', 'child');
    expect(await count(p, 'sub', 'SELECT count(*) AS n FROM public.parent')).toBe(await count(p, 'prov', 'SELECT count(*) AS n FROM public.parent'));
  };

  it("the initial copy of the parent copies only the parent's own rows", async () => {
    await withPair('x8a', { schema, providerRows: rows, tables, copy: true }, async (p) => {
      await p.copyAll();
      await expectBoth(p);
    });
  });

  it("DELETE FROM ONLY parent: the child's rows stay on the subscriber", async () => {
    await withPair('x8b', { schema: schema + rows, tables }, async (p) => {
      const w = await p.session();
      await w.query('DELETE FROM ONLY public.parent WHERE id = 1');
      await w.query("INSERT INTO public.child VALUES (5, 'c5', 'e')");
      await p.sync();
      await expectBoth(p);
    });
  });

  it("UPDATE ONLY parent: the child's rows stay unchanged on the subscriber", async () => {
    await withPair('x8c', { schema: schema + rows, tables }, async (p) => {
      const w = await p.session();
      await w.query("UPDATE ONLY public.parent SET v = 'p2 new' WHERE id = 2");
      await w.query("UPDATE ONLY public.parent SET id = 30 WHERE id = 3");
      await p.sync();
      await expectBoth(p);
    });
  });

  it("TRUNCATE ONLY parent: the child's rows stay on the subscriber", async () => {
    await withPair('x8d', { schema: schema + rows, tables }, async (p) => {
      const w = await p.session();
      await w.query('TRUNCATE ONLY public.parent');
      await w.query("INSERT INTO public.parent VALUES (7, 'after')");
      await p.sync();
      await expectBoth(p);
    });
  });
});

describe('finding 10: TRUNCATE a, b (b references a) around the reader\'s first chunk of 500 rows', () => {
  for (const before of [498, 499, 500, 999]) {
    it(`${before} row events, then TRUNCATE a, b, in one batch: applies, no stall`, async () => {
      await withPair(
        `x10_${before}`,
        {
          schema: `CREATE TABLE public.filler (id int PRIMARY KEY, v int);
                   CREATE TABLE public.ta (id int PRIMARY KEY, v text);
                   CREATE TABLE public.tb (id int PRIMARY KEY, a_id int REFERENCES public.ta);
                   INSERT INTO public.ta SELECT g, 'a' FROM generate_series(1, 3) g;
                   INSERT INTO public.tb VALUES (1, 1), (2, 2);`,
          tables: ['filler', 'ta', 'tb'].map((table) => ({ schema: 'public', table })),
        },
        async (p) => {
          const w = await p.session();
          await w.query(`INSERT INTO public.filler SELECT g, g FROM generate_series(1, ${before}) g`);
          await w.query('TRUNCATE public.ta, public.tb');
          await w.query("INSERT INTO public.ta VALUES (10, 'after'); INSERT INTO public.tb VALUES (10, 10)");
          // Exactly `before` row events precede the TRUNCATE group in the batch.
          await p.sync();
          for (const t of ['filler', 'ta', 'tb']) await p.expectEqual('public', t);
        },
      );
    });
  }
});

describe('finding 11: key columns changed while DELETE events of the old key are still queued', () => {
  it('re-captured with other key columns (an entries key: change): rows deleted under the old key are deleted', async () => {
    await withPair(
      'x11a',
      {
        schema: `CREATE TABLE public.kc1 (a int PRIMARY KEY, b int NOT NULL UNIQUE, v text);
                 INSERT INTO public.kc1 SELECT g, 100 + g, 'v' || g FROM generate_series(1, 6) g;`,
        tables: [{ schema: 'public', table: 'kc1' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query('DELETE FROM public.kc1 WHERE a = 1');
        await w.query("UPDATE public.kc1 SET v = 'old key update' WHERE a = 2");
        await w.query('UPDATE public.kc1 SET a = 30 WHERE a = 3');
        await engine.addTable(p.prov, 'q', 'public', 'kc1', ['b']);
        await w.query('DELETE FROM public.kc1 WHERE a = 4');
        await w.query("UPDATE public.kc1 SET v = 'new key update' WHERE a = 5");
        await p.sync();
        await p.expectEqual('public', 'kc1');
      },
    );
  });

  it('a new primary key (a) → (a, b), re-captured: rows deleted under the old key are deleted', async () => {
    await withPair(
      'x11b',
      {
        schema: `CREATE TABLE public.kc2 (a int NOT NULL, b int NOT NULL, v text, CONSTRAINT kc2_pkey PRIMARY KEY (a));
                 INSERT INTO public.kc2 SELECT g, g % 2, 'v' || g FROM generate_series(1, 6) g;`,
        tables: [{ schema: 'public', table: 'kc2' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query('DELETE FROM public.kc2 WHERE a = 1');
        await w.query('UPDATE public.kc2 SET a = 30 WHERE a = 3');
        const rekey = 'ALTER TABLE public.kc2 DROP CONSTRAINT kc2_pkey, ADD CONSTRAINT kc2_pkey PRIMARY KEY (a, b)';
        await p.sub.query(rekey);
        await w.query(rekey);
        await engine.addTable(p.prov, 'q', 'public', 'kc2');
        await w.query('DELETE FROM public.kc2 WHERE a = 2');
        await w.query('UPDATE public.kc2 SET b = 7 WHERE a = 4');
        await p.sync();
        await p.expectEqual('public', 'kc2');
      },
    );
  });
});
