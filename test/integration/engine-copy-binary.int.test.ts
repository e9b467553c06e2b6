/**
 * Binary COPY in the initial copy (src/engine/copy-binary.ts): a table of
 * every type the copy streams in binary — edge values and random ones
 * (floats from random bit patterns, text of every code point up to U+07FF and
 * astral ones, bytea of every byte), domains, enums — copied across the test
 * majors in one stream and split into key ranges, checked row by row with
 * test/harness/exact.ts (floats by float8send bits), never pgconvey's
 * compare; tables with a column binary cannot carry exactly (composite,
 * array of an enum, xml, interval, a type that differs between the sides)
 * are copied as text, and equal too. Replay with PGCONVEY_SEED=<seed>.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import type pg from 'pg';
import { columnsOf, ident, makePair, PINNED_READ_SQL, type Pair } from '../harness/exact.js';
import { createRng, testSeed } from '../harness/random.js';

const SEED = testSeed();

const SCHEMA = `
  CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'ÿ quoted, "label"');
  CREATE DOMAIN public.pos AS int CHECK (VALUE > 0);
  CREATE DOMAIN public.short_text AS varchar(50);
  CREATE TYPE public.pair AS (a int, b text);
  CREATE TABLE public.bin (
    id int PRIMARY KEY,
    b bool, ba bytea, c "char", nm name, i2 int2, i4 int4, i8 int8, o oid, t text, vc varchar(30), bp char(7),
    f4 float4, f8 float8, n numeric, n2 numeric(20, 5), m money,
    d date, tm time, tmtz timetz, ts timestamp, ts3 timestamp(3), tstz timestamptz,
    u uuid, j json, jb jsonb, ip inet, net cidr, mac macaddr, mac8 macaddr8, bt bit(5), vb varbit,
    pt point, ls lseg, bx box, pa path, pg polygon, ln line, ci circle, lsn pg_lsn,
    r4 int4range, r8 int8range, rn numrange, rd daterange, rts tsrange, rtz tstzrange,
    a_i4 int4[], a_t text[], a_f8 float8[], a_n numeric[], a_ts timestamptz[], a_2d int8[][], a_b bytea[],
    dom public.pos, dom_t public.short_text, mo public.mood
  );
  CREATE TABLE public.bin_split (id bigint PRIMARY KEY, f8 float8, f4 float4, t text, n numeric);
  CREATE TABLE public.with_composite (id int PRIMARY KEY, p public.pair, f8 float8);
  CREATE TABLE public.with_enum_array (id int PRIMARY KEY, ms public.mood[]);
  CREATE TABLE public.with_xml (id int PRIMARY KEY, x xml);
  CREATE TABLE public.with_interval (id int PRIMARY KEY, iv interval);
  CREATE TABLE public.type_differs (id int PRIMARY KEY, v int4);
  CREATE TABLE public.bin_alter (id bigint PRIMARY KEY, v int4, pad text);
`;

const EDGES = `
  INSERT INTO public.bin VALUES
  (1, true, '\\x00ff7f80', 'x', 'a name', -32768, -2147483648, -9223372036854775808, 4294967295,
   E'tab\\t nl\\n bs\\\\ quote'' żółć 日本 🐘', 'varchar', 'ab',
   '-0', '-0', '-0.000', '1.5', '-92233720368547758.08',
   '4713-01-01 BC', '24:00:00', '23:59:59.999999-15:59', '294276-12-31 23:59:59.999999', '2024-02-29 12:34:56.789', '4713-11-24 00:00:00+00 BC',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1, "a": 2,  "b" : [ ]}', '{"z": {"y": [1, "2", null, 1.50]}}',
   '::ffff:1.2.3.4/128', '2001:db8::/32', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'10101', B'',
   '(1.5,-2)', '[(0,0),(1,1)]', '(3,3),(1,1)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))', '{1,-1,0}', '<(0,0),1.5>', 'FFFFFFFF/FFFFFFFF',
   'empty', '(,)', '[1.5,2.500)', '[2020-01-01,infinity)', '(-infinity,2020-01-01 00:00:00]', '[2020-01-01 00:00:00+00,)',
   '{1,NULL,-3}', '{"","a b","c,d","e\\"f",NULL,"NULL"}', '{NaN,Infinity,-Infinity,-0,5e-324}', '{NaN,1.000,-0}', '{infinity,-infinity,"2000-01-01 00:00:00+00"}',
   '{{1,2},{3,NULL}}', '{"\\\\x00",NULL,"\\\\x"}',
   1, 'short', 'ÿ quoted, "label"'),
  (2, false, '\\x', '', '', 32767, 2147483647, 9223372036854775807, 0,
   '', '', '',
   'NaN', 'NaN', 'NaN', '-0.00001', '92233720368547758.07',
   '5874897-12-31', '00:00', '00:00+15:59', 'infinity', '-infinity', 'infinity',
   '00000000-0000-0000-0000-000000000000', 'null', '[]', '0.0.0.0/0', '0.0.0.0/0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00', B'00000', B'1',
   '(0,0)', '[(0,0),(0,0)]', '(0,0),(0,0)', '((0,0))', '((0,0))', '{0,1,0}', '<(0,0),0>', '0/0',
   '[1,1]', '[-9223372036854775808,9223372036854775807)', '(,)', 'empty', '[-infinity,infinity]', 'empty',
   '{}', '{}', '{}', '{}', '{}', '{}', '{}',
   2147483647, '', 'sad'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'Infinity', 'Infinity', '1e-1000', NULL, NULL,
   'infinity', NULL, NULL, '-infinity', NULL, '-infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, NULL, (SELECT string_agg(decode(lpad(to_hex(g), 2, '0'), 'hex'), ''::bytea) FROM generate_series(0, 255) g), NULL, NULL, NULL, NULL, NULL, NULL,
   (SELECT string_agg(chr(g), '') FROM generate_series(1, 2047) g) || chr(65535) || chr(65536) || chr(1114111), NULL, 'abcdefg',
   '-Infinity', '-Infinity', '123456789012345678901234567890.123456789012345678901234567890', '0', '0',
   '2000-01-01', '12:00:00.000001', '12:00:00+00', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999', '2000-01-01 00:00:00.000001+00',
   NULL, ('"' || repeat('y', 300000) || '"')::json, ('{"big": "' || repeat('z', 300000) || '"}')::jsonb, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, ARRAY[(SELECT string_agg(chr(g), '') FROM generate_series(1, 2047) g)], NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL);
  INSERT INTO public.with_composite VALUES (1, ROW(1, 'a'), 0.1), (2, NULL, '-0'), (3, ROW(NULL, E'x\\ty'), 'NaN');
  INSERT INTO public.with_enum_array VALUES (1, '{sad,happy}'), (2, NULL), (3, '{}');
  INSERT INTO public.with_xml VALUES (1, '<a b="c">d &amp; e</a>'), (2, NULL);
  INSERT INTO public.with_interval VALUES (1, '1 year 2 mons -3 days 04:05:06.789'), (2, '-178000000 years'), (3, NULL);
  INSERT INTO public.type_differs VALUES (1, 2147483647), (2, -1), (3, NULL);
`;

/** A random float8 from random bits (NaN patterns skipped: text normalizes them anyway), as its shortest exact text. */
function randomFloat(rng: { int(a: number, b: number): number }, single: boolean): string {
  for (;;) {
    const b = Buffer.alloc(8);
    for (let i = 0; i < 8; i++) b[i] = rng.int(0, 255);
    const x = single ? b.readFloatBE(0) : b.readDoubleBE(0);
    if (Number.isNaN(x)) continue;
    return Object.is(x, -0) ? '-0' : x === Infinity ? 'Infinity' : x === -Infinity ? '-Infinity' : String(x);
  }
}

