/**
 * The worker's bookkeeping out of the hot path, checked row by row with no
 * pgconvey code (test/harness/exact.ts): the captured tables are cached by a
 * version read in the poll's round trip, so one long-lived worker must see a
 * table added, removed, captured again with another key, and resynced
 * mid-run; sequences travel in the poll and the commit's round trips and are
 * sent only when changed, never leaving the subscriber behind; the batch a
 * step applied is finished on the provider by the next poll, so a worker that
 * dies between its commit and that poll leaves an open batch the next worker
 * skips exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';
import { createRng, testSeed } from '../harness/random.js';

const SCHEMA = `
  CREATE TABLE public.a (id int PRIMARY KEY, u int NOT NULL UNIQUE, v text);
  CREATE TABLE public.b (id int PRIMARY KEY, v text);
  CREATE SEQUENCE public.s;
`;

const SEED = testSeed();

describe('worker bookkeeping: cached tables, sequences, deferred finish', () => {
  let pair: Pair;
  const rng = createRng(SEED);
  let next = 1;

  /** Random inserts, updates (also of the unique column) and deletes on a table of the shape of `a`. */
  async function churn(table: 'a' | 'b', n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const r = rng.next();
      if (r < 0.5) {
        const id = next++;
        await pair.prov.query(table === 'a' ? 'INSERT INTO public.a VALUES ($1, $1, $2)' : 'INSERT INTO public.b VALUES ($1, $2)', [id, `v${id}`]);
      } else if (r < 0.85) {
        await pair.prov.query(`UPDATE public.${table} SET v = v || 'x' WHERE id = $1`, [1 + Math.floor(rng.next() * next)]);
      } else {
        await pair.prov.query(`DELETE FROM public.${table} WHERE id = $1`, [1 + Math.floor(rng.next() * next)]);
      }
    }
  }

  beforeAll(async () => {
    console.log(`engine-worker-bookkeeping seed ${SEED}`);
    pair = await makePair('wbook', { schema: SCHEMA, tables: [{ schema: 'public', table: 'a' }] });
  });

  afterAll(async () => {
    await pair?.close();
  });

  it('one worker sees a table added, removed, captured with another key, and resynced mid-run', { timeout: 120_000 }, async () => {
    await churn('a', 200);
    await pair.sync();
    await pair.expectEqual('public', 'a');

    // Added on both sides while the worker runs (both empty): its events must be applied.
    await engine.addTable(pair.prov, 'q', 'public', 'b');
    await engine.addSubscriberTable(pair.sub, 'q', 's', 'public', 'b', 'ok');
    await churn('b', 200);
    await churn('a', 50);
    await pair.sync();
    await pair.expectEqual('public', 'a');
    await pair.expectEqual('public', 'b');

    // Captured again with another key (same table id, other key columns): deletes must go by the new key.
    await engine.addTable(pair.prov, 'q', 'public', 'a', ['u']);
    await pair.prov.query('UPDATE public.a SET id = id + 100000 WHERE id % 7 = 0');
    await pair.prov.query('DELETE FROM public.a WHERE id % 5 = 0');
    await churn('a', 50);
    await pair.sync();
    await pair.expectEqual('public', 'a');

    // Removed on both sides: its later events are not applied (and nothing fails).
    await engine.removeSubscriberTable(pair.sub, 'q', 's', 'public', 'b');
    await engine.removeTable(pair.prov, 'q', 'public', 'b');
    const before = Number((await pair.sub.query('SELECT count(*) FROM public.b')).rows[0].count);
    await churn('b', 30);
    await churn('a', 30);
    await pair.sync();
    await pair.expectEqual('public', 'a');
    expect(Number((await pair.sub.query('SELECT count(*) FROM public.b')).rows[0].count)).toBe(before);

    // Resynced: copied again under a new snapshot while writes go on, merged by the same worker.
    await engine.resyncTable(pair.sub, 'q', 's', 'public', 'a');
    await churn('a', 30);
    await engine.copyTable(
      () => pair.pdb.connect(),
      () => pair.sdb.connect(),
      { queue: 'q', consumer: 's', schema: 'public', table: 'a' },
    );
    await churn('a', 30);
    await pair.syncUntilOk();
    await pair.expectEqual('public', 'a');
  });

  it('sequences: the subscriber is never behind after a batch, and never moved back', { timeout: 60_000 }, async () => {
    await engine.addSequence(pair.prov, 'q', 'public', 's');
    const value = async (c: typeof pair.prov) => BigInt((await c.query('SELECT last_value FROM public.s')).rows[0].last_value);
    for (let round = 0; round < 3; round++) {
      await pair.prov.query('SELECT nextval($1) FROM generate_series(1, $2)', ['public.s', 5 + Math.floor(rng.next() * 50)]);
      await churn('a', 5);
      await pair.sync();
      expect(await value(pair.sub), `round ${round} (seed ${SEED})`).toBeGreaterThanOrEqual(await value(pair.prov));
    }
    // Ahead on the subscriber (e.g. by the switchover's margin): a batch leaves it there.
    await pair.sub.query("SELECT setval('public.s', 1000000)");
    await churn('a', 5);
    await pair.prov.query("SELECT nextval('public.s')");
    await pair.sync();
    expect(await value(pair.sub)).toBe(1000000n);
  });

  it('a worker that dies between its commit and the next poll leaves a batch the next worker skips once', { timeout: 60_000 }, async () => {
    const consumerRow = async () =>
      (await pair.prov.query("SELECT last_tick::text, batch_end_tick::text FROM pgconvey.consumer WHERE consumer_name = 's'")).rows[0] as { last_tick: string; batch_end_tick: string | null };
    const drain = async (w: engine.ApplyWorker) => {
      const kinds: string[] = [];
      for (let i = 0; i < 100; i++) {
        const r = await w.step();
        kinds.push(r.kind);
        if (r.kind === 'idle') return kinds;
      }
      throw new Error('worker did not become idle');
    };
    // The pair's worker applies a batch and is killed (its sessions terminated) before its next poll.
    await churn('a', 40);
    await engine.forceTick(pair.prov, 'q');
    expect((await pair.worker.step()).kind).toBe('applied');
    const open = await consumerRow();
    expect(open.batch_end_tick, 'applied, not yet finished on the provider').not.toBeNull();
    const mine = [(await pair.prov.query('SELECT pg_backend_pid() AS p')).rows[0].p, (await pair.sub.query('SELECT pg_backend_pid() AS p')).rows[0].p];
    for (const [c, db] of [
      [pair.prov, pair.pdb],
      [pair.sub, pair.sdb],
    ] as const) {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> ALL ($2::int[])', [db.name, mine]);
    }
    for (let round = 0; round < 3; round++) {
      const provider = await pair.pdb.connect();
      const subscriber = await pair.sdb.connect();
      const worker = new engine.ApplyWorker(provider, subscriber, { queue: 'q', consumer: 's' });
      // The killed session's lock goes with it (a moment after the terminate).
      for (let tries = 0; ; tries++) {
        try {
          await worker.start();
          break;
        } catch (err) {
          if (!(err instanceof engine.WorkerBusyError) || tries > 200) throw err;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      // First the batch applied before the kill: skipped (its position says applied), not applied twice.
      const kinds = await drain(worker);
      expect(kinds[0], `round ${round}`).toBe('skipped');
      await pair.expectEqual('public', 'a');
      expect(BigInt((await consumerRow()).last_tick)).toBeGreaterThanOrEqual(BigInt(open.batch_end_tick!));
      // Writes go on; this worker applies them and dies the same way (its connections just close).
      await churn('a', 30);
      await engine.forceTick(pair.prov, 'q');
      expect((await worker.step()).kind).toBe('applied');
      const left = await consumerRow();
      expect(left.batch_end_tick).not.toBeNull();
      open.batch_end_tick = left.batch_end_tick;
      if (round < 2) {
        await Promise.all([provider.end(), subscriber.end()]);
        continue;
      }
      // finishPending() closes the batch on the provider.
      await worker.finishPending();
      expect((await consumerRow()).batch_end_tick).toBeNull();
      expect((await drain(worker))[0]).toBe('idle');
      await pair.expectEqual('public', 'a');
      await Promise.all([provider.end(), subscriber.end()]);
    }
  });
});
