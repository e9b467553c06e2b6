/**
 * Regression tests of issue 10 ("exact by construction"), values and keys:
 * findings 1 (keys whose JSON text depends on the writer's TimeZone,
 * bytea_output, DateStyle), 4 (JSON null vs SQL NULL, json verbatim),
 * 5 (extension types, and user types with a cast to json that must never be
 * called) and 6 (array bounds). Each case gets its own provider/subscriber
 * pair, is written from several sessions with differing settings, lands in
 * ONE batch (one forced tick), is applied by stepping the worker until idle,
 * and is compared row by row with the harness's own SQL (test/harness/exact.ts).
 * First, the comparison itself is checked on equal and on changed data.
 */
import { describe, expect, it } from 'vitest';
import { compareTable, makePair, type Pair, type PairOptions } from '../harness/exact.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

async function withPair(prefix: string, o: PairOptions, body: (p: Pair) => Promise<void>): Promise<void> {
  const pair = await makePair(prefix, o);
  try {
    await body(pair);
  } finally {
    await pair.close();
  }
}

const UTC = "SET TimeZone = 'UTC'";
const BERLIN = "SET TimeZone = 'Europe/Berlin'";
const ST_JOHNS = "SET TimeZone = 'America/St_Johns'";

describe('the harness comparison itself', () => {
  it('finds equal data equal, and a changed value, JSON null vs SQL NULL, -0 vs 0 and an extra row different', async () => {
    const db = await freshDatabase(sourceServer(), 'exact_self');
    const [a, b] = [await db.connect(), await db.connect()];
    try {
      await a.query(`CREATE TABLE public.t (id int PRIMARY KEY, j json, f float8, r real, ts timestamptz, arr int[]);
        INSERT INTO public.t VALUES (1, 'null', 0, 1.5, '2024-01-01 00:00+00', '[0:1]={1,2}'), (2, NULL, 0.1, NULL, NULL, '{1,2}')`);
      await b.query("SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'German'; SET extra_float_digits = -10; SET bytea_output = 'escape'");
      const same = await compareTable(a, b, 'public', 't');
      expect(same).toMatchObject({ missing: [], extra: [], providerRows: 2, subscriberRows: 2 });
      for (const change of ["UPDATE public.t SET j = NULL WHERE id = 1", "UPDATE public.t SET f = '-0' WHERE id = 1", 'UPDATE public.t SET f = 0.1 + 1e-16 WHERE id = 2', "UPDATE public.t SET arr = '{1,2}' WHERE id = 1", "UPDATE public.t SET ts = ts + interval '1 microsecond' WHERE id = 1", 'INSERT INTO public.t (id) VALUES (3)']) {
        await a.query('BEGIN');
        await a.query(change);
        // The same database on both sides: b sees the committed state, a its own change.
        const d = await compareTable(a, b, 'public', 't');
        await a.query('ROLLBACK');
        expect(d.missing.length + d.extra.length, change).toBeGreaterThan(0);
      }
    } finally {
      await a.end();
      await b.end();
    }
  });
});

