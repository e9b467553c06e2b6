/**
 * pgconvey.small_batch_events (the worker's poll reads a small batch in its
 * own round trip) returns exactly the events the batch reader's cursor
 * returns for the same batch and tables, in the same order: random writers
 * whose transactions straddle ticks (running at the start tick, committed
 * or aborted before the end tick, or still running at it), rows of a table
 * left out, TRUNCATEs; and nothing for a batch counting more event ids than
 * the limit, or when no batch is open.
 */
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import * as engine from '../../src/engine/index.js';
import { batchFromRow, readBatch, type QueueEvent } from '../../src/engine/batch-reader.js';
import { freshDatabase } from '../harness/databases.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

for (const server of [sourceServer(), targetServer()]) describe(`small_batch_events on PostgreSQL ${server.major}`, () => {
  it('returns what the cursor reads, batch after batch', async () => {
    const seed = testSeed();
    console.log(`engine-small-batch seed ${seed} (PGCONVEY_SEED to replay)`);
    const rng = createRng(seed);
    const db = await freshDatabase(server, 'smallbatch');
    const admin = await db.connect();
    const writers: pg.Client[] = [];
    try {
      await engine.installEngine(admin);
      await engine.createQueue(admin, 'q', { tickerMaxLagMs: 3_600_000, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1_000_000 });
      await admin.query('CREATE TABLE public.t (id int PRIMARY KEY, v text); CREATE TABLE public.u (id int PRIMARY KEY)');
      await engine.addTable(admin, 'q', 'public', 't');
      await engine.addTable(admin, 'q', 'public', 'u');
      await engine.registerConsumer(admin, 'q', 'c');
      const ids = (await admin.query<{ table_name: string; table_id: number }>('SELECT table_name, table_id FROM pgconvey.captured_table')).rows;
      const tId = ids.find((r) => r.table_name === 't')!.table_id;
      const uId = ids.find((r) => r.table_name === 'u')!.table_id;
      for (let i = 0; i < 3; i++) writers.push(await db.connect());
      const open = new Set<number>();
      let key = 0;
      let compared = 0;
      for (let round = 0; round < 40; round++) {
        // Each writer: maybe begin, write a few rows (t and u), maybe end (commit or roll back).
        for (let w = 0; w < writers.length; w++) {
          const c = writers[w]!;
          if (!open.has(w) && rng.chance(0.6)) {
            await c.query('BEGIN');
            open.add(w);
          }
          // Each writer updates only rows it inserted itself (no writer waits for another).
          for (let n = rng.int(0, 3); n > 0; n--) {
            const k = ++key;
            if (rng.chance(0.7)) await c.query('INSERT INTO public.t VALUES ($1, $2)', [k, `v${k}`]);
            else await c.query('INSERT INTO public.u VALUES ($1)', [k]);
            if (rng.chance(0.3)) await c.query('UPDATE public.t SET v = v || $2 WHERE id = $1', [k, 'x']);
          }
          if (open.has(w) && rng.chance(0.5)) {
            await c.query(rng.chance(0.8) ? 'COMMIT' : 'ROLLBACK');
            open.delete(w);
          }
        }
        if (open.size === 0 && rng.chance(0.2)) await admin.query('TRUNCATE public.u');
        await engine.forceTick(admin, 'q');
        const { rows } = await admin.query("SELECT * FROM pgconvey.next_batch('q', 'c', 50000)");
        if (!rows[0]) continue;
        const batch = batchFromRow(rows[0])!;
        const tables = rng.chance(0.5) ? [tId] : [tId, uId, 0];
        const viaCursor: QueueEvent[] = [];
        await readBatch(admin, batch, new Set(tables), async (events) => void viaCursor.push(...events), { maxRows: 7 });
        const limit = rng.pick([500, Number(batch.eventEstimate), Math.max(0, Number(batch.eventEstimate) - 1)]);
        const small = (await admin.query('SELECT * FROM pgconvey.small_batch_events($1, $2, $3::int[], $4)', ['q', 'c', tables, limit])).rows.map(
          (r): QueueEvent => ({ txid: r.ev_txid, table: r.ev_table, op: r.ev_op, shape: r.ev_shape, key: r.ev_key, data: r.ev_data }),
        );
        if (Number(batch.eventEstimate) > limit) expect(small, `round ${round}: a batch counting more ids than the limit gives nothing`).toEqual([]);
        else if (small.length <= limit) {
          expect(small, `round ${round}`).toEqual(viaCursor);
          compared += viaCursor.length;
        } else expect(viaCursor.length, `round ${round}: more rows than the limit only when the batch has them`).toBeGreaterThan(limit);
        await admin.query("SELECT pgconvey.finish_batch('q', 'c', $1)", [batch.endTick]);
      }
      for (const w of open) await writers[w]!.query('COMMIT');
      expect(compared, 'events compared').toBeGreaterThan(20);
      // No batch open: nothing.
      expect((await admin.query("SELECT * FROM pgconvey.small_batch_events('q', 'c', '{1}', 500)")).rows).toEqual([]);
    } finally {
      for (const w of writers) await w.end().catch(() => undefined);
      await admin.end();
    }
  });
});
