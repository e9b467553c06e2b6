/**
 * Event tables take turns as transaction ids advance and are emptied with
 * TRUNCATE once every consumer has read them, so they stay small; a stopped
 * consumer holds them back and loses none of its events; dropping that
 * consumer releases them.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pgLib from 'pg';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import * as engine from '../../src/engine/index.js';
import { sourceServer } from '../harness/servers.js';

describe('engine: rotation of event tables', () => {
  let c: pg.Client;
  // A private server: which table is current follows the cluster's transaction ids, which other
  // test files running at the same time would advance unpredictably.
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer({ major: sourceServer().major });
    c = new pgLib.Client({ host: server.host, port: server.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query('CREATE TABLE public.t (id serial PRIMARY KEY, v text)');
    await engine.installEngine(c);
    // A new event table every 4 transaction ids: each round below moves on.
    await engine.createQueue(c, 'q', { rotationTxids: 4 });
    await engine.addTable(c, 'q', 'public', 't');
    await engine.registerConsumer(c, 'q', 'fast');
    await engine.registerConsumer(c, 'q', 'slow');
  });

  afterAll(async () => {
    await c?.end();
    await server?.stop();
  });

  const eventRows = async () =>
    Number((await c.query('SELECT (SELECT count(*) FROM pgconvey.event_1_0) + (SELECT count(*) FROM pgconvey.event_1_1) + (SELECT count(*) FROM pgconvey.event_1_2) AS n')).rows[0].n);
  const emptied = async () => Number((await c.query("SELECT rotations FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].rotations);

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

  it('empties tables while every consumer keeps up, so they stay small', async () => {
    for (let i = 0; i < 12; i++) {
      await round(1000);
      expect(await consume('fast')).toBe(1000);
      expect(await consume('slow')).toBe(1000);
      await engine.maintainQueue(c, 'q');
      expect(await eventRows()).toBeLessThanOrEqual(2000);
    }
    expect(await emptied()).toBeGreaterThanOrEqual(8);
  });

  it('a stopped consumer holds tables back and later receives every event', async () => {
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

  it('dropping a stopped consumer releases the tables', async () => {
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
    expect(await eventRows()).toBeLessThanOrEqual(20);
  });

  it('a writer still inside an old table keeps it from being emptied', async () => {
    const other = new (c.constructor as typeof pg.Client)((c as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters);
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query("INSERT INTO public.t (v) VALUES ('held open')");
      for (let i = 0; i < 6; i++) {
        await round(10);
        await consume('fast');
        await engine.maintainQueue(c, 'q');
      }
      await other.query('COMMIT');
      await engine.forceTick(c, 'q');
      expect(await consume('fast')).toBe(1);
    } finally {
      await other.end();
    }
  });

  it('removes old ticks but keeps every consumer position', async () => {
    await c.query("SELECT pgconvey.set_queue_config('q', 'tick_retention', '0')");
    await engine.maintainQueue(c, 'q');
    const { rows } = await c.query("SELECT min(tick_id) AS oldest, (SELECT last_tick FROM pgconvey.consumer WHERE consumer_name = 'fast') AS pos FROM pgconvey.tick");
    expect(rows[0].oldest).toBe(rows[0].pos);
  });
});