describe('finding 1: keys whose text depends on the writing session', () => {
  const readings: PairOptions = {
    schema: `CREATE TABLE public.readings (device int, ts timestamptz, v int NOT NULL, PRIMARY KEY (device, ts));
             INSERT INTO public.readings VALUES (2, '2024-03-01 10:00:00+00', 0), (9, '2024-03-01 10:00:00+00', 9);`,
    tables: [{ schema: 'public', table: 'readings' }],
  };

  it('timestamptz key: INSERT (UTC) + DELETE (Europe/Berlin) in one batch: the row is gone', async () => {
    await withPair('x1a', readings, async (p) => {
      const [utc, berlin] = [await p.session(UTC), await p.session(BERLIN)];
      await utc.query("INSERT INTO public.readings VALUES (1, '2024-03-01 10:00:00+00', 1)");
      await berlin.query("DELETE FROM public.readings WHERE device = 1 AND ts = '2024-03-01 11:00:00+01'");
      expect((await p.prov.query('SELECT count(*)::int AS n FROM public.readings WHERE device = 1')).rows[0].n).toBe(0);
      await p.sync();
      await p.expectEqual('public', 'readings');
    });
  });

  it('timestamptz key: UPDATE (UTC) + DELETE (Europe/Berlin) in one batch: the row stays gone', async () => {
    await withPair('x1b', readings, async (p) => {
      const [utc, berlin] = [await p.session(UTC), await p.session(BERLIN)];
      await utc.query('UPDATE public.readings SET v = 5 WHERE device = 2');
      await berlin.query('DELETE FROM public.readings WHERE device = 2');
      await p.sync();
      await p.expectEqual('public', 'readings');
    });
  });

  it('timestamptz key: INSERT (UTC) + UPDATE (America/St_Johns) in one batch: one updated row, no stall', async () => {
    await withPair('x1c', readings, async (p) => {
      const [utc, stJohns, berlin] = [await p.session(UTC), await p.session(ST_JOHNS), await p.session(BERLIN)];
      await utc.query("INSERT INTO public.readings VALUES (3, '2024-07-01 00:00:00.123456+00', 1)");
      await stJohns.query('UPDATE public.readings SET v = 7 WHERE device = 3');
      await berlin.query('UPDATE public.readings SET v = v + 1 WHERE device = 9');
      await utc.query('UPDATE public.readings SET v = v + 1 WHERE device = 9');
      await p.sync();
      await p.expectEqual('public', 'readings');
      expect((await p.sub.query('SELECT v FROM public.readings WHERE device = 3')).rows).toEqual([{ v: 7 }]);
    });
  });

  it('bytea key written with bytea_output hex and escape: INSERT+DELETE gone, UPDATE+DELETE gone, INSERT+UPDATE updated', async () => {
    await withPair(
      'x1d',
      {
        schema: `CREATE TABLE public.blobs (k bytea PRIMARY KEY, v int NOT NULL);
                 INSERT INTO public.blobs VALUES ('\\x0a0b', 0), ('\\xff00', 0);`,
        tables: [{ schema: 'public', table: 'blobs' }],
      },
      async (p) => {
        const [hex, escape] = [await p.session("SET bytea_output = 'hex'"), await p.session("SET bytea_output = 'escape'")];
        await hex.query("INSERT INTO public.blobs VALUES ('\\x0102', 1)");
        await escape.query("DELETE FROM public.blobs WHERE k = '\\x0102'");
        await hex.query("UPDATE public.blobs SET v = 2 WHERE k = '\\x0a0b'");
        await escape.query("DELETE FROM public.blobs WHERE k = '\\x0a0b'");
        await hex.query("INSERT INTO public.blobs VALUES ('\\x5c27', 1)");
        await escape.query("UPDATE public.blobs SET v = 3 WHERE k = '\\x5c27'");
        await escape.query("UPDATE public.blobs SET v = 4 WHERE k = '\\xff00'");
        await p.sync();
        await p.expectEqual('public', 'blobs');
        expect((await p.sub.query('SELECT encode(k, \'hex\') AS k, v FROM public.blobs ORDER BY k')).rows).toEqual([
          { k: '5c27', v: 3 },
          { k: 'ff00', v: 4 },
        ]);
      },
    );
  });

  it("a (date, timestamp) key and interval values written under DateStyle 'SQL, DMY' and 'German' and IntervalStyle sql_standard", async () => {
    await withPair(
      'x1e',
      {
        schema: `CREATE TABLE public.days (d date, at timestamp, label text NOT NULL, span interval, PRIMARY KEY (d, at));
                 INSERT INTO public.days VALUES ('2024-01-05', '2024-01-05 08:00', 'seed', '1 day');`,
        tables: [{ schema: 'public', table: 'days' }],
      },
      async (p) => {
        const dmy = await p.session("SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard'");
        const german = await p.session("SET DateStyle = 'German'; SET IntervalStyle = 'iso_8601'");
        await dmy.query("INSERT INTO public.days VALUES ('03/04/2024', '03/04/2024 10:00:00.5', 'dmy', '-1 2:03:04')");
        await german.query("UPDATE public.days SET label = 'german', span = span * 2 WHERE d = '2024-04-03'");
        await dmy.query("INSERT INTO public.days VALUES ('01/02/2024', '01/02/2024 00:00', 'gone', NULL)");
        await german.query("DELETE FROM public.days WHERE d = '2024-02-01'");
        await german.query("UPDATE public.days SET label = 'upd' WHERE d = '05.01.2024'");
        await dmy.query("DELETE FROM public.days WHERE label = 'upd'");
        await p.sync();
        await p.expectEqual('public', 'days');
        expect((await p.sub.query("SELECT label FROM public.days")).rows).toEqual([{ label: 'german' }]);
      },
    );
  });
});

