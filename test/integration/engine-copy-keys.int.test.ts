/**
 * A copy sets aside a large table's keys as well as its secondary indexes
 * (set-aside-indexes.ts) and gives every one of them back exactly: after the
 * copy — alone, split into ranges, or killed mid-load and retried — the
 * subscriber's indexes and constraints on the table are described by the
 * catalog exactly as before it. Keys it must not drop (a foreign key points
 * at it, replica identity, CLUSTER mark, a comment, an expression or partial
 * unique index or a comment) keep their very index (same oid), and the rows are equal.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';

const SCHEMA = `
  CREATE TABLE public.k_main (
    id bigint PRIMARY KEY,
    code text NOT NULL CONSTRAINT k_main_code_key UNIQUE DEFERRABLE INITIALLY DEFERRED,
    alt int NOT NULL,
    lower_name text,
    grp int,
    v int
  );
  -- INCLUDE from PostgreSQL 11 on (the indexes that matter are the subscriber's).
  DO $$ BEGIN
    IF current_setting('server_version_num')::int >= 110000 THEN EXECUTE 'CREATE UNIQUE INDEX k_main_alt_uq ON public.k_main (alt) INCLUDE (v)';
    ELSE EXECUTE 'CREATE UNIQUE INDEX k_main_alt_uq ON public.k_main (alt)'; END IF;
  END $$;
  CREATE UNIQUE INDEX k_main_lower_uq ON public.k_main (lower(lower_name));
  CREATE UNIQUE INDEX k_main_partial_uq ON public.k_main (grp) WHERE grp < 0;
  CREATE INDEX k_main_v ON public.k_main (v DESC NULLS LAST);
  CREATE INDEX k_main_commented ON public.k_main (grp);
  COMMENT ON INDEX public.k_main_commented IS 'kept as it is';
  CREATE TABLE public.k_ref (
    id bigint PRIMARY KEY,
    name text NOT NULL UNIQUE,
    n int
  );
  CREATE UNIQUE INDEX k_ref_n_ident ON public.k_ref (n) WHERE n IS NOT NULL;
  CREATE UNIQUE INDEX k_ref_n_full ON public.k_ref (id, n);
  ALTER TABLE public.k_ref REPLICA IDENTITY USING INDEX k_ref_name_key;
  CREATE TABLE public.k_child (id bigint PRIMARY KEY, ref bigint REFERENCES public.k_ref (id));
`;

const ROWS = `
  INSERT INTO public.k_main SELECT g, 'c' || g, g * 3, 'Name' || g, CASE WHEN g % 10 = 0 THEN -g ELSE g % 50 END, g % 1000 FROM generate_series(1, 30000) g;
  INSERT INTO public.k_ref SELECT g, 'r' || g, CASE WHEN g % 2 = 0 THEN g END FROM generate_series(1, 20000) g;
`;

/** Everything the catalog says about a table's indexes and constraints (names, definitions, flags, comments). */
async function describeKeys(c: pg.Client, table: string): Promise<string[]> {
  const { rows } = await c.query<{ d: string }>(
    `SELECT concat_ws(' | ', 'index', ic.relname, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, i.indisreplident, i.indisclustered, i.indimmediate,
                      obj_description(i.indexrelid, 'pg_class')) AS d
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1::regclass
     UNION ALL
     SELECT concat_ws(' | ', 'constraint', conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred, convalidated,
                      (SELECT relname FROM pg_class WHERE oid = conindid), obj_description(oid, 'pg_constraint'))
       FROM pg_constraint WHERE conrelid = $1::regclass
     UNION ALL
     SELECT concat_ws(' | ', 'column', attname, attnotnull) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
     ORDER BY 1`,
    [table],
  );
  return rows.map((r) => r.d);
}

async function indexOids(c: pg.Client, table: string): Promise<Map<string, number>> {
  const { rows } = await c.query<{ name: string; oid: number }>('SELECT ic.relname AS name, ic.oid::int AS oid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1::regclass', [table]);
  return new Map(rows.map((r) => [r.name, r.oid]));
}

const openers = (pair: Pair) => [() => pair.pdb.connect(), () => pair.sdb.connect()] as const;

