/**
 * Read-ahead of the next batch (batch-reader.ts holdNextBatch): a worker
 * behind has the provider compute batch N+1 (a cursor WITH HOLD) while batch
 * N finishes on the subscriber, and reads it only when the poll gives that
 * very batch. Checked row by row with no pgconvey code (test/harness/exact.ts):
 * a backlog of large batches (inserts, updates, key updates, deletes, a
 * TRUNCATE in the middle) applied through held batches; and a held batch the
 * poll does not give (a later tick fits in the batch by then) closed unread,
 * the batch read as usual.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';
import { createRng, testSeed } from '../harness/random.js';

const SCHEMA = `
  CREATE TABLE public.a (id int PRIMARY KEY, u int NOT NULL UNIQUE, v text);
  CREATE TABLE public.h (id bigserial PRIMARY KEY, a int, v text);
`;

const SEED = testSeed();

describe('worker read-ahead of the next batch', () => {
  let pair: Pair;
  const rng = createRng(SEED);
  let next = 1;

  /** About `n` events in one transaction: inserts, updates, key updates and deletes of a, inserts of h. */
  async function round(n: number): Promise<void> {
    await pair.prov.query('BEGIN');
    const inserts = Math.floor(n * 0.4);
    await pair.prov.query("INSERT INTO public.a SELECT g, g, 'v' || g FROM generate_series($1::int, $2::int) g", [next, next + inserts - 1]);
    next += inserts;
    const m = 3 + Math.floor(rng.next() * 5);
    await pair.prov.query(`UPDATE public.a SET v = v || 'x' WHERE id % ${m} = 0 AND id > $1`, [Math.max(0, next - n)]);
    await pair.prov.query(`UPDATE public.a SET id = id + 1000000 WHERE id % 29 = ${Math.floor(rng.next() * 29)} AND id < 1000000 AND id > $1`, [Math.max(0, next - 2 * n)]);
    await pair.prov.query(`DELETE FROM public.a WHERE id % 13 = ${Math.floor(rng.next() * 13)} AND id > $1`, [Math.max(0, next - 2 * n)]);
    await pair.prov.query("INSERT INTO public.h (a, v) SELECT g, 'h' || g FROM generate_series(1, $1::int) g", [Math.floor(n * 0.3)]);
    await pair.prov.query('COMMIT');
  }

  beforeAll(async () => {
    console.log(`engine-read-ahead seed ${SEED}`);
    pair = await makePair('rahead', { schema: SCHEMA, tables: [{ schema: 'public', table: 'a' }, { schema: 'public', table: 'h' }], maxBatchEvents: 1200 });
  });

  afterAll(async () => {
    await pair?.close();
  });

  it('applies a backlog of large batches through held batches, exactly', { timeout: 120_000 }, async () => {
    // The worker does not step while the backlog is written: one tick per round of 600–900 events, so each
    // batch (at most 1,200 event ids) is one tick, larger than the poll's small batches.
    for (let i = 0; i < 8; i++) {
      await round(600 + Math.floor(rng.next() * 300));
      if (i === 4) await pair.prov.query('TRUNCATE public.h');
      await engine.forceTick(pair.prov, 'q');
    }
    await pair.sync();
    await pair.expectEqual('public', 'a');
    await pair.expectEqual('public', 'h');
    expect(pair.worker.readAhead.read).toBeGreaterThanOrEqual(5);
    expect(pair.worker.readAhead.read).toBeLessThanOrEqual(pair.worker.readAhead.held);
  });

  it('closes a held batch the poll does not give, and reads that batch as usual', { timeout: 120_000 }, async () => {
    await pair.sync();
    const before = { ...pair.worker.readAhead };
    // Ticks of 650–900 events (two do not fit in a batch): the first step applies one and holds the next (as the ticks stood then).
    for (let i = 0; i < 2; i++) {
      await round(600);
      await engine.forceTick(pair.prov, 'q');
    }
    const first = await pair.worker.step();
    expect(first.kind).toBe('applied');
    // A small tick after the held one: the next batch now ends there (still within 1,200 event ids).
    await pair.prov.query("INSERT INTO public.h (a, v) VALUES (-1, 'after the held tick')");
    await engine.forceTick(pair.prov, 'q');
    const second = await pair.worker.step();
    expect(second.kind).toBe('applied');
    expect(pair.worker.readAhead.held).toBeGreaterThan(before.held);
    expect(pair.worker.readAhead.read).toBe(before.read);
    await pair.sync();
    await pair.expectEqual('public', 'a');
    await pair.expectEqual('public', 'h');
  });
});
