/**
 * Keys are matched on the subscriber with the equality their type's btree
 * class uses: a varchar key compares as text even when citext (which has a
 * binary cast from varchar) is installed, so 'a' and 'A' stay two keys.
 * Found by the exactness soak (seed 5058): the worker chose citext's = for a
 * varchar key and stalled.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

describe('key equality on the subscriber', () => {
  let provider: pg.Client;
  let subscriber: pg.Client;
  beforeAll(async () => {
    provider = await (await freshDatabase(sourceServer(), 'keq')).connect();
    subscriber = await (await freshDatabase(targetServer(), 'keq')).connect();
    for (const c of [provider, subscriber]) {
      await c.query('CREATE EXTENSION IF NOT EXISTS citext');
      await c.query('CREATE TABLE public.names ("order" char(6), k varchar(10), c public.citext, v int, PRIMARY KEY ("order", k))');
      await engine.installEngine(c);
    }
    await engine.createQueue(provider, 'q');
    await engine.addTable(provider, 'q', 'public', 'names');
    await engine.subscribe(provider, subscriber, 'q', 'sub');
    await engine.addSubscriberTable(subscriber, 'q', 'sub', 'public', 'names');
  });
  afterAll(async () => {
    await provider?.end();
    await subscriber?.end();
  });

  it('a varchar key compares as text when citext is installed', async () => {
    await provider.query("INSERT INTO public.names VALUES ('o', 'a', 'x', 1), ('o', 'A', 'x', 2)");
    await engine.forceTick(provider, 'q');
    const worker = new engine.ApplyWorker(provider, subscriber, { queue: 'q', consumer: 'sub' });
    await worker.start();
    while ((await worker.step()).kind !== 'idle');
    await provider.query("DELETE FROM public.names WHERE k = 'a'");
    await provider.query("UPDATE public.names SET v = 3 WHERE k = 'A'");
    await engine.forceTick(provider, 'q');
    while ((await worker.step()).kind !== 'idle');
    const { rows } = await subscriber.query('SELECT k, v FROM public.names ORDER BY k COLLATE "C"');
    expect(rows).toEqual([{ k: 'A', v: 3 }]);
  });
});
