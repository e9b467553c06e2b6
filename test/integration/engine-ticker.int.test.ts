/**
 * The ticker ticks for an event whose transaction took its event id before
 * the last tick but committed after it. The last tick's event count already
 * included that id, so "new events since the last tick" read 0 and the event
 * waited for the idle period (30 s by default) — seen as a 30 s stall of the
 * first write after a switch back under load. Now a tick is also due (after
 * max_lag) when a transaction in progress at the last tick has finished.
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
  });
}
