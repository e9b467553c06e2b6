/**
 * Regression tests of issue 10 ("exact by construction"), names and schema
 * changes: finding 9 (a table whose columns are named after every keyword
 * the target server knows, in a schema named "select", with odd names:
 * copy, apply and compare must quote every identifier — compare must hash
 * the column "current_role", not the function) and finding 12 (tables with
 * a STORED generated column: DROP/RENAME COLUMN on the provider must not
 * break the application's writes, rows written meanwhile replicate after the
 * table is captured again; a primary key on a generated column; 60 shipped
 * columns plus a generated one keep json verbatim). Both sides are compared
 * row by row with the harness's own SQL (test/harness/exact.ts).
 */
import { describe, expect, it } from 'vitest';
import { introspectDatabases } from '../../src/catalog/index.js';
import { loadDesiredStateFromText, parseDsn } from '../../src/config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import * as engine from '../../src/engine/index.js';
import { connectionsOf, executePlan } from '../../src/executor/index.js';
import { compareState } from '../../src/operations/index.js';
import { buildPlan } from '../../src/planner/index.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { twoNodeYaml } from '../harness/desired-file.js';
import { compareTable, equalDiff, ident, makePair, type Pair, type PairOptions } from '../harness/exact.js';
import { sourceServer, targetServer } from '../harness/servers.js';

async function withPair(prefix: string, o: PairOptions, body: (p: Pair) => Promise<void>): Promise<void> {
  const pair = await makePair(prefix, o);
  try {
    await body(pair);
  } finally {
    await pair.close();
  }
}

/** Every keyword of the target server (all categories). */
async function targetKeywords(): Promise<string[]> {
  const db = await freshDatabase(targetServer(), 'x9kw');
  return (await db.query<{ word: string }>('SELECT word FROM pg_catalog.pg_get_keywords() ORDER BY word')).rows.map((r) => r.word);
}

/** `"select"."dot.ted"`: "window" int key, a text column per other keyword, and odd names. */
function keywordSchema(keywords: string[]): { sql: string; textColumns: string[]; insert: (from: number, to: number) => string } {
  const textColumns = [...keywords.filter((k) => k !== 'window'), 'a"b', 'Mixed Case', 'dot.ted'];
  const sql = `CREATE SCHEMA "select";
    CREATE TABLE "select"."dot.ted" ("window" int PRIMARY KEY, ${textColumns.map((c) => `${ident(c)} text`).join(', ')});`;
  const insert = (from: number, to: number) =>
    `INSERT INTO "select"."dot.ted" ("window", ${textColumns.map(ident).join(', ')})
     SELECT g, ${textColumns.map((_, i) => `'v' || g || '.${i}'`).join(', ')} FROM generate_series(${from}, ${to}) g`;
  return { sql, textColumns, insert };
}

