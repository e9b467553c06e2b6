/**
 * The ticker ticks as soon as events wait while a subscriber keeps up (a
 * consumer active within the last second, with no open batch), and keeps
 * the max_lag rhythm otherwise: a consumer behind (batch open), a consumer
 * gone quiet, or only copy pins; an idle queue gets no ticks; and a call
 * that finds no tick due writes nothing (no transaction id). The worker's
 * own tick (keep_up_tick, asked in its poll before it finishes its batch)
 * ticks only when the consumer's position, once that batch is finished, is
 * the queue's last tick and events were written since; both wait until the
 * last tick is ticker_min_interval old (keep_up_tick by sleeping in the poll).
 */
import { describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

for (const server of [sourceServer(), targetServer()]) {
  describe(`adaptive ticks on PostgreSQL ${server.major}`, () => {
    it('ticks at once for a subscriber that keeps up, on the max_lag rhythm otherwise', async () => {
      const db = await freshDatabase(server, 'tickfast');
      const admin = await db.connect();
      try {
        await engine.installEngine(admin);
        // max_lag an hour: any tick below comes from the adaptive rule (or the count, kept out of reach); no min interval.
        await engine.createQueue(admin, 'q', { tickerMaxLagMs: 3_600_000, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1_000_000, tickerMinIntervalMs: 0 });
        await admin.query('CREATE TABLE public.t (id int PRIMARY KEY)');
        await engine.addTable(admin, 'q', 'public', 't');
        const write = (id: number) => admin.query('INSERT INTO public.t VALUES ($1)', [id]);
        const setConsumer = (sql: string) => admin.query(`UPDATE pgconvey.consumer SET ${sql} WHERE consumer_name = 'c'`);

        // No consumer: events wait for max_lag.
        await write(1);
        expect(await engine.tick(admin, 'q')).toBeNull();

        // Only a copy pin (a consumer that consumes nothing): still no tick.
        await engine.registerConsumer(admin, 'q', 'copy:c:pin');
        expect(await engine.tick(admin, 'q')).toBeNull();

        // A consumer active just now, no open batch: tick at once; then none without new events.
        await engine.registerConsumer(admin, 'q', 'c');
        expect(await engine.tick(admin, 'q')).not.toBeNull();
        expect(await engine.tick(admin, 'q')).toBeNull();

        // Its batch open (behind, applying): events wait.
        await admin.query("SELECT * FROM pgconvey.next_batch('q', 'c', 50000)");
        await write(2);
        expect(await engine.tick(admin, 'q')).toBeNull();
        await admin.query("SELECT pgconvey.finish_batch('q', 'c', (SELECT batch_end_tick FROM pgconvey.consumer WHERE consumer_name = 'c'))");
        expect(await engine.tick(admin, 'q')).not.toBeNull();

        // Quiet for more than a second (stopped): events wait.
        await setConsumer("active_at = now() - interval '2 seconds'");
        await write(3);
        expect(await engine.tick(admin, 'q')).toBeNull();

        // A call that finds no tick due takes no transaction id (writes nothing).
        await admin.query('BEGIN');
        expect((await admin.query("SELECT pgconvey.ticker('q') AS t")).rows[0].t).toBeNull();
        expect((await admin.query('SELECT pg_catalog.txid_current_if_assigned() AS x')).rows[0].x).toBeNull();
        await admin.query('ROLLBACK');
      } finally {
        await admin.end();
      }
    });

    it('waits out ticker_min_interval for a subscriber that keeps up: ticker() until then, keep_up_tick in the poll', async () => {
      const db = await freshDatabase(server, 'tickmin');
      const admin = await db.connect();
      const other = await db.connect();
      try {
        await engine.installEngine(admin);
        await engine.createQueue(admin, 'q', { tickerMaxLagMs: 3_600_000, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1_000_000 });
        const settings = async () => (await engine.readQueues(admin)).find((q) => q.name === 'q')!.settings;
        expect((await settings()).tickerMinIntervalMs).toBe(20); // the migration's default
        await engine.configureQueue(admin, 'q', { tickerMinIntervalMs: 3_600_000 });
        expect((await settings()).tickerMinIntervalMs).toBe(3_600_000);
        await admin.query('CREATE TABLE public.t (id int PRIMARY KEY)');
        await engine.addTable(admin, 'q', 'public', 't');
        await engine.registerConsumer(admin, 'q', 'c');
        const keepUp = async () => (await admin.query<{ t: string | null }>("SELECT pgconvey.keep_up_tick('q', 'c', NULL) AS t")).rows[0]!.t;
        await admin.query('INSERT INTO public.t VALUES (1)');

        // The last tick younger than the min interval: no tick for the consumer that keeps up.
        expect(await engine.tick(admin, 'q')).toBeNull();

        // keep_up_tick waits until the last tick is min interval old (here 400 ms), then ticks.
        const takeBatch = async () => {
          await admin.query("SELECT * FROM pgconvey.next_batch('q', 'c', 50000)");
          await admin.query("SELECT pgconvey.finish_batch('q', 'c', (SELECT batch_end_tick FROM pgconvey.consumer WHERE consumer_name = 'c'))");
        };
        await engine.configureQueue(admin, 'q', { tickerMinIntervalMs: 400 });
        await engine.forceTick(admin, 'q');
        await takeBatch(); // the consumer at the last tick, just taken
        await admin.query('INSERT INTO public.t VALUES (2)');
        const t0 = Date.now();
        expect(await keepUp()).not.toBeNull();
        expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
        await takeBatch();

        // Nothing written yet right after a tick: the rest of the min interval is waited out, then NULL
        // when nothing came; events written meanwhile are ticked at its end (the worker is back right after
        // its batch, before its writers' next events).
        const t1 = Date.now();
        expect(await keepUp()).toBeNull();
        expect(Date.now() - t1).toBeGreaterThanOrEqual(300);
        await engine.forceTick(admin, 'q');
        await takeBatch();
        const waiting = keepUp();
        await other.query('INSERT INTO public.t VALUES (30)');
        expect(await waiting).not.toBeNull();
        await takeBatch();

        // Nothing written and the last tick older than the min interval: NULL at once, no wait.
        await admin.query('SELECT pg_sleep(0.45)');
        const t2 = Date.now();
        expect(await keepUp()).toBeNull();
        expect(Date.now() - t2).toBeLessThan(300);

        // ticker() ticks for it once the last tick is that old.
        await engine.forceTick(admin, 'q');
        await takeBatch();
        await admin.query('INSERT INTO public.t VALUES (3)');
        expect(await engine.tick(admin, 'q')).toBeNull();
        await admin.query('SELECT pg_sleep(0.45)');
        expect(await engine.tick(admin, 'q')).not.toBeNull();
        await takeBatch();

        // The queue row locked by another session (a removal, a new setting): no tick, and no wait for it.
        await engine.configureQueue(admin, 'q', { tickerMinIntervalMs: 0 });
        await admin.query('INSERT INTO public.t VALUES (4)');
        await other.query("BEGIN; SELECT 1 FROM pgconvey.queue WHERE queue_name = 'q' FOR UPDATE");
        expect(await keepUp()).toBeNull();
        await other.query('ROLLBACK');
        expect(await keepUp()).not.toBeNull();
      } finally {
        await other.end();
        await admin.end();
      }
    });

    it("ticks for the worker's poll only when its consumer keeps up (keep_up_tick)", async () => {
      const db = await freshDatabase(server, 'tickkeep');
      const admin = await db.connect();
      try {
        await engine.installEngine(admin);
        await engine.createQueue(admin, 'q', { tickerMaxLagMs: 3_600_000, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1_000_000 });
        await admin.query('CREATE TABLE public.t (id int PRIMARY KEY)');
        await engine.addTable(admin, 'q', 'public', 't');
        await engine.registerConsumer(admin, 'q', 'c');
        const write = (id: number) => admin.query('INSERT INTO public.t VALUES ($1)', [id]);
        const keepUp = async (finishing: string | null) => (await admin.query<{ t: string | null }>("SELECT pgconvey.keep_up_tick('q', 'c', $1) AS t", [finishing])).rows[0]!.t;
        const lastTick = async () => (await admin.query<{ t: string }>('SELECT max(tick_id)::text AS t FROM pgconvey.tick')).rows[0]!.t;
        const next = async () => (await admin.query<{ end_tick: string }>("SELECT end_tick::text AS end_tick FROM pgconvey.next_batch('q', 'c', 50000)")).rows[0]?.end_tick;
        const finish = (end: string) => admin.query("SELECT pgconvey.finish_batch('q', 'c', $1)", [end]);

        // Nothing written since the last tick: no tick (and no transaction id taken).
        await admin.query('BEGIN');
        expect(await keepUp(null)).toBeNull();
        expect((await admin.query('SELECT pg_catalog.txid_current_if_assigned() AS x')).rows[0].x).toBeNull();
        await admin.query('ROLLBACK');

        // At the last tick, events written: a tick, which is the next batch.
        await write(1);
        const t1 = await keepUp(null);
        expect(t1).not.toBeNull();
        expect(await keepUp(null)).toBeNull();
        expect(await next()).toBe(t1);

        // The batch open: ticks only for the poll that finishes that very batch, in the order poll does it.
        await write(2);
        expect(await keepUp(null)).toBeNull();
        expect(await keepUp(String(BigInt(t1!) + 5n))).toBeNull();
        await admin.query('BEGIN');
        const t2 = await keepUp(t1);
        expect(t2).not.toBeNull();
        await finish(t1!);
        expect(await next()).toBe(t2);
        await admin.query('COMMIT');

        // Behind: a tick after its position waits for it already (the ticker's), so no tick of its own.
        await engine.forceTick(admin, 'q');
        await finish(t2!);
        await write(3);
        expect(await keepUp(null)).toBeNull();
        expect(await lastTick()).not.toBe(t2);

        // A consumer not registered, a queue that does not exist: nothing.
        expect((await admin.query("SELECT pgconvey.keep_up_tick('q', 'nobody', NULL) AS t")).rows[0].t).toBeNull();
        expect((await admin.query("SELECT pgconvey.keep_up_tick('nope', 'c', NULL) AS t")).rows[0].t).toBeNull();

        // Outside READ COMMITTED (where a tick could not be ordered) it leaves the tick to the ticker.
        const before = await lastTick();
        await next();
        await finish((await admin.query<{ t: string }>("SELECT batch_end_tick::text AS t FROM pgconvey.consumer WHERE consumer_name = 'c'")).rows[0]!.t);
        await write(4);
        await admin.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        expect(await keepUp(null)).toBeNull();
        await admin.query('ROLLBACK');
        expect(await keepUp(null)).not.toBeNull();
        expect(await lastTick()).not.toBe(before);
      } finally {
        await admin.end();
      }
    });
  });
}
