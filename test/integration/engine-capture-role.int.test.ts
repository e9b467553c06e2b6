/**
 * The capture functions run, for every row any role writes, as a dedicated
 * NOLOGIN role of the database (`pgconvey_capture_<database oid>`) that holds
 * only what capture needs: writing events. Checked on the source and the
 * target major: the role's attributes, memberships and every privilege it has
 * in the database; writers without rights on the queue are still captured;
 * nobody else can attach a capture function to another table; an installer
 * that is not a superuser (CREATEROLE, as on a managed service) gets the same;
 * one without CREATEROLE keeps the functions itself (and plan says so); a role
 * of that name that someone else can act as is refused.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase, serverQuery, type TestDatabase } from '../harness/databases.js';
import { sourceServer, targetServer, type ServerInfo } from '../harness/servers.js';

const suffix = Math.random().toString(36).slice(2, 8);
const rolesMade: Array<{ server: ServerInfo; role: string }> = [];

async function makeRole(server: ServerInfo, role: string, attributes: string): Promise<void> {
  await serverQuery(server, `CREATE ROLE ${role} ${attributes}`);
  rolesMade.push({ server, role });
}

async function connectAs(db: TestDatabase, role: string): Promise<pg.Client> {
  const c = new pg.Client({ ...db.config, user: role });
  await c.connect();
  return c;
}

async function captureRole(db: TestDatabase): Promise<string> {
  return (await db.query<{ r: string }>("SELECT 'pgconvey_capture_' || oid AS r FROM pg_catalog.pg_database WHERE datname = current_database()")).rows[0]!.r;
}

/** Every privilege the role holds on any relation, sequence, schema or function of the database, as "kind name privilege". */
async function privilegesOf(db: TestDatabase, role: string): Promise<string[]> {
  const { rows } = await db.query<{ p: string }>(
    `SELECT 'table ' || n.nspname || '.' || c.relname || ' ' || p AS p
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND pg_catalog.has_table_privilege($1, c.oid, p)
     UNION ALL
     SELECT 'table ' || n.nspname || '.' || c.relname || ' ' || p || ' (' ||
            (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND pg_catalog.has_column_privilege($1, c.oid, a.attnum, p)) || ')'
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['SELECT','INSERT','UPDATE','REFERENCES']) p
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND NOT pg_catalog.has_table_privilege($1, c.oid, p) AND pg_catalog.has_any_column_privilege($1, c.oid, p)
     UNION ALL
     SELECT 'sequence ' || n.nspname || '.' || c.relname || ' ' || p
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['USAGE','SELECT','UPDATE']) p
      WHERE c.relkind = 'S' AND pg_catalog.has_sequence_privilege($1, c.oid, p)
     UNION ALL
     SELECT 'schema ' || n.nspname || ' ' || p
       FROM pg_catalog.pg_namespace n CROSS JOIN unnest(ARRAY['USAGE','CREATE']) p
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        AND pg_catalog.has_schema_privilege($1, n.oid, p)
     UNION ALL
     SELECT 'database CREATE' WHERE pg_catalog.has_database_privilege($1, current_database(), 'CREATE')
     ORDER BY 1`,
    [role],
  );
  return rows.map((r) => r.p);
}