describe(`engine: binary initial copy (seed ${SEED})`, () => {
  let pair: Pair;
  const rng = createRng(SEED);

  beforeAll(async () => {
    // Random rows: floats by bits, numerics with dscale, text of random code points.
    const rows: string[] = [];
    const randomText = () => Array.from({ length: rng.int(0, 40) }, () => String.fromCodePoint(rng.chance(0.1) ? rng.int(0x10000, 0x10ffff) : rng.int(1, 0xd7ff))).join('');
    const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
    for (let i = 0; i < 400; i++) {
      const n = `${rng.chance(0.5) ? '-' : ''}${rng.int(0, 10 ** 6)}.${String(rng.int(0, 10 ** 6)).padStart(rng.int(1, 9), '0')}`;
      rows.push(`(${100_000 + i}, ${lit(randomFloat(rng, false))}, ${lit(randomFloat(rng, true))}, ${lit(randomText())}, ${lit(n)})`);
    }
    pair = await makePair('copybin', {
      schema: SCHEMA,
      providerRows: `${EDGES}
        INSERT INTO public.bin (id, f8, f4, t, n, a_f8) SELECT 1000 + g, g * 1.1e-300, g * 1.1e-40, repeat(chr(g + 200), g), g / 3.0, ARRAY[g * 0.1, -g * 1e300]::float8[] FROM generate_series(1, 200) g;
        INSERT INTO public.bin_split SELECT g, g * 0.1, g * 0.7, md5(g::text), g / 7.0 FROM generate_series(1, 30000) g;
        INSERT INTO public.bin_split VALUES ${rows.join(', ')};
        INSERT INTO public.bin_alter SELECT g, g, repeat('p', 100) FROM generate_series(1, 200000) g;`,
      tables: ['bin', 'bin_split', 'bin_alter', 'with_composite', 'with_enum_array', 'with_xml', 'with_interval', 'type_differs'].map((table) => ({ schema: 'public', table })),
      copy: true,
    });
    // The subscriber's column of another type: binary would misread it, text converts it.
    await pair.sub.query('ALTER TABLE public.type_differs ALTER COLUMN v TYPE int8');
  }, 120_000);
  afterAll(async () => {
    await pair?.close();
  });

  const copy = (table: string, options: Partial<engine.CopyOptions> = {}) =>
    engine.copyTable(
      () => pair.pdb.connect(),
      () => pair.sdb.connect(),
      { queue: 'q', consumer: 's', schema: 'public', table, ...options },
    );

  /** Ticks and applies until the table is merged (`ok`); the others may still wait for their copy. */
  const merged = async (table: string) => {
    for (let round = 0; round < 10; round++) {
      await pair.sync();
      const st = await pair.sub.query<{ state: string }>("SELECT state FROM pgconvey.subscriber_table WHERE table_name = $1", [table]);
      if (st.rows[0]?.state === 'ok') return;
    }
    throw new Error(`${table} not ok after 10 ticks`);
  };

  /**
   * Every column of every row, by id, on both sides: floats (and float arrays) by their float8send bits — their
   * text differs between majors (PostgreSQL 10's 17 digits) — everything else as text. Returns the differences.
   */
  const columnDiffs = async (table: string) => {
    const read = async (c: pg.Client) => {
      await c.query(PINNED_READ_SQL);
      const cols = await columnsOf(c, 'public', table);
      const expr = (name: string, base: string) =>
        base === 'float4' || base === 'float8'
          ? `pg_catalog.encode(pg_catalog.float8send(t.${ident(name)}::float8), 'hex')`
          : base === '_float8'
            ? `(SELECT pg_catalog.array_agg(pg_catalog.encode(pg_catalog.float8send(x), 'hex') ORDER BY i) FROM pg_catalog.unnest(t.${ident(name)}) WITH ORDINALITY AS u(x, i))::text`
            : `t.${ident(name)}::text`;
      const { rows } = await c.query<Record<string, string | null>>(`SELECT ${cols.map((x) => `${expr(x.name, x.baseType)} AS ${ident(x.name)}`).join(', ')} FROM public.${ident(table)} t`);
      return new Map(rows.map((r) => [r.id!, r]));
    };
    const [a, b] = await Promise.all([read(pair.prov), read(pair.sub)]);
    const diffs: string[] = [];
    for (const [id, row] of a) {
      const other = b.get(id);
      if (!other) diffs.push(`row ${id} missing`);
      else for (const [k, v] of Object.entries(row)) if (other[k] !== v) diffs.push(`row ${id} ${k}: ${String(v).slice(0, 120)} ≠ ${String(other[k]).slice(0, 120)}`);
    }
    for (const id of b.keys()) if (!a.has(id)) diffs.push(`row ${id} extra`);
    return diffs.slice(0, 20);
  };

  it('copies every binary-safe type in binary, exactly (one stream)', async () => {
    const r = await copy('bin');
    expect(r.format).toBe('binary');
    expect(r.ranges).toBe(1);
    expect(r.rows).toBe(204);
    await merged('bin');
    expect(await columnDiffs('bin')).toEqual([]);
  });

  it('copies a split table in binary, every range exactly', async () => {
    const r = await copy('bin_split', { splitMinBytes: 1, ranges: 3 });
    expect(r.format).toBe('binary');
    expect(r.ranges).toBeGreaterThan(1);
    expect(r.rows).toBe(30400);
    await merged('bin_split');
    expect(await columnDiffs('bin_split')).toEqual([]);
    await pair.expectEqual('public', 'bin_split');
  });

  it('copies as text a table with a column binary cannot carry exactly, and equal', async () => {
    for (const table of ['with_composite', 'with_enum_array', 'with_xml', 'with_interval', 'type_differs']) {
      const r = await copy(table);
      expect({ table, format: r.format }).toEqual({ table, format: 'text' });
    }
    for (const table of ['with_composite', 'with_enum_array', 'with_xml', 'with_interval', 'type_differs']) await merged(table);
    for (const table of ['with_composite', 'with_enum_array', 'with_xml', 'with_interval']) await pair.expectEqual('public', table);
    const v = await pair.sub.query<{ id: number; v: string | null }>('SELECT id, v::text AS v FROM public.type_differs ORDER BY id');
    expect(v.rows).toEqual([
      { id: 1, v: '2147483647' },
      { id: 2, v: '-1' },
      { id: 3, v: null },
    ]);
  });

  it('a split binary copy whose subscriber table changes type (int4 → float4) between ranges fails, and the next copy (text) is exact', { timeout: 120_000 }, async () => {
    const copying = copy('bin_alter', { splitMinBytes: 1, ranges: 2, progressEveryMs: 10 });
    copying.catch(() => undefined);
    for (let i = 0; i < 2000; i++) {
      const r = await pair.sub.query("SELECT rows_copied FROM pgconvey.subscriber_table WHERE table_name = 'bin_alter' AND state = 'copying'");
      if (Number(r.rows[0]?.rows_copied ?? 0) > 0) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    // Waits for the ranges loading now to commit, then goes before the next ones (they queue behind it).
    const alter = await pair.sdb.connect();
    await alter.query("SET lock_timeout = '60s'");
    // float4: as wide as int4, so without the ranges' check binary would load int4 bits as floats without an error.
    await alter.query('ALTER TABLE public.bin_alter ALTER COLUMN v TYPE float4');
    await alter.end();
    await expect(copying).rejects.toThrow(/changed during its copy/);
    const row = (await pair.sub.query("SELECT state FROM pgconvey.subscriber_table WHERE table_name = 'bin_alter'")).rows[0];
    expect(row.state).toBe('pending');
    await pair.sub.query("UPDATE pgconvey.subscriber_table SET last_error_at = NULL WHERE table_name = 'bin_alter'");
    const r = await copy('bin_alter', { splitMinBytes: 1, ranges: 2 });
    expect(r.format).toBe('text');
    await merged('bin_alter');
    const [a, b] = await Promise.all(
      [pair.prov, pair.sub].map(async (c) => (await c.query<{ n: string; h: string }>("SELECT count(*)::text AS n, md5(string_agg(id || ':' || v || ':' || pad, ',' ORDER BY id)) AS h FROM public.bin_alter")).rows[0]),
    );
    expect(b).toEqual(a);
  });

  it('copies in text when asked (binary: false), and equal', async () => {
    await pair.sub.query("UPDATE pgconvey.subscriber_table SET state = 'pending' WHERE table_name = 'bin'");
    const r = await copy('bin', { binary: false });
    expect(r.format).toBe('text');
    await merged('bin');
    expect(await columnDiffs('bin')).toEqual([]);
  });
});
