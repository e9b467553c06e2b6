/**
 * Issue 10 "as a user would": a schema with one table per finding (keys by
 * timestamptz and bytea, identity columns, swaps under partial/expression
 * unique indexes and an EXCLUDE constraint, JSON null, extension types and
 * user types cast to json, array bounds, inheritance, every keyword as a
 * column name, a TRUNCATE group after 499 row events, a primary key changed
 * while its DELETEs are queued, generated columns), a desired-state file,
 * `pgconvey apply --auto-approve`, `pgconvey run` as a child process, a writer
 * doing the tricky writes from sessions with differing settings; then every
 * table must be `ok`, the subscriber caught up, both sides equal row by row
 * (the harness's own SQL), and `pgconvey plan` must print "No changes".
 * A DEFERRABLE primary key is refused by `plan` with a code and a hint.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { compareTable, ident } from '../harness/exact.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const GENERATED = sourceServer().major >= 12;

async function keywords(): Promise<string[]> {
  const db = await freshDatabase(targetServer(), 'xe_kw');
  return (await db.query<{ word: string }>('SELECT word FROM pg_catalog.pg_get_keywords() ORDER BY word')).rows.map((r) => r.word);
}

async function extensionsOnBoth(wanted: string[]): Promise<string[]> {
  // Whether CREATE EXTENSION works (pg_available_extensions fails on an unreadable control file of an embedded build).
  const on = async (db: TestDatabase) => {
    const ok = new Set<string>();
    for (const e of wanted) if (await db.query(`CREATE EXTENSION IF NOT EXISTS ${e}`).then(() => true, () => false)) ok.add(e);
    return ok;
  };
  const [a, b] = [await on(await freshDatabase(sourceServer(), 'xe_ext')), await on(await freshDatabase(targetServer(), 'xe_ext'))];
  return wanted.filter((e) => a.has(e) && b.has(e));
}

function schemaSql(kw: string[], exts: string[]): { sql: string; kwColumns: string[] } {
  const kwColumns = [...kw.filter((k) => k !== 'window'), 'a"b', 'Mixed Case', 'dot.ted'];
  const extCols = [exts.includes('hstore') ? 'h public.hstore' : '', exts.includes('citext') ? 'c public.citext' : '', exts.includes('ltree') ? 'l public.ltree' : ''].filter(Boolean);
  const wideCols = Array.from({ length: 58 }, (_, i) => `c${i + 1} int`).join(', ');
  const sql = `
    ${exts.map((e) => `CREATE EXTENSION IF NOT EXISTS ${e} SCHEMA public;`).join('\n')}
    CREATE SCHEMA audit;
    CREATE TABLE audit.cast_calls (what text);
    CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TYPE public.pair AS (a int, b text);
    CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit.cast_calls VALUES ('mood'); RETURN '"not the value"'::json; END $$;
    CREATE FUNCTION public.pair_json(public.pair) RETURNS json LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit.cast_calls VALUES ('pair'); RETURN '{"evil": true}'::json; END $$;
    CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
    CREATE CAST (public.pair AS json) WITH FUNCTION public.pair_json(public.pair);

    CREATE TABLE public.readings (device int, ts timestamptz, v int NOT NULL, PRIMARY KEY (device, ts));
    CREATE TABLE public.blobs (k bytea PRIMARY KEY, v int NOT NULL);
    CREATE TABLE public.ident_pk (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
    CREATE TABLE public.ident_col (k int PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY, v text);
    CREATE TABLE public.users_p (id int PRIMARY KEY, email text NOT NULL, deleted boolean NOT NULL DEFAULT false);
    CREATE UNIQUE INDEX users_p_live ON public.users_p (email) WHERE NOT deleted;
    CREATE TABLE public.users_e (id int PRIMARY KEY, email text NOT NULL);
    CREATE UNIQUE INDEX users_e_lower ON public.users_e (lower(email));
    CREATE TABLE public.slots (id int PRIMARY KEY, x int NOT NULL, EXCLUDE USING btree (x WITH =));
    CREATE TABLE public.docs (id int PRIMARY KEY, j json, jb jsonb, jn json NOT NULL);
    CREATE TABLE public.ext (id int PRIMARY KEY, ${extCols.map((c) => `${c},`).join(' ')} m public.mood, pr public.pair);
    CREATE TABLE public.arrs (id int PRIMARY KEY, a int[], m int[], t text[]);
    CREATE TABLE public.parent (id int PRIMARY KEY, v text);
    CREATE TABLE public.child (extra text) INHERITS (public.parent);
    ALTER TABLE public.child ADD PRIMARY KEY (id);
    CREATE SCHEMA "select";
    CREATE TABLE "select"."dot.ted" ("window" int PRIMARY KEY, ${kwColumns.map((c) => `${ident(c)} text`).join(', ')});
    CREATE TABLE public.filler (id int PRIMARY KEY, v int);
    CREATE TABLE public.ta (id int PRIMARY KEY);
    CREATE TABLE public.tb (id int PRIMARY KEY, a_id int REFERENCES public.ta);
    CREATE TABLE public.kc (a int NOT NULL, b int NOT NULL, v text, CONSTRAINT kc_pkey PRIMARY KEY (a));
    ${
      GENERATED
        ? `CREATE TABLE public.gen_drop (id int PRIMARY KEY, x int, keep text, g int GENERATED ALWAYS AS (id * 2) STORED);
           CREATE TABLE public.gen_pk (a int NOT NULL, b int NOT NULL, id int GENERATED ALWAYS AS (a * 1000 + b) STORED PRIMARY KEY, v text);
           CREATE TABLE public.wide (id int PRIMARY KEY, ${wideCols}, j json, g int GENERATED ALWAYS AS (id + 1) STORED);`
        : ''
    }`;
  return { sql, kwColumns };
}

/** Rows for the initial copy. */
function seedSql(kwColumns: string[]): string {
  return `
    INSERT INTO public.readings SELECT d, '2024-03-01 10:00:00+00', 0 FROM generate_series(1, 5) d;
    INSERT INTO public.blobs VALUES ('\\x0a0b', 0), ('\\xff00', 0);
    INSERT INTO public.ident_pk (v) SELECT 'seed' FROM generate_series(1, 5);
    INSERT INTO public.ident_col (k, v) SELECT g, 'seed' FROM generate_series(1, 5) g;
    INSERT INTO public.users_p VALUES (1, 'a@x', false), (2, 'b@x', false), (3, 'a@x', true);
    INSERT INTO public.users_e VALUES (1, 'A@x'), (2, 'b@X');
    INSERT INTO public.slots VALUES (1, 10), (2, 20);
    INSERT INTO public.docs VALUES (1, 'null', 'null', 'null'), (2, NULL, NULL, '  {"a" :1, "a": 2}  ');
    INSERT INTO public.ext (id, m, pr) VALUES (1, 'happy', ROW(1, 'x, "y"'));
    INSERT INTO public.arrs VALUES (1, '[0:2]={10,20,30}', '[-1:0][2:3]={{1,2},{3,4}}', '{"a\\"b",NULL,"NULL",""}');
    INSERT INTO public.parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
    INSERT INTO public.child VALUES (1, 'c1', 'e'), (2, 'c2', 'e'), (3, 'c3', 'e');
    INSERT INTO "select"."dot.ted" ("window", ${kwColumns.map(ident).join(', ')}) SELECT g, ${kwColumns.map((_, i) => `'v' || g || '.${i}'`).join(', ')} FROM generate_series(1, 5) g;
    INSERT INTO public.ta SELECT generate_series(1, 3); INSERT INTO public.tb VALUES (1, 1), (2, 2);
    INSERT INTO public.kc SELECT g, g % 2, 'v' || g FROM generate_series(1, 6) g;
    ${
      GENERATED
        ? `INSERT INTO public.gen_drop (id, x, keep) SELECT g, g, 'k' || g FROM generate_series(1, 5) g;
           INSERT INTO public.gen_pk (a, b, v) VALUES (1, 1, 'x'), (1, 2, 'y');
           INSERT INTO public.wide (id, c1, j) VALUES (1, 1, '{"a": 1, "a": 2,   "b" : [ 1,2 ] }');`
        : ''
    }`;
}

