/**
 * The ticker ticks for an event whose transaction took its event id before
 * the last tick but committed after it. The last tick's event count already
 * included that id, so "new events since the last tick" read 0 and the event
 * waited for the idle period (30 s by default) — seen as a 30 s stall of the
 * first write after a switch back under load. Now a tick is also due (after
 * max_lag) when a transaction in progress at the last tick has finished.
 * ticker_wait (the ticker daemon's call) asks ticker() in a loop inside one
 * statement: NULL after its wait, or the tick as soon as one is due.
 */
import { describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

for (const server of [sourceServer(), targetServer()]) {
  describe(`ticker on PostgreSQL ${server.major}`, () => {
    it('ticks for an event committed after a tick that counted its id', async () => {
      const db = await freshDatabase(server, 'ticklate');
      const admin = await db.connect();
      const writer = await db.connect();
      try {
        await engine.installEngine(admin);
        await engine.createQueue(admin, 'q', { tickerMaxLagMs: 0, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1000 });
        await admin.query('CREATE TABLE public.t (id int PRIMARY KEY)');
        await engine.addTable(admin, 'q', 'public', 't');
        // The writer takes its event id, then a tick comes before it commits.
        await writer.query('BEGIN');
        await writer.query('INSERT INTO public.t VALUES (1)');
        const first = await engine.tick(admin, 'q');
        expect(first).not.toBeNull();
        await writer.query('COMMIT');
        // Nothing else is written: the next tick must still come, carrying the event.
        expect(await engine.tick(admin, 'q')).not.toBeNull();
        // And once it has, no more ticks without new events.
        expect(await engine.tick(admin, 'q')).toBeNull();
      } finally {
        await writer.end();
        await admin.end();
      }
    });

    it('ticker_wait returns NULL after its wait with nothing due, and the tick as soon as one is due', async () => {
      const db = await freshDatabase(server, 'tickwait');
      const admin = await db.connect();
      const writer = await db.connect();
      const ticker = await db.connect();
      try {
        await engine.installEngine(admin);
        await engine.createQueue(admin, 'q', { tickerMaxLagMs: 0, tickerIdlePeriodMs: 3_600_000, tickerMaxCount: 1000 });
        await admin.query('CREATE TABLE public.t (id int PRIMARY KEY)');
        await engine.addTable(admin, 'q', 'public', 't');
        await engine.tick(admin, 'q'); // whatever add_table left
        const last = async () => String((await admin.query('SELECT max(tick_id) AS t FROM pgconvey.tick')).rows[0].t);
        const before = await last();
        // Nothing written: no tick within the wait.
        const idle = await ticker.query("SELECT pgconvey.ticker_wait('q', 100, 10) AS id");
        expect(idle.rows[0].id).toBeNull();
        expect(await last()).toBe(before);
        // A long wait (60 s) returns with the tick once an event commits during it: its tick includes the event.
        const waiting = ticker.query("SELECT pgconvey.ticker_wait('q', 60000, 10) AS id");
        await writer.query('INSERT INTO public.t VALUES (1)');
        const got = await waiting;
        expect(got.rows[0].id).not.toBeNull();
        expect(BigInt(got.rows[0].id)).toBeGreaterThan(BigInt(before));
        expect(await last()).toBe(String(got.rows[0].id));
        expect((await admin.query("SELECT count(*)::int AS n FROM pgconvey.tick t WHERE t.tick_id = $1 AND t.tick_event_seq > (SELECT tick_event_seq FROM pgconvey.tick WHERE tick_id = $2)", [got.rows[0].id, before])).rows[0].n).toBe(1);
      } finally {
        await ticker.end();
        await writer.end();
        await admin.end();
      }
    });
  });
}
