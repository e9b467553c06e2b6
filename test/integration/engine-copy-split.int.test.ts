/**
 * The split copy (key ranges in one exported provider snapshot, loaded in
 * parallel subscriber sessions) and the batched copy of small tables, under
 * concurrent writes that move rows across range boundaries — keys of several
 * types (bigint, numeric, timestamptz, text in a non-default collation, a
 * composite key whose first column repeats) — checked row by row with
 * test/harness/exact.ts; a range stream killed mid-copy on either side leaves
 * the table to be copied again, with its indexes; many small tables under one
 * snapshot. Replay a failure with PGCONVEY_SEED=<seed>.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { waitFor } from '../harness/compare.js';
import { makePair, type Pair } from '../harness/exact.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer, type ServerInfo } from '../harness/servers.js';

/** A linguistic collation both servers have (its order is not the bytes'), else "C". */
async function sharedCollation(): Promise<string> {
  const candidates = ['und-x-icu', 'en_US.utf8', 'en_US', 'de_DE.utf8', 'C.utf8'];
  const probe = async (s: ServerInfo) => {
    const c = new pg.Client({ host: s.host, port: s.port, user: s.user, database: 'postgres' });
    await c.connect();
    try {
      return (await c.query<{ n: string }>('SELECT collname AS n FROM pg_collation WHERE collname = ANY($1) AND collencoding IN (-1, 6)', [candidates])).rows.map((r) => r.n);
    } finally {
      await c.end();
    }
  };
  const [a, b] = await Promise.all([probe(sourceServer()), probe(targetServer())]);
  return candidates.find((c) => a.includes(c) && b.includes(c)) ?? 'C';
}

const SEED = testSeed();

const splitSchema = (collation: string) => `
  CREATE TABLE public.t_int (id bigint PRIMARY KEY, v int NOT NULL, pad text);
  CREATE INDEX t_int_v ON public.t_int (v);
  CREATE TABLE public.t_num (k numeric PRIMARY KEY, v int NOT NULL);
  CREATE TABLE public.t_ts (k timestamptz PRIMARY KEY, v int NOT NULL);
  CREATE TABLE public.t_text (k text COLLATE "${collation}" PRIMARY KEY, v int NOT NULL);
  CREATE INDEX t_text_v ON public.t_text (v, k);
  CREATE TABLE public.t_comp (a text NOT NULL, b int NOT NULL, v int NOT NULL, PRIMARY KEY (a, b));
`;

const SPLIT_ROWS = `
  INSERT INTO public.t_int SELECT g, g % 97, repeat('x', g % 50) FROM generate_series(1, 40000) g;
  INSERT INTO public.t_num SELECT g / 7.0, g FROM generate_series(1, 20000) g;
  INSERT INTO public.t_ts SELECT timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute', g FROM generate_series(1, 20000) g;
  INSERT INTO public.t_text SELECT CASE WHEN g % 2 = 0 THEN upper(md5(g::text)) ELSE md5(g::text) END || CASE WHEN g % 3 = 0 THEN 'Ä' ELSE 'a' END, g FROM generate_series(1, 20000) g;
  INSERT INTO public.t_comp SELECT 'grp' || (g % 40), g, g FROM generate_series(1, 20000) g;
`;

const SPLIT_TABLES = ['t_int', 't_num', 't_ts', 't_text', 't_comp'];

