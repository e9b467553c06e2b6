/**
 * pgconvey.poll_state (the apply worker's poll reads the captured tables'
 * version, the copy pins and the sequence values through it): nothing while
 * no batch is open; with one open, the same version as the worker's own
 * CAPTURED_VERSION_SQL (so a table read once is not read again every batch),
 * another one once a captured table is removed, pins only of this consumer,
 * and every carried sequence's value in order.
 */
import { describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { CAPTURED_VERSION_SQL } from '../../src/engine/worker.js';
import { sqlFormat as format } from '../../src/kernel/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer } from '../harness/servers.js';

describe('poll_state', () => {
  it('answers only with a batch open, with the version the worker computes', async () => {
    const db = await freshDatabase(sourceServer(), 'pollstate');
    const c = await db.connect();
    try {
      await engine.installEngine(c);
      await engine.createQueue(c, 'q');
      await c.query('CREATE TABLE public.a (id int PRIMARY KEY, v text); CREATE TABLE public."B" (k text PRIMARY KEY); CREATE SEQUENCE public.s2; CREATE SEQUENCE public.s1');
      await engine.addTable(c, 'q', 'public', 'a');
      await engine.addTable(c, 'q', 'public', 'B');
      await c.query("SELECT pgconvey.add_sequence('q', 'public', 's2'), pgconvey.add_sequence('q', 'public', 's1')");
      await c.query("SELECT nextval('public.s1'), nextval('public.s1')");
      await engine.registerConsumer(c, 'q', 'c');
      await engine.registerConsumer(c, 'q', 'copy:c:1');
      await engine.registerConsumer(c, 'q', 'copy:other:1');
      const state = async () => (await c.query("SELECT * FROM pgconvey.poll_state('q', 'c')")).rows;
      expect(await state()).toEqual([]);
      await c.query('INSERT INTO public.a VALUES (1)');
      await engine.forceTick(c, 'q');
      await c.query("SELECT * FROM pgconvey.next_batch('q', 'c', 1000)");
      const [row] = await state();
      const version = (await c.query(format(CAPTURED_VERSION_SQL, 'q'))).rows[0].v;
      expect(row).toEqual({ v: version, pins: true, seq_schema: ['public', 'public'], seq_name: ['s1', 's2'], seq_value: ['2', '1'], seq_called: [true, false] });
      await c.query("SELECT pgconvey.unregister_consumer('q', 'copy:c:1')");
      expect((await state())[0].pins).toBe(false);
      // A committed change of the captured tables gives another version (the worker then reads them again).
      await c.query("SELECT pgconvey.remove_table('q', 'public', 'B')");
      expect((await state())[0].v).not.toBe(version);
    } finally {
      await c.end();
    }
  });
});
