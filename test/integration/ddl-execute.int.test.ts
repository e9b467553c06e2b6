/**
 * `pgconvey execute` against real servers (#17): scripts run on the root in
 * one transaction with their queue event, and each subscriber runs them at
 * exactly that position, once. Under a writer on the provider (its own
 * session settings: DateStyle SQL/DMY, TimeZone Asia/Tokyo), ADD COLUMN with a
 * default, DROP COLUMN, RENAME COLUMN, ALTER TYPE (text → date, which needs
 * the capture's pinned DateStyle after it) and CREATE INDEX are executed
 * with rows written just before and just after each; both sides are then
 * compared row by row (test/harness/exact.ts) and have the same columns. A
 * script run again is skipped, a changed one refused; scripts that write
 * rows, drop a replicated table or change its key are refused with nothing
 * done; a script failing on the subscriber holds the queue at it with a
 * clear error and goes on after the subscriber is fixed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';
import { createRng, testSeed } from '../harness/random.js';

const SCHEMA = `
  CREATE TABLE public.t (id integer PRIMARY KEY, a integer, b text, c text, f text, note text);
  CREATE TABLE public.other (id integer PRIMARY KEY, v text);
`;

/** A writer on its own session: random inserts, updates and deletes of columns every script keeps (id, a). */
async function startWriter(pair: Pair, seed: number) {
  const rng = createRng(seed);
  const session = await pair.session("SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Tokyo'");
  let stop = false;
  let writes = 0;
  const done = (async () => {
    while (!stop) {
      const id = rng.int(1, 300);
      const op = rng.int(0, 9);
      await session.query('BEGIN');
      if (op < 5) await session.query('INSERT INTO public.t (id, a) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a', [id, rng.int(0, 1e6)]);
      else if (op < 8) await session.query('UPDATE public.t SET a = a + 1 WHERE id = $1', [id]);
      else await session.query('DELETE FROM public.t WHERE id = $1', [id]);
      await session.query('INSERT INTO public.other (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v', [id, String(rng.next())]);
      await session.query('COMMIT');
      writes++;
    }
  })();
  return {
    get writes() {
      return writes;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

/** A worker on new sessions, as the daemon makes after an error. */
async function freshWorker(pair: Pair) {
  const [p, s] = [await pair.pdb.connect(), await pair.sdb.connect()];
  const worker = new engine.ApplyWorker(p, s, { queue: 'q', consumer: 's' });
  await worker.start();
  return Object.assign(worker, { close: async () => void (await Promise.all([p.end(), s.end()])) });
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('pgconvey execute: DDL in queue order', () => {
  const pairs: Pair[] = [];
  afterAll(async () => {
    for (const p of pairs) await p.close();
  });

  it('ADD COLUMN with a default, DROP, RENAME, ALTER TYPE and CREATE INDEX under a writer: replicated at their position, row by row equal', { timeout: 180_000 }, async () => {
    const seed = testSeed();
    console.log(`ddl-execute seed ${seed} (PGCONVEY_SEED=${seed} replays it)`);
    const pair = await makePair('ddlx', {
      schema: SCHEMA,
      tables: [
        { schema: 'public', table: 't' },
        { schema: 'public', table: 'other' },
      ],
    });
    pairs.push(pair);
    const exec = await pair.session();
    const before = await pair.session("SET DateStyle = 'SQL, DMY'");
    const writer = await startWriter(pair, seed);
    const scripts: Array<[string, string, string, string]> = [
      // name, script, a row written just before, a row written just after (in the new shape)
      ['001_add.sql', 'ALTER TABLE t ADD COLUMN d integer NOT NULL DEFAULT 7;', "INSERT INTO t (id, a, b, c, f) VALUES (1001, 1, 'b1', 'c1', '2021-02-03')", 'INSERT INTO t (id, a, b, c, f, d) VALUES (1002, 2, $$b2$$, $$c2$$, $$2021-02-04$$, 42)'],
      ['002_drop.sql', 'ALTER TABLE t DROP COLUMN b;', "INSERT INTO t (id, a, b, c, f, d) VALUES (1003, 3, 'b3', 'c3', '2021-02-05', 3)", "INSERT INTO t (id, a, c, f, d) VALUES (1004, 4, 'c4', '2021-02-06', 4)"],
      ['003_rename.sql', 'ALTER TABLE t RENAME COLUMN c TO c2;', "UPDATE t SET c = 'c-before' WHERE id = 1001", "UPDATE t SET c2 = 'c-after' WHERE id = 1002"],
      ['004_type.sql', 'ALTER TABLE t ALTER COLUMN f TYPE date USING f::date;', "INSERT INTO t (id, a, c2, f) VALUES (1005, 5, 'c5', '2021-03-04')", "INSERT INTO t (id, a, c2, f) VALUES (1006, 6, 'c6', DATE '2021-03-05')"],
      ['005_index.sql', 'CREATE INDEX t_a_idx ON t (a);\nCREATE UNIQUE INDEX t_note_idx ON t (note);', "UPDATE t SET note = 'n-before' WHERE id = 1001", "UPDATE t SET note = 'n-after' WHERE id = 1002"],
    ];
    for (const [name, sql, rowBefore, rowAfter] of scripts) {
      await before.query(rowBefore);
      expect(await engine.executeScript(exec, 'q', name, sql)).toMatchObject({ outcome: 'applied' });
      await before.query(rowAfter);
      // Some scripts land in the same batch as their neighbours' rows, some in a batch of their own.
      if (name !== '002_drop.sql') await pair.sync();
    }
    await waitFor('the writer to have written', async () => writer.writes > 50);
    await writer.stop();
    await pair.sync();
    await pair.expectEqual('public', 't');
    await pair.expectEqual('public', 'other');
    // The row written after the ALTER TYPE, by a session whose DateStyle is DMY, is the same date on both sides.
    const f = await pair.sub.query("SELECT f::text AS f, d, c2 FROM t WHERE id IN (1006, 1002) ORDER BY id");
    expect(f.rows).toEqual([
      { f: '2021-02-04', d: 42, c2: 'c-after' },
      { f: '2021-03-05', d: 7, c2: 'c6' },
    ]);
    const idx = await pair.sub.query("SELECT indexname FROM pg_indexes WHERE tablename = 't' AND indexname IN ('t_a_idx', 't_note_idx') ORDER BY 1");
    expect(idx.rows.map((r) => r.indexname)).toEqual(['t_a_idx', 't_note_idx']);
    const applied = await engine.appliedScripts(pair.sub, 'q', 's');
    expect(applied.map((a) => a.name)).toEqual(scripts.map((s) => s[0]));
    // The capture follows the table: its columns are recorded as they are now.
    const cap = await pair.prov.query("SELECT columns FROM pgconvey.captured_table WHERE table_name = 't'");
    expect(cap.rows[0].columns).toEqual(['id', 'a', 'c2', 'f', 'note', 'd']);

    // Run again: skipped, nothing queued; a changed script under a used name: refused.
    expect(await engine.executeScript(exec, 'q', '001_add.sql', scripts[0]![1])).toMatchObject({ outcome: 'skipped' });
    await expect(engine.executeScript(exec, 'q', '001_add.sql', 'ALTER TABLE t ADD COLUMN zz int;')).rejects.toMatchObject({ code: 'execute_name_conflict' });
    await pair.sync();
    expect((await engine.appliedScripts(pair.sub, 'q', 's')).length).toBe(scripts.length);
  });

  it('refuses scripts that write rows, drop a replicated table or change its key, with nothing done', { timeout: 120_000 }, async () => {
    const pair = await makePair('ddlr', { schema: SCHEMA, tables: [{ schema: 'public', table: 't' }] });
    pairs.push(pair);
    const cases: Array<[string, string]> = [
      ['ALTER TABLE t ADD COLUMN x int; INSERT INTO t (id) VALUES (1);', 'execute_writes_rows'],
      ['ALTER TABLE t ADD COLUMN x int; DROP TABLE t;', 'execute_drops_replicated_table'],
      ['ALTER TABLE t RENAME TO t_old;', 'execute_drops_replicated_table'],
      ['ALTER TABLE t DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, a);', 'execute_changes_key'],
      ['ALTER TABLE t ADD COLUMN x int; ALTER TABLE t ADD COLUMN x int;', 'execute_failed'],
      ['CREATE INDEX CONCURRENTLY t_c ON t (a);', 'execute_failed'],
    ];
    for (const [i, [sql, code]] of cases.entries()) {
      await expect(engine.executeScript(pair.prov, 'q', `bad_${i}.sql`, sql), sql).rejects.toMatchObject({ code });
    }
    await expect(engine.executeScript(pair.prov, 'nope', 'x.sql', 'SELECT 1')).rejects.toMatchObject({ code: 'execute_unknown_queue' });
    const cols = await pair.prov.query("SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'public.t'::regclass AND attnum > 0 AND NOT attisdropped");
    expect(cols.rows[0].n).toBe(6);
    expect((await pair.prov.query('SELECT count(*)::int AS n FROM pgconvey.ddl_script')).rows[0].n).toBe(0);
    await pair.sync();
  });

  it('a script failing on the subscriber holds the queue at it, with its error; after the fix it goes on by itself', { timeout: 120_000 }, async () => {
    const pair = await makePair('ddlf', { schema: SCHEMA, tables: [{ schema: 'public', table: 't' }] });
    pairs.push(pair);
    await pair.prov.query("CREATE TYPE public.mood AS ENUM ('calm', 'busy')"); // only on the provider
    await pair.prov.query("INSERT INTO t (id, a) VALUES (1, 1)");
    await engine.executeScript(pair.prov, 'q', '010_mood.sql', 'ALTER TABLE t ADD COLUMN m mood;');
    await pair.prov.query("INSERT INTO t (id, a, m) VALUES (2, 2, 'busy')");
    await engine.forceTick(pair.prov, 'q');
    // The pair's own worker steps aside (its session ends, as a killed worker's does). Only in this test's database:
    // the server is shared with the other test files, whose workers hold advisory locks too.
    await pair.sub.query(
      "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    // Every retry fails the same way, with the same clear error (the daemon retries with backoff, reconnecting each time).
    for (let attempt = 0; attempt < 2; attempt++) {
      const worker = await freshWorker(pair);
      const err = await worker.step().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(engine.ScriptApplyError);
      expect(err).toMatchObject({ code: 'script_failed_on_subscriber' });
      expect((err as Error).message).toMatch(/^script "010_mood\.sql" \(pgconvey execute\) failed on the subscriber: type "mood" does not exist \(SQLSTATE 42704\); replication of this queue waits at the script/);
      await worker.close();
    }
    // Nothing of the batch is applied: not the row before the script either (one transaction).
    expect((await pair.sub.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(0);
    await pair.sub.query("CREATE TYPE public.mood AS ENUM ('calm', 'busy')");
    const worker = await freshWorker(pair);
    while ((await worker.step()).kind !== 'idle');
    await worker.close();
    await pair.expectEqual('public', 't');
    expect((await engine.appliedScripts(pair.sub, 'q', 's')).map((a) => a.name)).toEqual(['010_mood.sql']);
  });

  it('a script marked applied by hand on a subscriber is skipped there', { timeout: 120_000 }, async () => {
    const pair = await makePair('ddlm', { schema: SCHEMA, tables: [{ schema: 'public', table: 't' }] });
    pairs.push(pair);
    const sql = 'ALTER TABLE t ADD COLUMN m text;';
    await engine.executeScript(pair.prov, 'q', '011.sql', sql);
    await pair.sub.query('ALTER TABLE t ADD COLUMN m text'); // the DBA did it there already
    expect(await engine.markScriptApplied(pair.sub, 'q', 's', '011.sql', sql)).toBe(true);
    expect(await engine.markScriptApplied(pair.sub, 'q', 's', '011.sql', sql)).toBe(false);
    await pair.prov.query("INSERT INTO t (id, a, m) VALUES (3, 3, 'x')");
    await pair.sync();
    await pair.expectEqual('public', 't');
  });
});
