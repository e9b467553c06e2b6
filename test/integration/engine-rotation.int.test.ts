/**
 * Event tables rotate (TRUNCATE, never DELETE) and stay small while consumers
 * keep up; a stopped consumer holds rotation back so none of its events is
 * lost; dropping that consumer releases it.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer } from '../harness/servers.js';

describe('engine: rotation of event tables', () => {
  let c: pg.Client;

  beforeAll(async () => {
    const db = await freshDatabase(sourceServer(), 'rot');
    c = await db.connect();
    await c.query('CREATE TABLE public.t (id serial PRIMARY KEY, v text)');
    await engine.installEngine(c);
    await engine.createQueue(c, 'q', { rotationPeriodMs: 1 });
    await engine.addTable(c, 'q', 'public', 't');
    await engine.registerConsumer(c, 'q', 'fast');
    await engine.registerConsumer(c, 'q', 'slow');
  });

  afterAll(async () => {
    await c?.end();
  });

  const eventRows = async () => Number((await c.query('SELECT (SELECT count(*) FROM pgconvey.event_1_0) + (SELECT count(*) FROM pgconvey.event_1_1) + (SELECT count(*) FROM pgconvey.event_1_2) AS n')).rows[0].n);
  const curTable = async () => Number((await c.query("SELECT cur_table FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].cur_table);

  /** Takes every pending batch of a consumer and counts its events. */
  async function consume(consumer: string): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = await engine.nextBatch(c, 'q', consumer, 1_000_000);
      if (!batch) return total;
      total += await engine.readBatch(c, batch, null, async () => undefined);
      await engine.finishBatch(c, 'q', consumer, batch.endTick);
    }
  }

  async function round(rows: number): Promise<void> {
    await c.query('INSERT INTO public.t (v) SELECT md5(g::text) FROM generate_series(1, $1) g', [rows]);
    await engine.forceTick(c, 'q');
  }

  it('rotates while every consumer keeps up, keeping the tables small', async () => {
    let rotations = 0;
    for (let i = 0; i < 12; i++) {
      await round(1000);
      expect(await consume('fast')).toBe(1000);
      expect(await consume('slow')).toBe(1000);
      const before = await curTable();
      await engine.maintainQueue(c, 'q');
      if ((await curTable()) !== before) rotations++;
      expect(await eventRows()).toBeLessThanOrEqual(3000);
    }
    expect(rotations).toBeGreaterThanOrEqual(10);
  });

  it('a stopped consumer holds rotation back and later receives every event', async () => {
    let sinceStop = 0;
    for (let i = 0; i < 8; i++) {
      await round(500);
      sinceStop += 500;
      expect(await consume('fast')).toBe(500);
      await engine.maintainQueue(c, 'q');
    }
    expect(await eventRows()).toBeGreaterThanOrEqual(sinceStop);
    expect(await consume('slow')).toBe(sinceStop);
  });

  it('dropping a stopped consumer releases rotation', async () => {
    for (let i = 0; i < 4; i++) {
      await round(500);
      await consume('fast');
      await engine.maintainQueue(c, 'q');
    }
    expect(await eventRows()).toBeGreaterThanOrEqual(2000);
    await engine.unregisterConsumer(c, 'q', 'slow');
    for (let i = 0; i < 3; i++) {
      await round(10);
      await consume('fast');
      await engine.maintainQueue(c, 'q');
    }
    expect(await eventRows()).toBeLessThanOrEqual(30);
  });

  it('removes old ticks but keeps every consumer position', async () => {
    await c.query("SELECT pgconvey.set_queue_config('q', 'tick_retention', '0')");
    await engine.maintainQueue(c, 'q');
    const { rows } = await c.query("SELECT min(tick_id) AS oldest, (SELECT last_tick FROM pgconvey.consumer WHERE consumer_name = 'fast') AS pos FROM pgconvey.tick");
    expect(rows[0].oldest).toBe(rows[0].pos);
  });
});
