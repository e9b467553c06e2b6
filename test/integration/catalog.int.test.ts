/**
 * Catalog introspection against real servers of both majors: tables, keys,
 * generated columns, partitions, sequences, roles, privileges and the
 * engine's state come back as the schema says, and twice the same.
 */
import { describe, expect, it } from 'vitest';
import { introspectNode } from '../../src/catalog/index.js';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { servers } from '../harness/servers.js';

describe.each(servers().map((s) => [s.major, s] as const))('catalog of PostgreSQL %i', (major, server) => {
  it('reads tables, keys, sequences, roles, privileges and the engine', async () => {
    const db = await freshDatabase(server, 'cat');
    const c = await db.connect();
    try {
      await c.query(`
        CREATE SCHEMA "Sales";
        CREATE TABLE "Sales"."Orders" (id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, note text UNIQUE, total numeric(12,2));
        CREATE TABLE public.nokey (a int, b text);
      `);
      // Primary keys on partitioned tables exist from PostgreSQL 11.
      await c.query(`CREATE TABLE public.measure (city text, at date${major >= 11 ? ', PRIMARY KEY (at, city)' : ''}) PARTITION BY RANGE (at);
        CREATE TABLE public.measure_2024 PARTITION OF public.measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
      if (major >= 12) await c.query('CREATE TABLE public.gen (id int PRIMARY KEY, x int, y int GENERATED ALWAYS AS (x * 2) STORED)');
      await engine.installEngine(c);
      await engine.createQueue(c, 'q');
      await engine.addTable(c, 'q', 'Sales', 'Orders');
      await engine.addSequence(c, 'q', 'Sales', 'Orders_id_seq');
      await engine.registerConsumer(c, 'q', 'sub');

      const cat = await introspectNode(c);

      expect(Math.floor(cat.serverVersionNum / 10000)).toBe(major);
      expect(cat.privileges).toMatchObject({ user: 'postgres', superuser: true, canCreateSchema: true, canSetReplicationRole: true });
      const orders = cat.tables.find((t) => t.schema === 'Sales' && t.name === 'Orders')!;
      expect(orders.primaryKey).toEqual(['id']);
      expect(orders.uniqueNotNull).toEqual([['code']]); // `note` may be NULL: not a candidate key
      expect(orders.columns.map((col) => `${col.name}:${col.type}:${col.notNull}`)).toEqual(['id:bigint:true', 'code:text:true', 'note:text:false', 'total:numeric(12,2):false']);
      expect(orders.triggers).toEqual(['pgconvey_capture_1', 'pgconvey_truncate_1']);
      expect(cat.tables.find((t) => t.name === 'nokey')).toMatchObject({ primaryKey: [], uniqueNotNull: [] });
      expect(cat.tables.find((t) => t.name === 'measure')).toMatchObject({ kind: 'p', primaryKey: major >= 11 ? ['at', 'city'] : [], partitionOf: null });
      expect(cat.tables.find((t) => t.name === 'measure_2024')).toMatchObject({ kind: 'r', partitionOf: { schema: 'public', name: 'measure' } });
      if (major >= 12) expect(cat.tables.find((t) => t.name === 'gen')!.columns.map((col) => col.generated)).toEqual(['', '', 's']);
      expect(cat.tables.some((t) => t.schema === 'pgconvey')).toBe(false);
      expect(cat.sequences).toEqual([
        { schema: 'Sales', name: 'Orders_id_seq', owner: 'postgres', access: { owner: true, select: true, insert: false, update: true, delete: false, truncate: false, trigger: false } },
      ]);
      expect(orders.access).toEqual({ owner: true, select: true, insert: true, update: true, delete: true, truncate: true, trigger: true });
      expect(cat.privileges).toMatchObject({ canAlterDatabase: true, canSignalBackends: true, actsAs: [], canBecome: [] });
      expect(cat.schemas?.map((x) => x.name)).toEqual(['Sales', 'public']);
      expect(cat.roles.map((r) => r.name)).toContain('postgres');
      expect(cat.engine).toMatchObject({
        version: engine.ENGINE_VERSION,
        content: engine.ENGINE_CONTENT,
        queues: [{ name: 'q', lastTick: '1', consumers: [{ name: 'sub', lastTick: '1' }], tables: [{ schema: 'Sales', name: 'Orders', keyColumns: ['id'] }], sequences: [{ schema: 'Sales', name: 'Orders_id_seq' }] }],
        subscriptions: [],
      });
      expect(await introspectNode(c)).toEqual(cat);
    } finally {
      await c.end();
    }
  });

  it('reads the rights of a role that is no superuser: per table, memberships, the database, session_replication_role', async () => {
    const db = await freshDatabase(server, 'catpriv');
    const suffix = db.name.slice(-6);
    const [owner, admin] = [`o_${suffix}`, `a_${suffix}`];
    await db.query(`CREATE ROLE ${owner} NOLOGIN; CREATE ROLE ${admin} LOGIN CREATEROLE NOSUPERUSER;
      ${major >= 15 ? `GRANT CREATE ON SCHEMA public TO ${owner};` : ''}
      SET ROLE ${owner}; CREATE TABLE public.t (id int PRIMARY KEY); CREATE SEQUENCE public.s; GRANT TRIGGER ON public.t TO ${admin}; RESET ROLE`);
    const read = async () => {
      const c = new (await import('pg')).default.Client({ ...db.config, user: admin });
      await c.connect();
      try {
        return await introspectNode(c);
      } finally {
        await c.end();
      }
    };
    try {
      const before = await read();
      expect(before.privileges).toMatchObject({ user: admin, superuser: false, canCreateSchema: false, canSetReplicationRole: false, canAlterDatabase: false, databaseOwner: 'postgres', canSignalBackends: false, actsAs: [], canBecome: [] });
      expect(before.tables.find((t) => t.name === 't')!.access).toEqual({ owner: false, select: false, insert: false, update: false, delete: false, truncate: false, trigger: true });
      expect(before.sequences.find((x) => x.name === 's')!.access).toMatchObject({ owner: false, select: false, update: false });
      const pub = before.schemas!.find((x) => x.name === 'public')!;
      expect(pub).toMatchObject({ usage: true, create: major < 15, createForAll: major < 15 });
      if (major >= 15) expect(pub.createBy).toContain(owner);

      await db.query(`GRANT ${owner} TO ${admin}${major >= 16 ? ' WITH INHERIT TRUE, SET FALSE' : ''}; ${major >= 15 ? `GRANT SET ON PARAMETER session_replication_role TO ${admin};` : ''}`);
      const after = await read();
      expect(after.privileges).toMatchObject({ canSetReplicationRole: major >= 15, actsAs: [owner], canBecome: major >= 16 ? [] : [owner] });
      expect(after.tables.find((t) => t.name === 't')!.access).toEqual({ owner: true, select: true, insert: true, update: true, delete: true, truncate: true, trigger: true });
    } finally {
      await db.query(`DROP TABLE public.t; DROP SEQUENCE public.s; ${major >= 15 ? `REVOKE SET ON PARAMETER session_replication_role FROM ${admin}; REVOKE CREATE ON SCHEMA public FROM ${owner};` : ''}`);
      await db.query(`DROP ROLE ${admin}; DROP ROLE ${owner}`);
    }
  });

  it('reports no engine where none is installed', async () => {
    const db = await freshDatabase(server, 'cat0');
    const c = await db.connect();
    try {
      expect((await introspectNode(c)).engine).toBeNull();
    } finally {
      await c.end();
    }
  });
});
