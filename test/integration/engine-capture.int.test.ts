/**
 * What add_table accepts and refuses, what a capture trigger ships, and that
 * a batch streams in bounded chunks however large one transaction is.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

describe('engine: capture', () => {
  let c: pg.Client;
  let sub: pg.Client;

  beforeAll(async () => {
    c = await (await freshDatabase(sourceServer(), 'cap')).connect();
    sub = await (await freshDatabase(targetServer(), 'cap_s')).connect();
    await engine.installEngine(c);
    await engine.installEngine(sub);
    await engine.createQueue(c, 'q');
  });

  afterAll(async () => {
    await c?.end();
    await sub?.end();
  });

  it('refuses a table without a primary key, naming the fix', async () => {
    await c.query('CREATE TABLE public.nokey (a int NOT NULL, b text)');
    await expect(engine.addTable(c, 'q', 'public', 'nokey')).rejects.toThrow(/public\.nokey has no primary key/);
  });

  it('accepts given key columns when they are NOT NULL, and refuses nullable or unknown ones', async () => {
    await c.query('CREATE TABLE public.keyed (a int NOT NULL, b int, c text)');
    await expect(engine.addTable(c, 'q', 'public', 'keyed', ['b'])).rejects.toThrow(/key column\(s\) b of public\.keyed may be NULL/);
    await expect(engine.addTable(c, 'q', 'public', 'keyed', ['zz'])).rejects.toThrow(/has no column\(s\) zz/);
    expect(await engine.addTable(c, 'q', 'public', 'keyed', ['a'])).toBeGreaterThan(0);
  });

  it('refuses a table that does not exist', async () => {
    await expect(engine.addTable(c, 'q', 'public', 'missing')).rejects.toThrow(/public\.missing does not exist/);
  });

  it('is idempotent: adding a table twice keeps one registration and one trigger', async () => {
    await c.query('CREATE TABLE public.twice (id int PRIMARY KEY)');
    const a = await engine.addTable(c, 'q', 'public', 'twice');
    const b = await engine.addTable(c, 'q', 'public', 'twice');
    expect(b).toBe(a);
    const triggers = await c.query("SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.twice'::regclass AND NOT tgisinternal");
    expect(triggers.rows[0].n).toBe(2);
  });

  it('ships the whole row as its text, generated columns included and named in its shape', async (ctx) => {
    const version = Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0].v);
    if (version < 120000) return ctx.skip(); // generated columns exist from PostgreSQL 12
    await c.query('CREATE TABLE public.gen (id int PRIMARY KEY, price numeric, tax numeric GENERATED ALWAYS AS (price * 0.2) STORED)');
    await engine.addTable(c, 'q', 'public', 'gen');
    await engine.registerConsumer(c, 'q', 'peek');
    await c.query('INSERT INTO public.gen (id, price) VALUES (1, 10)');
    await engine.forceTick(c, 'q');
    const batch = (await engine.nextBatch(c, 'q', 'peek', 1000))!;
    const seen: engine.QueueEvent[] = [];
    await engine.readBatch(c, batch, null, async (events) => void seen.push(...events));
    expect(seen.map((e) => e.data)).toEqual(['(1,10,2.0)']);
    const shape = await c.query('SELECT columns, key_columns, generated FROM pgconvey.table_shape WHERE shape_id = $1', [seen[0]!.shape]);
    expect(shape.rows).toEqual([{ columns: ['id', 'price', 'tax'], key_columns: ['id'], generated: ['tax'] }]);
    await engine.finishBatch(c, 'q', 'peek', batch.endTick);
    await engine.unregisterConsumer(c, 'q', 'peek');
  });

  it('streams a huge transaction in bounded chunks', async () => {
    await c.query('CREATE TABLE public.big (id int PRIMARY KEY, v text)');
    await engine.addTable(c, 'q', 'public', 'big');
    await engine.registerConsumer(c, 'q', 'chunks');
    await c.query("INSERT INTO public.big SELECT g, repeat('x', 100) FROM generate_series(1, 30000) g");
    await engine.forceTick(c, 'q');
    const batch = (await engine.nextBatch(c, 'q', 'chunks', 1_000_000))!;
    const sizes: number[] = [];
    const total = await engine.readBatch(c, batch, null, async (events) => void sizes.push(events.length), { maxRows: 1000 });
    expect(total).toBe(30000);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
    expect(sizes.length).toBeGreaterThanOrEqual(30);
  });

  it('allows one worker per subscription at a time', async () => {
    await engine.subscribe(c, sub, 'q', 'only');
    const other = new (sub.constructor as typeof pg.Client)((sub as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters);
    await other.connect();
    try {
      const first = new engine.ApplyWorker(c, sub, { queue: 'q', consumer: 'only' });
      await first.start();
      const second = new engine.ApplyWorker(c, other, { queue: 'q', consumer: 'only' });
      await expect(second.start()).rejects.toBeInstanceOf(engine.WorkerBusyError);
    } finally {
      await other.end();
    }
  });
});
