/**
 * add_table calls sharing one transaction (apply's groups, src/executor/groups.ts):
 * no new capture locks its table ACCESS EXCLUSIVE (readers of the tables a
 * group holds go on), the capture role is checked once per transaction
 * (own_capture) yet every capture function is owned by it, a group rolled back
 * leaves nothing, and the captures then record every change; a recapture in
 * a group replaces the triggers. add_tables (many tables in one call, as
 * apply's batches make them), by an installer with CREATEROLE and no
 * superuser, on both majors: every function owned and granted as add_table
 * leaves it, the capture role without CREATE on the schema after, every
 * change captured, and a call with one bad table leaves nothing.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase, serverQuery } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

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

  for (const server of [sourceServer(), targetServer()]) {
    it(`add_tables: one call captures many, owned and granted as add_table does (PostgreSQL ${server.major})`, { timeout: 90_000 }, async () => {
      const db = await freshDatabase(server, 'addtables');
      const dba = `dba_addtables_${Math.random().toString(36).slice(2, 8)}`;
      await serverQuery(server, `CREATE ROLE ${dba} LOGIN CREATEROLE`);
      const role = (await db.query<{ r: string }>("SELECT 'pgconvey_capture_' || oid AS r FROM pg_catalog.pg_database WHERE datname = current_database()")).rows[0]!.r;
      const pk = server.major >= 11 ? ', PRIMARY KEY (id, at)' : '';
      await db.query(`GRANT CREATE ON DATABASE ${db.name} TO ${dba};
        CREATE TABLE public.a (id int PRIMARY KEY, v text);
        CREATE TABLE public.b (id int NOT NULL UNIQUE, v text);
        CREATE TABLE public.p (id int NOT NULL, at date NOT NULL, v text${pk}) PARTITION BY RANGE (at);
        CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
        CREATE TABLE public.c (k text PRIMARY KEY, v int);
        CREATE TABLE public.x (id int PRIMARY KEY);
        ALTER TABLE public.a OWNER TO ${dba}; ALTER TABLE public.b OWNER TO ${dba}; ALTER TABLE public.p OWNER TO ${dba};
        ALTER TABLE public.p1 OWNER TO ${dba}; ALTER TABLE public.c OWNER TO ${dba}; ALTER TABLE public.x OWNER TO ${dba}`);
      const c = new pg.Client({ ...db.config, user: dba });
      await c.connect();
      try {
        await engine.installEngine(c);
        await engine.createQueue(c, 'q');
        // One bad table (missing) in the call: nothing of the others is left.
        await expect(engine.addTables(c, 'q', [{ schema: 'public', table: 'x' }, { schema: 'public', table: 'missing' }])).rejects.toThrow(/does not exist/);
        expect((await c.query('SELECT count(*)::int AS n FROM pgconvey.captured_table')).rows[0].n).toBe(0);
        expect((await c.query("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgconvey\\_%'")).rows[0].n).toBe(0);

        const ids = await engine.addTables(c, 'q', [
          { schema: 'public', table: 'a' },
          { schema: 'public', table: 'b', keyColumns: ['id'] },
          { schema: 'public', table: 'p', keyColumns: server.major >= 11 ? null : ['id', 'at'] },
          { schema: 'public', table: 'c' },
        ]);
        expect(ids.length).toBe(4);
        const named = (await c.query<{ t: string; id: number }>('SELECT table_name AS t, table_id AS id FROM pgconvey.captured_table ORDER BY table_id')).rows;
        expect(named).toEqual([{ t: 'a', id: ids[0] }, { t: 'b', id: ids[1] }, { t: 'p', id: ids[2] }, { t: 'c', id: ids[3] }]);
        const fns = (await c.query<{ f: string; owner: string; public_exec: boolean; role_exec: boolean }>(
          `SELECT p.proname AS f, pg_catalog.pg_get_userbyid(p.proowner) AS owner,
                  pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
                  EXISTS (SELECT FROM pg_catalog.aclexplode(p.proacl) x WHERE x.grantee = $1::regrole AND x.privilege_type = 'EXECUTE') AS role_exec
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname ~ '^capture_(truncate_|truncate_rows_|current_)?[0-9]+$' ORDER BY 1`,
          [role],
        )).rows;
        const [a, b, pid, cid] = ids as [number, number, number, number];
        const expected = [
          ...[a, b, cid].flatMap((id) => [
            { f: `capture_${id}`, owner: role, public_exec: false, role_exec: true },
            { f: `capture_current_${id}`, owner: dba, public_exec: false, role_exec: true },
            { f: `capture_truncate_${id}`, owner: role, public_exec: false, role_exec: true },
          ]),
          { f: `capture_${pid}`, owner: role, public_exec: false, role_exec: true },
          { f: `capture_truncate_${pid}`, owner: role, public_exec: false, role_exec: true },
          { f: `capture_truncate_rows_${pid}`, owner: dba, public_exec: false, role_exec: false },
        ].sort((x, y) => (x.f < y.f ? -1 : x.f > y.f ? 1 : 0));
        expect(fns).toEqual(expected);
        // CREATE on the schema was the capture role's for the ALTER … OWNER statements only.
        expect((await c.query("SELECT pg_catalog.has_schema_privilege($1, 'pgconvey', 'CREATE') AS ok", [role])).rows[0].ok).toBe(false);

        // Every change of every table is an event, in order.
        await c.query(`INSERT INTO public.a VALUES (1, 'x'); UPDATE public.a SET v = 'y'; DELETE FROM public.a;
          INSERT INTO public.b VALUES (2, 'x'); UPDATE public.b SET id = 3; TRUNCATE public.b;
          INSERT INTO public.p VALUES (4, '2026-01-04', 'x'); DELETE FROM public.p;
          INSERT INTO public.c VALUES ('k', 5); UPDATE public.c SET v = 6`);
        const queueId = (await c.query("SELECT queue_id FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].queue_id;
        const events = (await c.query<{ t: number; e: string }>(
          `SELECT ev_table AS t, ev_op::text || coalesce(ev_key, ev_data, '') AS e FROM (SELECT * FROM pgconvey.event_${queueId}_0 UNION ALL SELECT * FROM pgconvey.event_${queueId}_1 UNION ALL SELECT * FROM pgconvey.event_${queueId}_2) e ORDER BY ev_id`,
        )).rows;
        expect(events).toEqual([
          { t: a, e: 'I(1,x)' }, { t: a, e: 'U(1,y)' }, { t: a, e: 'D(1)' },
          { t: b, e: 'I(2,x)' }, { t: b, e: 'D(2)' }, { t: b, e: 'I(3,x)' }, { t: b, e: 'T' },
          { t: pid, e: 'I(4,2026-01-04,x)' }, { t: pid, e: 'D(4,2026-01-04)' },
          { t: cid, e: 'I(k,5)' }, { t: cid, e: 'U(k,6)' },
        ]);
        // Again (a recapture): the same ids, still one row and one TRUNCATE trigger of each table.
        expect(await engine.addTables(c, 'q', [{ schema: 'public', table: 'a' }, { schema: 'public', table: 'c' }])).toEqual([a, cid]);
        const triggers = (await c.query<{ rel: string; n: number }>(
          "SELECT tgrelid::regclass::text AS rel, count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgconvey\\_%' AND tgrelid IN ('public.a'::regclass, 'public.b'::regclass, 'public.c'::regclass) GROUP BY 1 ORDER BY 1",
        )).rows;
        expect(triggers).toEqual([{ rel: 'a', n: 2 }, { rel: 'b', n: 2 }, { rel: 'c', n: 2 }]);
      } finally {
        await c.end();
        await db.query(`DROP SCHEMA pgconvey CASCADE; DROP TABLE public.a, public.b, public.p, public.c, public.x`).catch(() => undefined);
        await serverQuery(server, `DROP OWNED BY ${dba}; DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
        await serverQuery(server, `DROP ROLE IF EXISTS ${dba}`).catch(() => undefined);
      }
    });
  }
});