/** One random write on a split table: inserts, deletes and updates that move keys (across range boundaries). */
async function writeOne(c: pg.Client, rng: Rng): Promise<void> {
  const n = rng.int(1, 40000);
  switch (rng.int(0, 9)) {
    case 0:
      await c.query('INSERT INTO public.t_int VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET v = excluded.v', [n + 40000 * rng.int(0, 1), n % 13, 'new']);
      break;
    case 1:
      await c.query('DELETE FROM public.t_int WHERE id BETWEEN $1 AND $1 + 20', [n]);
      break;
    case 2:
      // Moves a block of keys far (across boundaries), unless one is taken.
      await c.query('UPDATE public.t_int SET id = id + 100000 WHERE id BETWEEN $1 AND $1 + 30 AND id < 100000', [n]).catch(() => undefined);
      break;
    case 3:
      await c.query('UPDATE public.t_num SET k = k + 1000 WHERE k BETWEEN $1 AND $1 + 3', [n / 7]).catch(() => undefined);
      break;
    case 4:
      await c.query("UPDATE public.t_ts SET k = k + interval '30 days' WHERE v BETWEEN $1 AND $1 + 5", [n % 20000]).catch(() => undefined);
      break;
    case 5:
      await c.query("UPDATE public.t_text SET k = 'Z' || k WHERE v BETWEEN $1 AND $1 + 5 AND left(k, 1) <> 'Z'", [n % 20000]).catch(() => undefined);
      break;
    case 6:
      await c.query('DELETE FROM public.t_text WHERE v = $1', [n % 20000]);
      break;
    case 7:
      await c.query("UPDATE public.t_comp SET a = 'grp' || ((b + 7) % 40) WHERE b BETWEEN $1 AND $1 + 10", [n % 20000]).catch(() => undefined);
      break;
    case 8:
      await c.query("INSERT INTO public.t_comp VALUES ('grp' || $1::int % 40, $1 + 20000, 0) ON CONFLICT DO NOTHING", [n]);
      break;
    default:
      // Several tables in one transaction.
      await c.query('BEGIN');
      await c.query('UPDATE public.t_int SET v = v + 1 WHERE id = $1', [n]);
      await c.query('DELETE FROM public.t_comp WHERE b = $1', [n % 20000]);
      await c.query('UPDATE public.t_num SET v = v + 1 WHERE k = $1', [n / 7]);
      await c.query('COMMIT');
  }
}

function startWriter(pair: Pair, rng: Rng, stop: () => boolean): Promise<number> {
  return (async () => {
    const c = await pair.session();
    let n = 0;
    while (!stop()) {
      await writeOne(c, rng);
      n++;
    }
    return n;
  })();
}

const openers = (pair: Pair) => [() => pair.pdb.connect(), () => pair.sdb.connect()] as const;