describe('a copy sets aside the keys of a large table and gives them back exactly', () => {
  let pair: Pair;
  beforeAll(async () => {
    pair = await makePair('copykeys', {
      schema: SCHEMA,
      providerRows: `${ROWS} ANALYZE;`,
      tables: [
        { schema: 'public', table: 'k_main' },
        { schema: 'public', table: 'k_ref' },
      ],
      copy: true,
    });
  }, 120_000);
  afterAll(async () => pair?.close());

  for (const ranges of [1, 3]) {
    it(`${ranges === 1 ? 'in one stream' : 'split into ranges'}: the same indexes and constraints, the keys rebuilt, what must stay untouched`, { timeout: 120_000 }, async () => {
      const before = { main: await describeKeys(pair.sub, 'public.k_main'), ref: await describeKeys(pair.sub, 'public.k_ref') };
      const oids = { main: await indexOids(pair.sub, 'public.k_main'), ref: await indexOids(pair.sub, 'public.k_ref') };
      if (ranges === 3) await pair.sub.query("UPDATE pgconvey.subscriber_table SET state = 'pending'");
      const [p, s] = openers(pair);
      for (const table of ['k_main', 'k_ref']) {
        const r = await engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table, ranges, splitMinBytes: 0 });
        expect(r.ranges > 1).toBe(ranges > 1);
      }
      await pair.syncUntilOk();
      expect(await describeKeys(pair.sub, 'public.k_main')).toEqual(before.main);
      expect(await describeKeys(pair.sub, 'public.k_ref')).toEqual(before.ref);
      const after = { main: await indexOids(pair.sub, 'public.k_main'), ref: await indexOids(pair.sub, 'public.k_ref') };
      const rebuilt = (t: 'main' | 'ref') => [...after[t]].filter(([name, oid]) => oids[t].get(name) !== oid).map(([name]) => name).sort();
      // The primary key, the deferrable unique constraint, the unique indexes (with INCLUDE, on an expression, partial)
      // and the plain index were rebuilt; the commented index was left alone.
      expect(rebuilt('main')).toEqual(['k_main_alt_uq', 'k_main_code_key', 'k_main_lower_uq', 'k_main_partial_uq', 'k_main_pkey', 'k_main_v']);
      // k_ref: a foreign key points at its primary key, name's key is the replica identity; the bare unique indexes go.
      expect(rebuilt('ref')).toEqual(['k_ref_n_full', 'k_ref_n_ident']);
      expect((await pair.sub.query('SELECT count(*)::int AS n FROM pgconvey.subscriber_table WHERE copy_indexes IS NOT NULL')).rows[0].n).toBe(0);
      await pair.expectEqual('public', 'k_main');
      await pair.expectEqual('public', 'k_ref');
    });
  }

  it('a split copy that fails after dropping the keys leaves them on record, and the retry gives them back', { timeout: 120_000 }, async () => {
    const before = await describeKeys(pair.sub, 'public.k_main');
    await pair.sub.query("UPDATE pgconvey.subscriber_table SET state = 'pending' WHERE table_name = 'k_main'");
    // The subscriber refuses the rows (a CHECK holds under the replica role; NOT VALID: its rows are not checked now),
    // so every range's COPY fails after the drop of the keys has committed.
    await pair.sub.query('ALTER TABLE public.k_main ADD CONSTRAINT k_main_block CHECK (v < 0) NOT VALID');
    const [p, s] = openers(pair);
    await expect(engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table: 'k_main', ranges: 3, splitMinBytes: 0 })).rejects.toThrow(/k_main_block/);
    const row = (await pair.sub.query("SELECT state, copy_indexes FROM pgconvey.subscriber_table WHERE table_name = 'k_main'")).rows[0];
    expect(row.state).toBe('pending');
    expect(JSON.stringify(row.copy_indexes)).toContain('k_main_pkey');
    expect((await pair.sub.query("SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'k_main_pkey'")).rows[0].n).toBe(0);
    await pair.sub.query('ALTER TABLE public.k_main DROP CONSTRAINT k_main_block');
    await engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table: 'k_main', ranges: 3, splitMinBytes: 0 });
    await pair.syncUntilOk();
    expect(await describeKeys(pair.sub, 'public.k_main')).toEqual(before);
    await pair.expectEqual('public', 'k_main');
  });
});