describe('pgconvey: issue 10 exactness as a user would', () => {
  it('apply, run, tricky writes from sessions with differing settings: every table ends equal, and plan says No changes', { timeout: 300_000 }, async () => {
    const [kw, exts] = [await keywords(), await extensionsOnBoth(['hstore', 'citext', 'ltree'])];
    const { sql, kwColumns } = schemaSql(kw, exts);
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'xe_p'), await freshDatabase(targetServer(), 'xe_s')];
    await pdb.query(sql);
    await sdb.query(sql);
    await pdb.query(seedSql(kwColumns));
    const env = { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn };
    const file = writeTwoNodeFile({ tables: ['public.*', 'select.*'], extra: 'daemons:\n  worker: { retry_delay: 200ms }' });
    const applied = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 120_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const sessions: pg.Client[] = [];
    const session = async (settings: string) => {
      const c = await pdb.connect();
      sessions.push(c);
      await c.query(settings);
      return c;
    };
    const [prov, sub] = [await pdb.connect(), await sdb.connect()];
    let run: CliProcess | undefined;
    const tableStates = async () => JSON.stringify((await sub.query('SELECT table_schema, table_name, state, last_error FROM pgconvey.subscriber_table ORDER BY 1, 2')).rows);
    /** Every table ok and the subscriber past a tick taken now. */
    const caughtUp = async (what: string) => {
      const tick = (await prov.query<{ t: string }>("SELECT pgconvey.force_tick('shop')::text AS t")).rows[0]!.t;
      await waitFor(
        `${what}: every table ok and tick ${tick} applied`,
        async () => {
          const r = await sub.query("SELECT (SELECT completed_tick FROM pgconvey.subscription) AS done, (SELECT count(*) FROM pgconvey.subscriber_table WHERE state <> 'ok')::int AS busy");
          return r.rows[0].busy === 0 && BigInt(r.rows[0].done ?? 0) >= BigInt(tick);
        },
        60_000,
        200,
      ).catch(async (err) => {
        throw new Error(`${(err as Error).message}\ntables: ${await tableStates()}\nrun log:\n${run?.lines.slice(-15).join('\n')}`);
      });
    };
    try {
      run = startCli(['run', file, '--log-format', 'json'], env);
      await caughtUp('after the initial copy');

      // Phase 1: the tricky writes, from sessions whose settings differ.
      const utc = await session("SET TimeZone = 'UTC'; SET bytea_output = 'hex'");
      const berlin = await session("SET TimeZone = 'Europe/Berlin'; SET bytea_output = 'escape'; SET DateStyle = 'SQL, DMY'");
      const stJohns = await session("SET TimeZone = 'America/St_Johns'; SET DateStyle = 'German'; SET IntervalStyle = 'sql_standard'; SET extra_float_digits = -5");
      await utc.query("INSERT INTO public.readings VALUES (10, '2024-03-01 10:00:00+00', 1), (11, '2024-03-01 10:00:00+00', 1)");
      await berlin.query("DELETE FROM public.readings WHERE device = 10");
      await stJohns.query('UPDATE public.readings SET v = 7 WHERE device = 11');
      await utc.query('UPDATE public.readings SET v = 5 WHERE device = 1');
      await berlin.query('DELETE FROM public.readings WHERE device = 1');
      await utc.query("INSERT INTO public.blobs VALUES ('\\x0102', 1)");
      await berlin.query("UPDATE public.blobs SET v = 2 WHERE k = '\\x0102'");
      await berlin.query("DELETE FROM public.blobs WHERE k = '\\x0a0b'");
      await utc.query("INSERT INTO public.ident_pk (v) VALUES ('new')");
      await utc.query("UPDATE public.ident_pk SET v = 'upd' WHERE id = 2");
      await utc.query('DELETE FROM public.ident_pk WHERE id = 3');
      await utc.query("INSERT INTO public.ident_col (k, v) VALUES (6, 'new')");
      await utc.query('UPDATE public.ident_col SET n = DEFAULT WHERE k = 1');
      await utc.query('DELETE FROM public.ident_col WHERE k = 3');
      for (const [t, col, a, b, tmp] of [
        ['users_p', 'email', "'a@x'", "'b@x'", "'tmp'"],
        ['users_e', 'email', "'a@X'", "'B@x'", "'tmp'"],
        ['slots', 'x', '10', '20', '-1'],
      ] as const) {
        await utc.query(`BEGIN; UPDATE public.${t} SET ${col} = ${tmp} WHERE id = 1; UPDATE public.${t} SET ${col} = ${a} WHERE id = 2; UPDATE public.${t} SET ${col} = ${b} WHERE id = 1; COMMIT`);
      }
      await utc.query(`INSERT INTO public.docs VALUES (3, '{"b":1,  "a":2}', '[null]', 'null'), (4, NULL, 'null', E' {\\n"x" : [1,  2]}\\n')`);
      await utc.query("UPDATE public.docs SET jn = 'null' WHERE id = 2");
      const extSet = [exts.includes('hstore') ? `h = '"a"=>"1", "b"=>NULL'` : '', exts.includes('citext') ? "c = 'MiXeD'" : '', exts.includes('ltree') ? "l = 'Top.Science'" : ''].filter(Boolean);
      await utc.query(`INSERT INTO public.ext (id, m, pr) VALUES (2, 'sad', ROW(2, 'b'))`);
      await utc.query(`UPDATE public.ext SET ${[...extSet, "m = 'ok'", "pr = ROW(3, 'c')"].join(', ')} WHERE id = 1`);
      await utc.query(String.raw`INSERT INTO public.arrs VALUES (2, '[-3:-2]={1,2}', '{{1},{2}}', '[0:1]={"x,y","back\\slash"}')`);
      await utc.query("UPDATE public.arrs SET a = '[5:6]={5,6}' WHERE id = 1");
      await utc.query('DELETE FROM ONLY public.parent WHERE id = 1');
      await utc.query("UPDATE ONLY public.parent SET v = 'p2 new' WHERE id = 2");
      await utc.query(`INSERT INTO "select"."dot.ted" ("window", "current_role", "a""b") VALUES (6, 'cr', 'ab')`);
      await utc.query(`UPDATE "select"."dot.ted" SET "current_role" = 'x', "user" = 'y', "Mixed Case" = 'z' WHERE "window" = 2`);
      await utc.query(`DELETE FROM "select"."dot.ted" WHERE "window" = 3`);
      if (GENERATED) {
        await utc.query("INSERT INTO public.gen_pk (a, b, v) VALUES (2, 1, 'z'), (2, 2, 'zz')");
        await utc.query("UPDATE public.gen_pk SET v = 'upd' WHERE id = 1001");
        await utc.query(`INSERT INTO public.wide (id, c58, j) VALUES (2, 58, '{"k":  "v",  "k": "w"}')`);
      }
      await caughtUp('after the tricky writes');
      await utc.query('TRUNCATE ONLY public.parent');
      await caughtUp('after TRUNCATE ONLY parent');

      // Phase 2: 499 row events, then TRUNCATE ta, tb, in one transaction (and so in one batch).
      await utc.query('BEGIN; INSERT INTO public.filler SELECT g, g FROM generate_series(1, 499) g; TRUNCATE public.ta, public.tb; COMMIT');
      await caughtUp('after the TRUNCATE group');

      // Phase 3: schema changes as a user makes them, each followed by `apply`.
      await utc.query('DELETE FROM public.kc WHERE a = 1');
      const rekey = 'ALTER TABLE public.kc DROP CONSTRAINT kc_pkey, ADD CONSTRAINT kc_pkey PRIMARY KEY (a, b)';
      await sub.query(rekey);
      await utc.query(rekey);
      await utc.query('DELETE FROM public.kc WHERE a = 2');
      if (GENERATED) {
        await utc.query('ALTER TABLE public.gen_drop DROP COLUMN x');
        await utc.query("INSERT INTO public.gen_drop (id, keep) VALUES (10, 'between')");
        await utc.query("UPDATE public.gen_drop SET keep = 'between upd' WHERE id = 1");
        await utc.query('DELETE FROM public.gen_drop WHERE id = 2');
      }
      const reapplied = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(reapplied.code, reapplied.stdout + reapplied.stderr).toBe(0);
      await utc.query('DELETE FROM public.kc WHERE a = 3');
      if (GENERATED) await utc.query("INSERT INTO public.gen_drop (id, keep) VALUES (11, 'after')");
      await caughtUp('after the schema changes');

      const tables = (await prov.query<{ s: string; t: string }>("SELECT table_schema AS s, table_name AS t FROM pgconvey.captured_table ORDER BY 1, 2")).rows;
      expect(tables.length).toBeGreaterThanOrEqual(GENERATED ? 20 : 17);
      const differing: string[] = [];
      for (const { s, t } of tables) {
        const d = await compareTable(prov, sub, s, t, { commonColumns: t === 'gen_drop' });
        if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) differing.push(`${s}.${t}: ${JSON.stringify(d)}`);
      }
      expect(differing).toEqual([]);
      const calls = [...(await prov.query('SELECT what FROM audit.cast_calls')).rows, ...(await sub.query('SELECT what FROM audit.cast_calls')).rows];
      expect(calls, 'cast functions called').toEqual([]);

      const plan = await runCli(['plan', file], { env });
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
      expect(plan.stdout).toContain('No changes');
    } finally {
      await run?.kill('SIGTERM');
      await Promise.all([prov, sub, ...sessions].map((c) => c.end().catch(() => undefined)));
    }
  });

  it('plan refuses a DEFERRABLE primary key with table_key_deferrable and a hint, and exits 1', async () => {
    const schema = `CREATE TABLE public.ok_table (id int PRIMARY KEY);
                    CREATE TABLE public.def_table (id int PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE, v int);`;
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'xe_def_p'), await freshDatabase(targetServer(), 'xe_def_s')];
    await pdb.query(schema);
    await sdb.query(schema);
    const file = writeTwoNodeFile();
    const r = await runCli(['plan', file], { env: { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/error table_key_deferrable: .*public\.def_table/);
    expect(r.stdout).toMatch(/table_key_deferrable[^\n]*\n\s+hint: \S/);
  });
});