describe(`split copy: key ranges in one exported snapshot (seed ${SEED})`, () => {
  let pair: Pair;
  beforeAll(async () => {
    const collation = await sharedCollation();
    console.log(`[engine-copy-split] seed ${SEED}, text key collation ${collation}`);
    pair = await makePair('split', { schema: splitSchema(collation), providerRows: `${SPLIT_ROWS} ANALYZE;`, tables: SPLIT_TABLES.map((table) => ({ schema: 'public', table })), copy: true });
  }, 120_000);
  afterAll(async () => pair?.close());

  it('every key type, split into ranges under writes that move rows across boundaries, ends equal row by row', { timeout: 180_000 }, async () => {
    const rng = createRng(SEED);
    let stop = false;
    const writer = startWriter(pair, rng, () => stop);
    const [p, s] = openers(pair);
    for (const table of SPLIT_TABLES) {
      const r = await engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table, ranges: 3, splitMinBytes: 0 });
      expect(r.ranges, `${table} was split`).toBeGreaterThan(1);
      await pair.sync();
    }
    stop = true;
    expect(await writer).toBeGreaterThan(0);
    await pair.syncUntilOk();
    for (const table of SPLIT_TABLES) await pair.expectEqual('public', table);
    // The indexes set aside are back, and nothing is left on record.
    const ix = await pair.sub.query("SELECT indexname FROM pg_indexes WHERE tablename IN ('t_int', 't_text') AND indexname IN ('t_int_v', 't_text_v') ORDER BY 1");
    expect(ix.rows.map((r) => r.indexname)).toEqual(['t_int_v', 't_text_v']);
    expect((await pair.sub.query('SELECT count(*)::int AS n FROM pgconvey.subscriber_table WHERE copy_indexes IS NOT NULL')).rows[0].n).toBe(0);
  });

  for (const side of ['subscriber', 'provider'] as const) {
    it(`a range stream killed mid-copy on the ${side} fails the copy, which starts again from scratch and ends exact`, { timeout: 180_000 }, async () => {
      const from = side === 'provider' ? 1_000_001 : 2_000_001;
      await pair.prov.query('INSERT INTO public.t_int SELECT g, g % 97, repeat(md5(g::text), 4) FROM generate_series($1::bigint, $1::bigint + 119999) g', [from]);
      await engine.resyncTable(pair.sub, 'q', 's', 'public', 't_int');
      const rng = createRng(SEED + (side === 'provider' ? 1 : 2));
      let stop = false;
      const writer = startWriter(pair, rng, () => stop);
      const [p, s] = openers(pair);
      const db = side === 'provider' ? pair.prov : pair.sub;
      const pattern = side === 'provider' ? 'COPY (SELECT%' : 'COPY %FROM STDIN%';
      const killer = (async () => {
        for (let i = 0; i < 600; i++) {
          const k = await db.query('SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1 AND state = $2 AND pid <> pg_backend_pid() LIMIT 1', [pattern, 'active']);
          if (k.rows[0]?.k) return true;
          await new Promise((r) => setTimeout(r, 10));
        }
        return false;
      })();
      await expect(engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table: 't_int', ranges: 2, splitMinBytes: 0 })).rejects.toThrow();
      expect(await killer).toBe(true);
      const row = (await pair.sub.query("SELECT state, copy_indexes, copy_failures FROM pgconvey.subscriber_table WHERE table_name = 't_int'")).rows[0];
      expect(row.state).toBe('pending');
      expect(row.copy_failures).toBeGreaterThan(0);
      // The secondary index was set aside and is on record for the retry.
      expect(JSON.stringify(row.copy_indexes)).toContain('t_int_v');
      await pair.sync(); // a batch while the table waits
      await pair.sub.query("UPDATE pgconvey.subscriber_table SET last_error_at = NULL WHERE table_name = 't_int'");
      const r = await engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table: 't_int', ranges: 2, splitMinBytes: 0 });
      expect(r.ranges).toBeGreaterThan(1);
      stop = true;
      await writer;
      await pair.syncUntilOk();
      await pair.expectEqual('public', 't_int');
      const ix = await pair.sub.query("SELECT 1 FROM pg_indexes WHERE indexname = 't_int_v'");
      expect(ix.rowCount).toBe(1);
    });
  }

  it('a resync during a split copy voids it; the next copy is exact', { timeout: 120_000 }, async () => {
    await engine.resyncTable(pair.sub, 'q', 's', 'public', 't_int');
    const [p, s] = openers(pair);
    const copy = engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table: 't_int', ranges: 2, splitMinBytes: 0, progressEveryMs: 10 });
    // Resync as soon as rows are loading.
    for (let i = 0; i < 500; i++) {
      const r = await pair.sub.query("SELECT rows_copied FROM pgconvey.subscriber_table WHERE table_name = 't_int' AND state = 'copying'");
      if (Number(r.rows[0]?.rows_copied ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await engine.resyncTable(pair.sub, 'q', 's', 'public', 't_int');
    await expect(copy).rejects.toThrow(/superseded/);
    expect((await pair.sub.query("SELECT state FROM pgconvey.subscriber_table WHERE table_name = 't_int'")).rows[0].state).toBe('pending');
    await engine.copyTable(p, s, { queue: 'q', consumer: 's', schema: 'public', table: 't_int', ranges: 2, splitMinBytes: 0 });
    await pair.syncUntilOk();
    await pair.expectEqual('public', 't_int');
  });

  it('a table removed from its subscription while its set-aside indexes are on record gets them back', async () => {
    // What a split copy killed after setting the indexes aside leaves behind (the test above shows it is recorded).
    const def = (await pair.sub.query("SELECT pg_get_indexdef('public.t_text_v'::regclass) AS d")).rows[0].d as string;
    await pair.sub.query('DROP INDEX public.t_text_v');
    await pair.sub.query("UPDATE pgconvey.subscriber_table SET copy_indexes = $1::jsonb WHERE table_name = 't_text'", [JSON.stringify([{ schema: 'public', name: 't_text_v', def }])]);
    await engine.removeSubscriberTable(pair.sub, 'q', 's', 'public', 't_text');
    expect((await pair.sub.query("SELECT pg_get_indexdef('public.t_text_v'::regclass) AS d")).rows[0].d).toBe(def);
  });
});

