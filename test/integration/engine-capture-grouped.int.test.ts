/**
 * add_table calls sharing one transaction (apply's groups, src/executor/groups.ts):
 * no new capture locks its table ACCESS EXCLUSIVE (readers of the tables a
 * group holds go on), the capture role is checked once per transaction
 * (own_capture) yet every capture function is owned by it, a group rolled back
 * leaves nothing, and the captures then record every change; a recapture in
 * a group replaces the triggers.
 */
import { describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer } from '../harness/servers.js';

describe('add_table, many in one transaction', () => {
  it('locks no new table ACCESS EXCLUSIVE, owns every function by the capture role, and rolls back whole', { timeout: 60_000 }, async () => {
    const db = await freshDatabase(sourceServer(), 'grouped');
    const names = Array.from({ length: 6 }, (_, i) => `g_${i}`);
    await db.query(names.map((n) => `CREATE TABLE public.${n} (id int PRIMARY KEY, v text);`).join('\n'));
    const c = await db.connect();
    try {
      await engine.installEngine(c);
      await engine.createQueue(c, 'q');
      // Rolled back: nothing is left of three captures.
      await c.query('BEGIN');
      for (const n of names.slice(0, 3)) await engine.addTable(c, 'q', 'public', n);
      await c.query('ROLLBACK');
      expect((await c.query("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgconvey\\_%'")).rows[0].n).toBe(0);
      expect((await c.query('SELECT count(*)::int AS n FROM pgconvey.captured_table')).rows[0].n).toBe(0);

      await c.query('BEGIN');
      for (const n of names) await engine.addTable(c, 'q', 'public', n);
      const locks = (await c.query<{ rel: string; mode: string }>(
        "SELECT l.relation::regclass::text AS rel, l.mode FROM pg_locks l WHERE l.pid = pg_backend_pid() AND l.relation = ANY ($1::regclass[]) ORDER BY 1, 2",
        [names.map((n) => `public.${n}`)],
      )).rows;
      expect(locks.filter((l) => l.mode === 'AccessExclusiveLock')).toEqual([]);
      expect(new Set(locks.map((l) => l.rel)).size).toBe(names.length);
      await c.query('COMMIT');
      const owners = (await c.query<{ owner: string; n: number }>(
        "SELECT pg_get_userbyid(p.proowner)::text AS owner, count(*)::int AS n FROM pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname ~ '^capture_(truncate_)?[0-9]+$' GROUP BY 1",
      )).rows;
      expect(owners).toEqual([{ owner: (await c.query('SELECT pgconvey.capture_role_name() AS r')).rows[0].r, n: names.length * 2 }]);

      // Every change of every table is an event, in order.
      await c.query(names.map((n) => `INSERT INTO public.${n} VALUES (1, 'a'); UPDATE public.${n} SET v = 'b'; DELETE FROM public.${n};`).join('\n'));
      const id = (await c.query("SELECT queue_id FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].queue_id;
      const events = (await c.query<{ op: string; n: number }>(
        `SELECT ev_op AS op, count(*)::int AS n FROM (SELECT ev_op FROM pgconvey.event_${id}_0 UNION ALL SELECT ev_op FROM pgconvey.event_${id}_1 UNION ALL SELECT ev_op FROM pgconvey.event_${id}_2) e GROUP BY 1 ORDER BY 1`,
      )).rows;
      expect(events).toEqual([{ op: 'D', n: names.length }, { op: 'I', n: names.length }, { op: 'U', n: names.length }]);
      // A recapture in a group (the triggers exist) replaces them: still one of each per table.
      await c.query('BEGIN');
      for (const n of names) await engine.addTable(c, 'q', 'public', n);
      await c.query('COMMIT');
      expect((await c.query("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgconvey\\_%'")).rows[0].n).toBe(names.length * 2);
    } finally {
      await c.end();
    }
  });
});
