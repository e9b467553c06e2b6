/**
 * The ticker ticks as soon as events wait while a subscriber keeps up (a
 * consumer active within the last second, with no open batch), and keeps
 * the max_lag rhythm otherwise: a consumer behind (batch open), a consumer
 * gone quiet, or only copy pins; an idle queue gets no ticks; and a call
 * that finds no tick due writes nothing (no transaction id).
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
        // max_lag an hour: any tick below comes from the adaptive rule (or the count, kept out of reach).
        await engine.createQueue(admin, 'q', { tickerMaxLagMs: 3_600_000, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1_000_000 });
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
  });
}