describe('finding 9: every keyword as a column name, and odd names', () => {
  const writes = async (p: Pair, insert: (from: number, to: number) => string) => {
    const w = await p.session();
    await w.query(insert(6, 8));
    await w.query(`UPDATE "select"."dot.ted" SET "current_role" = 'cr', "a""b" = 'q"uote', "Mixed Case" = 'MC', "user" = 'u', "from" = 'f' WHERE "window" = 2`);
    await w.query('UPDATE "select"."dot.ted" SET "window" = 20 WHERE "window" = 3');
    await w.query('DELETE FROM "select"."dot.ted" WHERE "window" IN (4, 7)');
    await p.sync();
    await p.expectEqual('select', 'dot.ted');
  };

  it('the initial copy, then inserts, updates and deletes replicate', async () => {
    const { sql, insert } = keywordSchema(await targetKeywords());
    await withPair('x9a', { schema: sql, providerRows: insert(1, 5), tables: [{ schema: 'select', table: 'dot.ted' }], copy: true }, async (p) => {
      await p.copyAll();
      await p.expectEqual('select', 'dot.ted');
      await writes(p, insert);
    });
  });

  it('inserts, updates and deletes replicate (both sides seeded alike, no copy)', async () => {
    const keywords = await targetKeywords();
    expect(keywords.length).toBeGreaterThan(400);
    const { sql, insert } = keywordSchema(keywords);
    await withPair('x9b', { schema: `${sql}; ${insert(1, 5)}`, tables: [{ schema: 'select', table: 'dot.ted' }] }, async (p) => {
      await writes(p, insert);
    });
  });

  it('compare (operations API) finds a row changed on the subscriber in the column "current_role" and in "user"', { timeout: 120_000 }, async () => {
    const keywords = await targetKeywords();
    const { sql, insert } = keywordSchema(keywords);
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'x9c_p'), await freshDatabase(targetServer(), 'x9c_s')];
    await pdb.query(sql);
    await sdb.query(sql);
    await pdb.query(insert(1, 50));
    const loaded = loadDesiredStateFromText('kw.yaml', twoNodeYaml({ queue: 'q', root: 'root', leaf: 'new', oldDsn: pdb.dsn, newDsn: sdb.dsn, tables: ['select.*'] }), {});
    expect(loaded.diagnostics).toEqual([]);
    const state = loaded.state!;
    const plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: engine.ENGINE_VERSION });
    expect(plan.errored, JSON.stringify(plan.checks)).toBe(false);
    await executePlan(plan, connectionsOf(state.databases));
    const stop = new AbortController();
    const log = createLogger({ level: 'error' });
    const daemons = [
      runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', log, signal: stop.signal }),
      runWorkerDaemon({ provider: parseDsn(pdb.dsn), subscriber: parseDsn(sdb.dsn), queue: 'q', consumer: 'new', log, signal: stop.signal, retryDelayMs: 200 }),
    ];
    const [prov, sub] = [await pdb.connect(), await sdb.connect()];
    try {
      await waitFor('the table copied (state ok)', async () => (await sub.query("SELECT state FROM pgconvey.subscriber_table")).rows[0]?.state === 'ok', 30_000).catch(async (err) => {
        throw new Error(`${(err as Error).message}: ${JSON.stringify((await sub.query('SELECT table_name, state, last_error FROM pgconvey.subscriber_table')).rows)}`);
      });
      await prov.query(`UPDATE "select"."dot.ted" SET "current_role" = 'p' WHERE "window" = 10`);
      const tick = (await prov.query<{ t: string }>("SELECT pgconvey.force_tick('q')::text AS t")).rows[0]!.t;
      await waitFor(`tick ${tick} applied`, async () => BigInt((await sub.query('SELECT completed_tick FROM pgconvey.subscription')).rows[0].completed_tick) >= BigInt(tick), 30_000);
      const d = await compareTable(prov, sub, 'select', 'dot.ted');
      expect(d).toEqual(equalDiff(d));
      const equal = await compareState(state);
      expect(equal.equal, JSON.stringify(equal.tables)).toBe(true);

      await sub.query(`UPDATE "select"."dot.ted" SET "current_role" = 'changed behind replication' WHERE "window" = 2`);
      await sub.query(`UPDATE "select"."dot.ted" SET "user" = 'changed too' WHERE "window" = 3`);
      const differ = await compareState(state);
      expect(differ.equal).toBe(false);
      const t = differ.tables.find((x) => x.table.includes('dot.ted'))!;
      expect(t.differingRanges.flatMap((r) => r.changed)).toEqual([{ window: '2' }, { window: '3' }]);
    } finally {
      stop.abort();
      await Promise.all(daemons);
      await prov.end();
      await sub.end();
    }
  });
});

const GENERATED = sourceServer().major >= 12;

