/**
 * The per-table stop on a schema mismatch (#17 part 3, engine/table-hold.ts):
 * an ADD COLUMN run directly on the provider on one of two tables, under a
 * writer on both. The worker holds that table alone (state `held`, its
 * last_error naming the column and the ALTER to run) from the batch's start
 * tick, its events kept on the provider by a pin; the other table keeps
 * replicating; after the ALTER on the subscriber the held table replays its
 * events and both sides are equal row by row (test/harness/exact.ts). Also:
 * a worker lost while held (a new worker object takes over) and during the
 * batch that resumes it; the pin keeping the events through rotation; a pin
 * gone (the table is copied again).
 */
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';

const SCHEMA = 'CREATE TABLE public."Orders" (id integer PRIMARY KEY, a integer); CREATE TABLE public.other (id integer PRIMARY KEY, v text);';
const TABLES = [
  { schema: 'public', table: 'Orders' },
  { schema: 'public', table: 'other' },
];
const ALTER = 'ALTER TABLE "public"."Orders" ADD COLUMN "Total" numeric(10,2) DEFAULT 0 NOT NULL;';

/** A writer on both tables (sometimes both in one transaction); writes "Total" once `withTotal` says so. */
function startWriter(session: pg.Client, rng: Rng, withTotal: () => boolean) {
  let stopped = false;
  let writes = 0;
  const done = (async () => {
    while (!stopped) {
      const id = rng.int(1, 300);
      const both = rng.chance(0.3);
      const parts: string[] = [];
      const orders = both || rng.chance(0.5);
      if (orders) {
        const op = rng.int(0, 2);
        if (op === 0) parts.push(`DELETE FROM "Orders" WHERE id = ${id}`);
        else if (withTotal()) parts.push(`INSERT INTO "Orders" (id, a, "Total") VALUES (${id}, ${rng.int(0, 999)}, ${rng.int(0, 9999)}.25) ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, "Total" = EXCLUDED."Total"`);
        else parts.push(`INSERT INTO "Orders" (id, a) VALUES (${id}, ${rng.int(0, 999)}) ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a`);
      }
      if (both || !orders) {
        const op = rng.int(0, 2);
        if (op === 0) parts.push(`DELETE FROM other WHERE id = ${id}`);
        else parts.push(`INSERT INTO other (id, v) VALUES (${id}, 'v${rng.int(0, 99999)}') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`);
      }
      await session.query(`BEGIN; ${parts.join('; ')}; COMMIT`);
      writes++;
    }
  })();
  // A failing test closes the session under the writer: its error is then not the test's.
  done.catch(() => undefined);
  return {
    writes: () => writes,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

async function tableState(sub: pg.Client, name: string): Promise<{ state: string; lastError: string | null }> {
  const t = (await engine.tableStatus(sub, 'q', 's')).find((x) => `${x.schema}.${x.table}` === name)!;
  return { state: t.state, lastError: t.lastError };
}

async function pins(prov: pg.Client): Promise<Array<{ name: string; last_tick: string }>> {
  return (await prov.query("SELECT consumer_name AS name, last_tick::text FROM pgconvey.consumer WHERE consumer_name LIKE 'copy:%' ORDER BY 1")).rows;
}

/** Steps `worker` (each step after a tick) until `done` holds; a step failing is an error of the test. */
async function stepUntil(pair: Pair, worker: engine.ApplyWorker, done: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    await engine.forceTick(pair.prov, 'q');
    for (let i = 0; i < 100; i++) if ((await worker.step()).kind === 'idle') break;
    if (await done()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
  }
}

/** A worker on connections of its own; `end()` closes them at once (as a killed process would, mid-transaction included). */
async function newWorker(pair: Pair, wrap?: { subscriber?: (c: pg.Client) => pg.Client; provider?: (c: pg.Client) => pg.Client }) {
  const p = await pair.pdb.connect();
  const s = await pair.sdb.connect();
  p.on('error', () => undefined);
  s.on('error', () => undefined);
  const worker = new engine.ApplyWorker(wrap?.provider ? wrap.provider(p) : p, wrap?.subscriber ? wrap.subscriber(s) : s, { queue: 'q', consumer: 's' });
  await worker.start();
  return {
    worker,
    end: async () => {
      await Promise.all([p.end().catch(() => undefined), s.end().catch(() => undefined)]);
    },
  };
}

/** A client whose queries matching `match` fail once `armed()` says so: the session is terminated first, as by a kill -9. */
function failing(client: pg.Client, admin: pg.Client, match: (sql: string) => boolean, armed: () => boolean): pg.Client {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== 'query') {
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      }
      return async (...args: unknown[]) => {
        const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string })?.text ?? '');
        if (armed() && match(text)) {
          const pid = (await target.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          throw new Error('killed (test)');
        }
        return (target.query as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** Ends the pair's own worker as a kill would (its subscriber session, which holds the worker's lock, terminated). */
async function killPairWorker(pair: Pair): Promise<void> {
  await pair.sub.query(
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND pid <> pg_backend_pid()",
  );
}

describe('a direct ALTER on the provider holds that table alone', () => {
  const pairs: Pair[] = [];
  afterAll(async () => {
    for (const p of pairs) await p.close();
  });

  async function setUp(prefix: string): Promise<Pair> {
    const pair = await makePair(prefix, { schema: SCHEMA, tables: TABLES });
    pairs.push(pair);
    await pair.prov.query('INSERT INTO "Orders" SELECT g, g FROM generate_series(1, 100) g; INSERT INTO other SELECT g, g::text FROM generate_series(1, 100) g');
    await pair.sync();
    return pair;
  }

  it('under a writer: the other table goes on, status names table and column, the held table catches up after the ALTER on new; rotation keeps its events', { timeout: 240_000 }, async () => {
    const seed = testSeed();
    console.log(`ddl-table-stop seed ${seed} (PGCONVEY_SEED to replay)`);
    const rng = createRng(seed);
    const pair = await setUp('ddlts');
    // Rotation every few transaction ids, ticks dropped as soon as no consumer needs them.
    await engine.configureQueue(pair.prov, 'q', { rotationTxids: 8, tickRetentionMs: 0 });
    let altered = false;
    const writer = startWriter(await pair.session(), rng, () => altered);
    const waitWrites = async (n: number) => {
      const target = writer.writes() + n;
      const until = Date.now() + 30_000;
      while (writer.writes() < target) {
        if (Date.now() > until) throw new Error('writer stalled');
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await waitWrites(50);
    await pair.prov.query('ALTER TABLE "Orders" ADD COLUMN "Total" numeric(10,2) NOT NULL DEFAULT 0');
    altered = true;
    await waitWrites(50);
    await stepUntil(pair, pair.worker, async () => (await tableState(pair.sub, 'public.Orders')).state === 'held', 'Orders held', 15_000);
    const held = await tableState(pair.sub, 'public.Orders');
    expect(held.lastError).toContain('lacks the column(s) Total');
    expect(held.lastError).toContain(`run on the subscriber: ${ALTER}`);
    expect((await tableState(pair.sub, 'public.other')).state).toBe('ok');
    // The pin holds the table's events from its held tick.
    const heldTick = (await pair.sub.query("SELECT copy_tick::text AS t FROM pgconvey.subscriber_table WHERE table_name = 'Orders'")).rows[0].t as string;
    expect((await pins(pair.prov)).map((p) => p.last_tick)).toEqual([heldTick]);

    // The other table keeps replicating: its rows written while Orders is held arrive.
    await waitWrites(100);
    const rotationsBefore = Number((await pair.prov.query("SELECT rotations FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].rotations);
    for (let round = 0; round < 6; round++) {
      await waitWrites(30);
      await engine.forceTick(pair.prov, 'q');
      for (let i = 0; i < 100; i++) if ((await pair.worker.step()).kind === 'idle') break;
      await engine.maintainQueue(pair.prov, 'q');
    }
    const rotations = Number((await pair.prov.query("SELECT rotations FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].rotations);
    console.log(`rotations while held: ${rotations - rotationsBefore}`);
    await writer.stop();
    await pair.sync();
    await pair.expectEqual('public', 'other');
    expect((await tableState(pair.sub, 'public.Orders')).state).toBe('held');
    const resumed = startWriter(await pair.session(), rng, () => true);

    // The DBA mirrors the change on new; the held table replays its events and is ok again, the pin gone.
    await pair.sub.query(ALTER);
    await stepUntil(pair, pair.worker, async () => (await tableState(pair.sub, 'public.Orders')).state === 'ok', 'Orders ok');
    await resumed.stop();
    await pair.sync();
    await pair.expectEqual('public', 'Orders');
    await pair.expectEqual('public', 'other');
    expect((await tableState(pair.sub, 'public.Orders')).lastError).toBeNull();
    expect(await pins(pair.prov)).toEqual([]);
  });

  it('a worker killed right after holding (its pin not yet registered), and one killed in the batch that resumes: nothing lost', { timeout: 240_000 }, async () => {
    const pair = await setUp('ddltk');
    await killPairWorker(pair);
    await pair.prov.query('ALTER TABLE "Orders" ADD COLUMN "Total" numeric(10,2) NOT NULL DEFAULT 0');
    await pair.prov.query('INSERT INTO "Orders" (id, a, "Total") VALUES (101, 101, 1.5); UPDATE "Orders" SET a = -a WHERE id < 10; UPDATE other SET v = v || \'!\' WHERE id < 20');
    await engine.forceTick(pair.prov, 'q');
    // Killed when it registers the pin (after the hold committed on the subscriber).
    const w1 = await newWorker(pair, { provider: (c) => failing(c, pair.prov, (sql) => sql.includes('INSERT INTO pgconvey.consumer'), () => true) });
    await expect(w1.worker.step()).rejects.toThrow('killed (test)');
    await w1.end();
    expect((await tableState(pair.sub, 'public.Orders')).state).toBe('held');
    expect(await pins(pair.prov)).toEqual([]);
    // A new worker registers the pin at the held tick before it applies anything, then applies the other table.
    const w2 = await newWorker(pair);
    await stepUntil(pair, w2.worker, async () => (await pins(pair.prov)).length === 1, 'the pin');
    await pair.expectEqual('public', 'other');
    await w2.end();
    await pair.prov.query('UPDATE "Orders" SET "Total" = id WHERE id < 30; UPDATE other SET v = v || \'?\' WHERE id > 50');

    // Killed at the commit of the batch that resumes the table: the resume is rolled back with it.
    await pair.sub.query(ALTER);
    let armed = true;
    const w3 = await newWorker(pair, { subscriber: (c) => failing(c, pair.prov, (sql) => sql.includes('UPDATE pgconvey.subscription SET completed_tick'), () => armed) });
    await engine.forceTick(pair.prov, 'q');
    await expect(w3.worker.step()).rejects.toThrow('killed (test)');
    armed = false;
    await w3.end();
    expect((await tableState(pair.sub, 'public.Orders')).state).toBe('held');
    const w4 = await newWorker(pair);
    await stepUntil(pair, w4.worker, async () => (await tableState(pair.sub, 'public.Orders')).state === 'ok', 'Orders ok');
    await stepUntil(pair, w4.worker, async () => true, 'a last batch');
    await w4.end();
    await pair.expectEqual('public', 'Orders');
    await pair.expectEqual('public', 'other');
    expect(await pins(pair.prov)).toEqual([]);
  });

  it('a held table whose pin is gone is copied again, never applied with a gap', { timeout: 120_000 }, async () => {
    const pair = await setUp('ddltl');
    await pair.prov.query('ALTER TABLE "Orders" ADD COLUMN "Total" numeric(10,2) NOT NULL DEFAULT 0');
    await pair.prov.query('INSERT INTO "Orders" (id, a, "Total") VALUES (101, 101, 1.5)');
    await stepUntil(pair, pair.worker, async () => (await tableState(pair.sub, 'public.Orders')).state === 'held', 'Orders held');
    await pair.prov.query('UPDATE other SET v = v || \'!\'');
    await pair.sync();
    // Someone removes the pin by hand; the events after the held tick may be gone. A new worker (the
    // old one has the pin as registered) finds it missing.
    await killPairWorker(pair);
    await pair.prov.query("DELETE FROM pgconvey.consumer WHERE consumer_name LIKE 'copy:%'");
    const w = await newWorker(pair);
    await stepUntil(pair, w.worker, async () => (await tableState(pair.sub, 'public.Orders')).state === 'pending', 'Orders pending');
    expect((await tableState(pair.sub, 'public.Orders')).lastError).toContain('copied again');
    await pair.sub.query(ALTER);
    await pair.prov.query('UPDATE "Orders" SET a = a + 1000 WHERE id % 3 = 0');
    // As `pgconvey apply` would (~ capture_table): the copy takes the captured column list.
    await engine.addTable(pair.prov, 'q', 'public', 'Orders');
    await engine.copyTable(
      () => pair.pdb.connect(),
      () => pair.sdb.connect(),
      { queue: 'q', consumer: 's', schema: 'public', table: 'Orders' },
    );
    await stepUntil(pair, w.worker, async () => (await tableState(pair.sub, 'public.Orders')).state === 'ok', 'Orders ok');
    await w.end();
    await pair.expectEqual('public', 'Orders');
    await pair.expectEqual('public', 'other');
  });
});