afterAll(async () => {
  for (const { server, role } of rolesMade.reverse()) await serverQuery(server, `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
});

for (const server of [sourceServer(), targetServer()]) {
  describe(`the capture role on PostgreSQL ${server.major}`, () => {
    it('owns the capture functions and holds only what writing events needs', async () => {
      const db = await freshDatabase(server, 'caprole');
      const admin = await db.connect();
      const writer = `writer_${suffix}_${server.major}`;
      await makeRole(server, writer, 'LOGIN');
      try {
        await engine.installEngine(admin);
        await engine.createQueue(admin, 'q');
        await admin.query(`CREATE TABLE public.t (id int PRIMARY KEY, v text); GRANT INSERT, UPDATE, DELETE, SELECT ON public.t TO ${writer}`);
        const tableId = await engine.addTable(admin, 'q', 'public', 't');
        const role = await captureRole(db);

        const owners = await admin.query<{ f: string; owner: string; public_exec: boolean }>(
          `SELECT p.proname AS f, pg_catalog.pg_get_userbyid(p.proowner) AS owner,
                  pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname IN ($1, $2) ORDER BY 1`,
          [`capture_${tableId}`, `capture_truncate_${tableId}`],
        );
        expect(owners.rows).toEqual([
          { f: `capture_${tableId}`, owner: role, public_exec: false },
          { f: `capture_truncate_${tableId}`, owner: role, public_exec: false },
        ]);
        // The reader of a superseded row's current version by key stays the engine owner's; only the capture role may call it.
        const reader = await admin.query(
          `SELECT pg_catalog.pg_get_userbyid(p.proowner) AS owner, pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
                  pg_catalog.has_function_privilege($2, p.oid, 'EXECUTE') AS role_exec, pg_catalog.has_function_privilege($3, p.oid, 'EXECUTE') AS writer_exec
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname = $1`,
          [`capture_current_${tableId}`, role, writer],
        );
        expect(reader.rows).toEqual([{ owner: server.user, public_exec: false, role_exec: true, writer_exec: false }]);
        const attrs = (await admin.query('SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1', [role])).rows[0];
        expect(attrs).toEqual({ rolcanlogin: false, rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolreplication: false, rolbypassrls: false });
        expect((await admin.query('SELECT count(*)::int AS n FROM pg_catalog.pg_auth_members WHERE member = $1::regrole', [role])).rows[0].n).toBe(0);
        const queueId = (await admin.query("SELECT queue_id FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].queue_id as number;
        expect(await privilegesOf(db, role)).toEqual(
          [
            ...[0, 1, 2].map((i) => `table pgconvey.event_${queueId}_${i} INSERT`),
            'table pgconvey.captured_table SELECT (table_id, table_schema, table_name)',
            'table pgconvey.table_shape INSERT',
            'table pgconvey.table_shape SELECT',
            `sequence pgconvey.event_${queueId}_seq USAGE`,
            'sequence pgconvey.table_shape_shape_id_seq USAGE',
            'schema pgconvey USAGE',
            // PUBLIC's defaults, which every role has: CREATE on public before PG 15.
            ...(server.major < 15 ? ['schema public CREATE'] : []),
            'schema public USAGE',
          ].sort(),
        );

        // A writer with rights on the table only is captured; a new column (a new shape, recorded by the capture) too.
        const w = await connectAs(db, writer);
        try {
          await w.query("INSERT INTO public.t VALUES (1, 'a')");
          await admin.query('ALTER TABLE public.t ADD COLUMN extra int');
          await w.query("UPDATE public.t SET v = 'b', extra = 7 WHERE id = 1");
          await w.query('DELETE FROM public.t WHERE id = 1');
        } finally {
          await w.end();
        }
        const events = await admin.query(`SELECT ev_op, ev_data FROM pgconvey.event_${queueId}_0 UNION ALL SELECT ev_op, ev_data FROM pgconvey.event_${queueId}_1 UNION ALL SELECT ev_op, ev_data FROM pgconvey.event_${queueId}_2`);
        expect(events.rows.map((r) => `${r.ev_op}${r.ev_data ?? ''}`).sort()).toEqual(['D', 'I(1,a)', 'U(1,b,7)']);

        // A partitioned table: its partitions' rows are captured as the capture role too; a TRUNCATE of one
        // partition (captured as deletes of its rows, which it must read) runs as the engine's owner.
        // (PostgreSQL 10 has no primary key on a partitioned table: the key is named.)
        const pk = server.major >= 11 ? ', PRIMARY KEY (id, at)' : '';
        await admin.query(`CREATE TABLE public.p (id int NOT NULL, at date NOT NULL, v text${pk}) PARTITION BY RANGE (at);
          CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
          CREATE TABLE public.p2 PARTITION OF public.p FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
          GRANT INSERT, UPDATE, DELETE, SELECT ON public.p TO ${writer}`);
        const pid = await engine.addTable(admin, 'q', 'public', 'p', server.major >= 11 ? undefined : ['id', 'at']);
        const w2 = await connectAs(db, writer);
        try {
          await w2.query("INSERT INTO public.p VALUES (1, '2026-01-05', 'a'), (2, '2026-01-06', 'b')");
          // A row moving to another partition (PostgreSQL 10 cannot UPDATE it across: delete and insert).
          if (server.major >= 11) await w2.query("UPDATE public.p SET at = '2026-02-07' WHERE id = 2");
          else await w2.query("BEGIN; DELETE FROM public.p WHERE id = 2; INSERT INTO public.p VALUES (2, '2026-02-07', 'b'); COMMIT");
        } finally {
          await w2.end();
        }
        await admin.query('TRUNCATE public.p1');
        const pOwners = await admin.query<{ f: string; owner: string; public_exec: boolean }>(
          `SELECT p.proname AS f, pg_catalog.pg_get_userbyid(p.proowner) AS owner, pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname ~ $1 ORDER BY 1`,
          [`^capture_(truncate_|truncate_rows_)?${pid}$`],
        );
        expect(pOwners.rows).toEqual([
          { f: `capture_${pid}`, owner: role, public_exec: false },
          { f: `capture_truncate_${pid}`, owner: role, public_exec: false },
          { f: `capture_truncate_rows_${pid}`, owner: server.user, public_exec: false },
        ]);
        const pEvents = await admin.query(
          `SELECT ev_op, coalesce(ev_key, ev_data) AS d FROM (SELECT * FROM pgconvey.event_${queueId}_0 UNION ALL SELECT * FROM pgconvey.event_${queueId}_1 UNION ALL SELECT * FROM pgconvey.event_${queueId}_2) e
            WHERE ev_table = $1 ORDER BY ev_id`,
          [pid],
        );
        expect(pEvents.rows.map((r) => `${r.ev_op}${r.d}`)).toEqual(['I(1,2026-01-05,a)', 'I(2,2026-01-06,b)', 'D(2,2026-01-06)', 'I(2,2026-02-07,b)', 'D(1,2026-01-05)']);

        // What a hole in a capture function would yield: writing events, and nothing of the application's.
        await admin.query(`SET ROLE ${role}`);
        await expect(admin.query('SELECT * FROM public.t')).rejects.toThrow(/permission denied/);
        await expect(admin.query('UPDATE pgconvey.queue SET rotation_txids = 1')).rejects.toThrow(/permission denied/);
        await admin.query('RESET ROLE');
      } finally {
        await admin.end();
      }
    });

    it("a table owner cannot attach another table's capture function to their own table", async () => {
      const db = await freshDatabase(server, 'capattach');
      const admin = await db.connect();
      const owner = `owner_${suffix}_${server.major}`;
      await makeRole(server, owner, 'LOGIN');
      try {
        await engine.installEngine(admin);
        await engine.createQueue(admin, 'q');
        await admin.query(`CREATE TABLE public.victim (id int PRIMARY KEY, v text); CREATE SCHEMA mine AUTHORIZATION ${owner}; GRANT USAGE ON SCHEMA pgconvey TO ${owner}`);
        const tableId = await engine.addTable(admin, 'q', 'public', 'victim');
        const o = await connectAs(db, owner);
        try {
          await o.query('CREATE TABLE mine.fake (id int PRIMARY KEY, v text)');
          // Even with USAGE on the schema (granted here on purpose), EXECUTE is not PUBLIC's.
          await expect(o.query(`CREATE TRIGGER forge AFTER INSERT ON mine.fake FOR EACH ROW EXECUTE PROCEDURE pgconvey.capture_${tableId}()`)).rejects.toThrow(/permission denied/);
        } finally {
          await o.end();
        }
      } finally {
        await admin.end();
      }
    });

    it('an installer with CREATEROLE and no superuser gets the capture role; one without CREATEROLE keeps the functions', async () => {
      const db = await freshDatabase(server, 'capadmin');
      const dba = `dba_${suffix}_${server.major}`;
      const plain = `plain_${suffix}_${server.major}`;
      await makeRole(server, dba, 'LOGIN CREATEROLE');
      await makeRole(server, plain, 'LOGIN');
      await db.query(`GRANT CREATE ON DATABASE ${db.name} TO ${dba}, ${plain}; CREATE TABLE public.t (id int PRIMARY KEY); ALTER TABLE public.t OWNER TO ${dba}`);
      const role = await captureRole(db);
      const c = await connectAs(db, dba);
      try {
        await engine.installEngine(c);
        await engine.createQueue(c, 'q');
        const tableId = await engine.addTable(c, 'q', 'public', 't');
        const owner = (await c.query(`SELECT pg_catalog.pg_get_userbyid(proowner) AS o FROM pg_catalog.pg_proc WHERE proname = $1`, [`capture_${tableId}`])).rows[0].o;
        expect(owner).toBe(role);
        await c.query('INSERT INTO public.t VALUES (1)');
        // Installing again (an upgrade) keeps it so.
        await engine.installEngine(c, undefined);
        expect((await c.query(`SELECT pg_catalog.pg_get_userbyid(proowner) AS o FROM pg_catalog.pg_proc WHERE proname = $1`, [`capture_${tableId}`])).rows[0].o).toBe(role);
      } finally {
        await c.end();
        await serverQuery(server, `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      }
      // Without CREATEROLE (and no role made by an admin), the installer keeps the capture functions.
      await db.query(`DROP SCHEMA pgconvey CASCADE; DROP ROLE IF EXISTS ${role}; CREATE TABLE public.u (id int PRIMARY KEY); ALTER TABLE public.u OWNER TO ${plain}`);
      const p = await connectAs(db, plain);
      try {
        await engine.installEngine(p);
        await engine.createQueue(p, 'q');
        const tableId = await engine.addTable(p, 'q', 'public', 'u');
        expect((await p.query(`SELECT pg_catalog.pg_get_userbyid(proowner) AS o FROM pg_catalog.pg_proc WHERE proname = $1`, [`capture_${tableId}`])).rows[0].o).toBe(plain);
        expect((await p.query('SELECT pgconvey.capture_owner() AS o')).rows[0].o).toBe(plain);
      } finally {
        await p.end();
      }
    });

    it('refuses a capture role that another role can act as', async () => {
      const db = await freshDatabase(server, 'capsquat');
      const role = await captureRole(db);
      const mallory = `mallory_${suffix}_${server.major}`;
      await makeRole(server, mallory, 'LOGIN');
      await makeRole(server, role, 'NOLOGIN');
      await serverQuery(server, `GRANT ${role} TO ${mallory}`);
      const admin = await db.connect();
      try {
        await engine.installEngine(admin);
        await expect(engine.createQueue(admin, 'q')).rejects.toThrow(new RegExp(`${mallory} may act as the capture role`));
        await serverQuery(server, `REVOKE ${role} FROM ${mallory}; ALTER ROLE ${role} LOGIN`);
        await expect(engine.createQueue(admin, 'q')).rejects.toThrow(/exists with attributes it must not have/);
        await serverQuery(server, `ALTER ROLE ${role} NOLOGIN`);
        await engine.createQueue(admin, 'q');
      } finally {
        await admin.end();
      }
    });
  });
}