describe('finding 4: JSON null is not SQL NULL; json arrives verbatim', () => {
  it('json/jsonb null (also NOT NULL columns), SQL NULL, duplicate keys, odd whitespace and key order', async () => {
    await withPair(
      'x4',
      {
        schema: 'CREATE TABLE public.docs (id int PRIMARY KEY, j json, jb jsonb, jn json NOT NULL, jbn jsonb NOT NULL);',
        tables: [{ schema: 'public', table: 'docs' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query(`INSERT INTO public.docs VALUES
          (1, 'null', 'null', 'null', 'null'),
          (2, NULL, NULL, '{}', '{}'),
          (3, '{"a": 1, "a": 2}', '{"b": 1, "a": 2}', '  {"b" :1,"a":[1,  2] }  ', '[]'),
          (4, E'{\\n "z": null,\\t"a": "x"\\n}', '"str"', ' "str" ', '0'),
          (5, '[1, null,  "null"]', '[null]', 'false', 'null')`);
        await w.query("UPDATE public.docs SET j = 'null', jb = 'null' WHERE id = 2");
        await w.query("UPDATE public.docs SET jn = 'null' WHERE id = 5");
        await p.sync();
        await p.expectEqual('public', 'docs');
        const got = await p.sub.query('SELECT id, j IS NULL AS j_sql_null, j::text AS j, jn::text AS jn FROM public.docs ORDER BY id');
        expect(got.rows[0]).toEqual({ id: 1, j_sql_null: false, j: 'null', jn: 'null' });
        expect(got.rows[2]).toEqual({ id: 3, j_sql_null: false, j: '{"a": 1, "a": 2}', jn: '  {"b" :1,"a":[1,  2] }  ' });
        expect(got.rows[3].j).toBe('{\n "z": null,\t"a": "x"\n}');
      },
    );
  });
});

describe('finding 5: extension types and user types with a cast to json', () => {
  /** The extensions of `wanted` available on both servers; logs the others. */
  async function extensions(wanted: string[]): Promise<string[]> {
    // Whether CREATE EXTENSION works (pg_available_extensions reads every control file, and one
    // unreadable file of an embedded build makes it fail for all).
    const available = async (server: ReturnType<typeof sourceServer>) => {
      const db = await freshDatabase(server, 'x5probe');
      const ok = new Set<string>();
      for (const e of wanted) if (await db.query(`CREATE EXTENSION IF NOT EXISTS ${e}`).then(() => true, () => false)) ok.add(e);
      return ok;
    };
    const [onProv, onSub] = [await available(sourceServer()), await available(targetServer())];
    const exts = wanted.filter((e) => onProv.has(e) && onSub.has(e));
    const skipped = wanted.filter((e) => !exts.includes(e));
    if (skipped.length) console.log(`[exactness] extensions not available on both servers, not tested: ${skipped.join(', ')}`);
    return exts;
  }

  it('hstore (it has a cast to json) round-trips, as key and as value', async (ctx) => {
    if ((await extensions(['hstore'])).length === 0) return ctx.skip();
    await withPair(
      'x5h',
      {
        schema: `CREATE EXTENSION IF NOT EXISTS hstore SCHEMA public;
                 CREATE TABLE public.hs (id int PRIMARY KEY, h public.hstore, hs public.hstore[]);
                 CREATE TABLE public.hk (k public.hstore PRIMARY KEY, v int);`,
        tables: [
          { schema: 'public', table: 'hs' },
          { schema: 'public', table: 'hk' },
        ],
      },
      async (p) => {
        const w = await p.session();
        await w.query(String.raw`INSERT INTO public.hs VALUES (1, '"a"=>"1", "b"=>NULL, "c d"=>"x\"y", "=>"=>""', ARRAY['x=>1'::public.hstore]), (2, NULL, NULL), (3, '', '{}')`);
        await w.query("UPDATE public.hs SET h = h || 'k=>v'::public.hstore WHERE id = 1");
        await w.query('DELETE FROM public.hs WHERE id = 3');
        await w.query("INSERT INTO public.hk VALUES ('a=>1', 1), ('b=>2, c=>3', 2)");
        await w.query("UPDATE public.hk SET v = 20 WHERE k = 'c=>3, b=>2'");
        await p.sync();
        await p.expectEqual('public', 'hs');
        await p.expectEqual('public', 'hk');
      },
    );
  });

  it('citext (also as key) and ltree round-trip', async (ctx) => {
    const exts = await extensions(['citext', 'ltree']);
    if (exts.length === 0) return ctx.skip();
    const tables = [...(exts.includes('citext') ? ['ci', 'cik'] : []), ...(exts.includes('ltree') ? ['lt'] : [])].map((table) => ({ schema: 'public', table }));
    await withPair(
      'x5c',
      {
        schema: `${exts.map((e) => `CREATE EXTENSION IF NOT EXISTS ${e} SCHEMA public;`).join('\n')}
                 ${exts.includes('citext') ? 'CREATE TABLE public.ci (id int PRIMARY KEY, c public.citext, cs public.citext[]); CREATE TABLE public.cik (k public.citext PRIMARY KEY, v int);' : ''}
                 ${exts.includes('ltree') ? 'CREATE TABLE public.lt (id int PRIMARY KEY, l public.ltree, q public.lquery);' : ''}`,
        tables,
      },
      async (p) => {
        const w = await p.session();
        if (exts.includes('citext')) {
          await w.query(String.raw`INSERT INTO public.ci VALUES (1, 'MiXeD Case', '{"A b","c\"D"}'), (2, NULL, NULL)`);
          await w.query("INSERT INTO public.cik VALUES ('Abc', 1), ('xyz', 2)");
          await w.query("UPDATE public.cik SET v = 10 WHERE k = 'ABC'");
          await w.query("DELETE FROM public.cik WHERE k = 'XYZ'");
        }
        if (exts.includes('ltree')) {
          await w.query("INSERT INTO public.lt VALUES (1, 'Top.Science.Astronomy', '*.Astronomy.*'), (2, '', NULL)");
          await w.query("UPDATE public.lt SET l = l || 'Stars' WHERE id = 1");
        }
        await p.sync();
        for (const t of tables) await p.expectEqual(t.schema, t.table);
      },
    );
  });

  it('an enum and a composite whose owner defined a cast to json: they arrive as their own text, the cast is never called', async () => {
    const schema = `
      CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
      CREATE TYPE public.pair AS (a int, b text);
      CREATE TABLE public.cast_calls (what text);
      CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.cast_calls VALUES ('mood ' || $1); RETURN '"not the value"'::json; END $$;
      CREATE FUNCTION public.pair_json(public.pair) RETURNS json LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.cast_calls VALUES ('pair'); RETURN '{"evil": true}'::json; END $$;
      CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
      CREATE CAST (public.pair AS json) WITH FUNCTION public.pair_json(public.pair);
      CREATE TABLE public.typed (id int PRIMARY KEY, m public.mood, ms public.mood[], pr public.pair);
      CREATE TABLE public.mood_key (m public.mood PRIMARY KEY, v int);`;
    await withPair(
      'x5t',
      {
        schema,
        tables: [
          { schema: 'public', table: 'typed' },
          { schema: 'public', table: 'mood_key' },
        ],
      },
      async (p) => {
        const w = await p.session();
        await w.query(`INSERT INTO public.typed VALUES (1, 'happy', '{sad,ok}', ROW(1, 'x, "y"')), (2, NULL, NULL, NULL), (3, 'sad', '{}', ROW(NULL, NULL))`);
        await w.query("UPDATE public.typed SET m = 'ok', pr = ROW(2, 'z') WHERE id = 1");
        await w.query('DELETE FROM public.typed WHERE id = 3');
        await w.query("INSERT INTO public.mood_key VALUES ('sad', 1), ('ok', 2)");
        await w.query("UPDATE public.mood_key SET v = 3 WHERE m = 'ok'");
        await w.query("DELETE FROM public.mood_key WHERE m = 'sad'");
        const calls = async () => [...(await p.prov.query('SELECT what FROM public.cast_calls')).rows, ...(await p.sub.query('SELECT what FROM public.cast_calls')).rows];
        expect(await calls(), 'cast functions called by the capture').toEqual([]);
        await p.sync();
        await p.expectEqual('public', 'typed');
        await p.expectEqual('public', 'mood_key');
        expect(await calls(), 'cast functions called (provider, then subscriber)').toEqual([]);
      },
    );
  });
});

describe('finding 6: arrays keep their bounds and elements', () => {
  it('lower bounds other than 1, 2-D arrays, text arrays with quotes, NULL and "NULL" elements', async () => {
    await withPair(
      'x6',
      {
        schema: 'CREATE TABLE public.arrs (id int PRIMARY KEY, a int[], m int[], t text[], d date[], n numeric[]);',
        tables: [{ schema: 'public', table: 'arrs' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query(String.raw`INSERT INTO public.arrs VALUES
          (1, '[0:2]={10,20,30}', '{{1,2},{3,4}}', '{"a\"b",NULL,"NULL","","x,y","back\\slash"," lead"}', '[-2:-1]={2024-01-01,NULL}', '[5:5]={1.50}'),
          (2, '{}', '[-1:0][2:3]={{1,2},{3,4}}', '{}', NULL, '{{1,2}}'),
          (3, '{1}', '{{{1}}}', '[2:3]={"{}","}"}', '{}', '{NaN}')`);
        await w.query("UPDATE public.arrs SET a = '[3:4]={7,8}' WHERE id = 3");
        await w.query("INSERT INTO public.arrs (id, a) VALUES (4, '[-5:-5]={0}')");
        await w.query('DELETE FROM public.arrs WHERE id = 2');
        await p.sync();
        await p.expectEqual('public', 'arrs');
        expect((await p.sub.query('SELECT a::text AS a FROM public.arrs WHERE id = 1')).rows[0].a).toBe('[0:2]={10,20,30}');
      },
    );
  });
});