const SMALL = 30;

describe(`small tables batched under one snapshot (seed ${SEED})`, () => {
  let pair: Pair;
  const names = Array.from({ length: SMALL }, (_, i) => `s_${i}`);
  beforeAll(async () => {
    pair = await makePair('batch', {
      schema: names.map((n) => `CREATE TABLE public.${n} (id int PRIMARY KEY, v text NOT NULL); CREATE INDEX ${n}_v ON public.${n} (v);`).join('\n'),
      providerRows: names.map((n) => `INSERT INTO public.${n} SELECT g, md5(g::text) FROM generate_series(1, 200) g;`).join('\n'),
      tables: names.map((table) => ({ schema: 'public', table })),
      copy: true,
    });
  }, 120_000);
  afterAll(async () => pair?.close());

  it('many small tables copied in batches while every table is written end equal row by row', { timeout: 180_000 }, async () => {
    const rng = createRng(SEED + 3);
    let stop = false;
    const writer = (async () => {
      const c = await pair.session();
      let n = 0;
      while (!stop) {
        const t = rng.pick(names);
        const id = rng.int(1, 260);
        switch (rng.int(0, 3)) {
          case 0:
            await c.query(`INSERT INTO public.${t} VALUES ($1, 'w') ON CONFLICT (id) DO UPDATE SET v = excluded.v || 'u'`, [id]);
            break;
          case 1:
            await c.query(`DELETE FROM public.${t} WHERE id = $1`, [id]);
            break;
          case 2:
            await c.query(`UPDATE public.${t} SET id = id + 1000 WHERE id = $1`, [id]).catch(() => undefined);
            break;
          default:
            await c.query('BEGIN');
            await c.query(`UPDATE public.${t} SET v = v || '+' WHERE id = $1`, [id]);
            await c.query(`UPDATE public.${rng.pick(names)} SET v = v || '-' WHERE id = $1`, [id]);
            await c.query('COMMIT');
        }
        n++;
      }
      return n;
    })();
    await new Promise((r) => setTimeout(r, 300));
    const [p, s] = openers(pair);
    const copied = await engine.copyPendingTables(p, s, 'q', 's', { parallel: 2 });
    expect(copied).toBe(SMALL);
    // Batched: far fewer copy generations (one per batch) than tables.
    const gens = (await pair.sub.query('SELECT count(DISTINCT copy_generation)::int AS n FROM pgconvey.subscriber_table')).rows[0].n;
    expect(gens).toBeLessThanOrEqual(2);
    await pair.sync();
    stop = true;
    expect(await writer).toBeGreaterThan(0);
    await pair.syncUntilOk();
    for (const t of names) await pair.expectEqual('public', t);
    expect((await pair.sub.query("SELECT count(*)::int AS n FROM pg_indexes WHERE indexname LIKE 's\\_%\\_v'")).rows[0].n).toBe(SMALL);
    // Every copy pin is gone once all have merged.
    await pair.sync();
    expect((await pair.prov.query("SELECT count(*)::int AS n FROM pgconvey.consumer WHERE consumer_name LIKE 'copy:%'")).rows[0].n).toBe(0);
  });

  it('a batch whose copy the worker overtook: its tables replay their skipped range together and end equal', { timeout: 180_000 }, async () => {
    for (const t of names) await engine.resyncTable(pair.sub, 'q', 's', 'public', t);
    // A writer session on the subscriber's tables: the copy's first load waits for it after its pin (T) and snapshot (S) are fixed.
    const reader = await pair.sdb.connect();
    await reader.query('BEGIN');
    await reader.query(`LOCK TABLE ${names.map((n) => `public.${n}`).join(', ')} IN ROW EXCLUSIVE MODE`);
    const [p, s] = openers(pair);
    const copy = engine.copyPendingTables(p, s, 'q', 's', { parallel: 1 });
    const w = await pair.session();
    const rng = createRng(SEED + 5);
    const write = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const t = rng.pick(names);
        const id = rng.int(1, 260);
        if (rng.int(0, 2) === 0) await w.query(`DELETE FROM public.${t} WHERE id = $1`, [id]);
        else await w.query(`INSERT INTO public.${t} VALUES ($1, 'r') ON CONFLICT (id) DO UPDATE SET v = excluded.v || 'r'`, [id]);
      }
    };
    await waitFor('the copy pinned', async () => (await pair.prov.query("SELECT count(*)::int AS n FROM pgconvey.consumer WHERE consumer_name LIKE 'copy:%'")).rows[0].n > 0, 30_000);
    // Writes after T, and the worker past them (the tables are copying: not applied) before the copy records T.
    for (let round = 0; round < 3; round++) {
      await write(40);
      await pair.sync();
    }
    await reader.query('COMMIT');
    await reader.end();
    expect(await copy).toBe(SMALL);
    const behind = await pair.sub.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pgconvey.subscriber_table t JOIN pgconvey.subscription s USING (queue_name, consumer_name) WHERE t.state = 'catching-up' AND t.copy_tick < s.completed_tick",
    );
    expect(behind.rows[0]!.n).toBe(SMALL);
    await write(40);
    await pair.syncUntilOk();
    for (const t of names) await pair.expectEqual('public', t);
  });

  it('a table failing inside a batch gets its error, the tables of its uncommitted group wait again without one, and all end equal after the fix', { timeout: 180_000 }, async () => {
    await pair.sub.query("UPDATE pgconvey.subscriber_table SET state = 'pending'");
    // The subscriber refuses s_17's rows (a CHECK holds under the replica role; NOT VALID: its present rows are not checked).
    await pair.sub.query("ALTER TABLE public.s_17 ADD CONSTRAINT s_17_block CHECK (v = 'never') NOT VALID");
    const [p, s] = openers(pair);
    const failed: string[] = [];
    const copied = await engine.copyPendingTables(p, s, 'q', 's', { parallel: 1, onFailed: (_schema, table) => failed.push(table) }).catch(() => -1);
    expect(failed).toEqual(['s_17']);
    expect(copied).toBe(-1);
    const rows = (await pair.sub.query('SELECT table_name, state, last_error FROM pgconvey.subscriber_table ORDER BY table_name')).rows;
    const s17 = rows.find((r) => r.table_name === 's_17')!;
    expect(s17.state).toBe('pending');
    expect(s17.last_error).toContain('s_17_block');
    // No other table has an error; those not committed are pending again, the others were recorded copied.
    expect(rows.filter((r) => r.table_name !== 's_17' && r.last_error !== null)).toEqual([]);
    expect(rows.filter((r) => r.state === 'copying')).toEqual([]);
    await pair.sub.query('ALTER TABLE public.s_17 DROP CONSTRAINT s_17_block');
    // s_17 waits out its backoff (2 s after one failure): copy until nothing is pending.
    const deadline = Date.now() + 60_000;
    for (;;) {
      await engine.copyPendingTables(p, s, 'q', 's', { parallel: 2 });
      const left = (await pair.sub.query("SELECT count(*)::int AS n FROM pgconvey.subscriber_table WHERE state IN ('pending', 'copying')")).rows[0].n;
      if (left === 0) break;
      if (Date.now() > deadline) throw new Error(`${left} tables still wait for a copy`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await pair.syncUntilOk();
    for (const t of names) await pair.expectEqual('public', t);
  });
});
