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
      expect(cat.tables.find((t) => t.name === 'measure_2024')).toMatchObject({ kind: 'r', partitionOf: 'public.measure' });
      if (major >= 12) expect(cat.tables.find((t) => t.name === 'gen')!.columns.map((col) => col.generated)).toEqual(['', '', 's']);
      expect(cat.tables.some((t) => t.schema === 'pgconvey')).toBe(false);
      expect(cat.sequences).toEqual([{ schema: 'Sales', name: 'Orders_id_seq', owner: 'postgres' }]);
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