describe.skipIf(!GENERATED)('finding 12: tables with a STORED generated column (PG 12+)', () => {
  it("DROP COLUMN on the provider: the application's writes succeed, and replicate once the table is captured again", async () => {
    await withPair(
      'x12a',
      {
        schema: `CREATE TABLE public.gen_drop (id int PRIMARY KEY, x int, keep text, g int GENERATED ALWAYS AS (id * 2) STORED);
                 INSERT INTO public.gen_drop (id, x, keep) SELECT g, g, 'k' || g FROM generate_series(1, 5) g;`,
        tables: [{ schema: 'public', table: 'gen_drop' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query('ALTER TABLE public.gen_drop DROP COLUMN x');
        // The application's own writes, before anything is re-captured.
        await w.query("INSERT INTO public.gen_drop (id, keep) VALUES (10, 'between')");
        await w.query("UPDATE public.gen_drop SET keep = 'between upd' WHERE id = 1");
        await w.query('DELETE FROM public.gen_drop WHERE id = 2');
        await engine.addTable(p.prov, 'q', 'public', 'gen_drop');
        await w.query("INSERT INTO public.gen_drop (id, keep) VALUES (11, 'after')");
        await w.query("UPDATE public.gen_drop SET keep = 'after upd' WHERE id = 3");
        await w.query('DELETE FROM public.gen_drop WHERE id = 4');
        await p.sync();
        await p.expectEqual('public', 'gen_drop', { commonColumns: true });
      },
    );
  });

  it("RENAME COLUMN on the provider: the application's writes succeed; rows written meanwhile are neither lost nor corrupted", async () => {
    await withPair(
      'x12b',
      {
        schema: `CREATE TABLE public.gen_ren (id int PRIMARY KEY, y text, g int GENERATED ALWAYS AS (id * 2) STORED);
                 INSERT INTO public.gen_ren (id, y) SELECT g, 'y' || g FROM generate_series(1, 5) g;`,
        tables: [{ schema: 'public', table: 'gen_ren' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query('ALTER TABLE public.gen_ren RENAME COLUMN y TO z');
        await w.query("INSERT INTO public.gen_ren (id, z) VALUES (10, 'between')");
        await w.query("UPDATE public.gen_ren SET z = 'between upd' WHERE id = 1");
        await w.query('DELETE FROM public.gen_ren WHERE id = 2');
        // The subscriber gets the new column name; its old column stays until everything is applied.
        await p.sub.query('ALTER TABLE public.gen_ren ADD COLUMN z text');
        await engine.addTable(p.prov, 'q', 'public', 'gen_ren');
        await w.query("INSERT INTO public.gen_ren (id, z) VALUES (11, 'after')");
        await w.query("UPDATE public.gen_ren SET z = 'after upd' WHERE id = 3");
        await w.query('DELETE FROM public.gen_ren WHERE id = 4');
        await p.sync();
        // Every provider row is there, its value either in the new column or (written before the re-capture) in the old one.
        const provRows = (await p.prov.query('SELECT id, z, g FROM public.gen_ren ORDER BY id')).rows;
        const subRows = (await p.sub.query('SELECT id, coalesce(z, y) AS z, g FROM public.gen_ren ORDER BY id')).rows;
        expect(subRows).toEqual(provRows);
      },
    );
  });

  it('a primary key on a stored generated column replicates without collapsing rows', async () => {
    await withPair(
      'x12c',
      {
        schema: 'CREATE TABLE public.gen_pk (a int NOT NULL, b int NOT NULL, id int GENERATED ALWAYS AS (a * 1000 + b) STORED PRIMARY KEY, v text);',
        tables: [{ schema: 'public', table: 'gen_pk' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query("INSERT INTO public.gen_pk (a, b, v) VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z'), (2, 2, 'zz')");
        await w.query("UPDATE public.gen_pk SET v = 'upd' WHERE id = 1001");
        await w.query('DELETE FROM public.gen_pk WHERE id = 1002');
        await w.query('UPDATE public.gen_pk SET b = 5 WHERE id = 2002');
        await p.sync();
        await p.expectEqual('public', 'gen_pk');
        expect(Number((await p.sub.query('SELECT count(*) AS n FROM public.gen_pk')).rows[0].n)).toBe(3);
      },
    );
  });

  it('60 shipped columns plus a generated one: a json column with duplicate keys, odd whitespace and key order arrives verbatim', async () => {
    const cols = Array.from({ length: 58 }, (_, i) => `c${i + 1} int`).join(', ');
    await withPair(
      'x12d',
      {
        schema: `CREATE TABLE public.wide (id int PRIMARY KEY, ${cols}, j json, g int GENERATED ALWAYS AS (id + 1) STORED);`,
        tables: [{ schema: 'public', table: 'wide' }],
      },
      async (p) => {
        const w = await p.session();
        await w.query(`INSERT INTO public.wide (id, c1, c58, j) VALUES (1, 1, 58, '{"a": 1, "a": 2,   "b" : [ 1,2 ] }'), (2, 2, NULL, '{"z":1,"a":2}'), (3, NULL, 3, 'null'), (4, 4, 4, NULL)`);
        await w.query(`UPDATE public.wide SET j = '{"k":  "v",  "k": "w"}', c30 = 30 WHERE id = 2`);
        await p.sync();
        await p.expectEqual('public', 'wide');
        expect((await p.sub.query('SELECT j::text AS j FROM public.wide WHERE id = 1')).rows[0].j).toBe('{"a": 1, "a": 2,   "b" : [ 1,2 ] }');
      },
    );
  });
});
