/**
 * Cascades (issue 16, part 2): retention. A branch is a consumer of the root
 * and its own subscribers are consumers of the branch's queue, so a stopped
 * leaf under a branch holds back the branch's event tables and, while the
 * branch publishes no watermark (this test runs no `run`: see
 * cascade-watermark.int.test.ts for the watermark), not the root's: the root
 * empties its tables as soon as the branch has read them,
 * the branch keeps every event the leaf has not applied, and the leaf,
 * started again, applies them all — checked row by row against the root. Also:
 * a branch's queue is never ticked by a ticker, and the application's writes
 * on a branch's replicated table are refused.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { compareTable } from '../harness/exact.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SCHEMA = 'CREATE TABLE public.t (id int PRIMARY KEY, v text)';

describe('cascade retention: root → branch → leaf', () => {
  let root: pg.Client, branch: pg.Client, leaf: pg.Client;
  let rootW: pg.Client, branchW: pg.Client, branchW2: pg.Client, leafW: pg.Client;
  let branchWorker: engine.ApplyWorker;

  beforeAll(async () => {
    const [r, b, l] = [await freshDatabase(sourceServer(), 'casr_r'), await freshDatabase(targetServer(), 'casr_b'), await freshDatabase(targetServer(), 'casr_l')];
    [root, branch, leaf, rootW, branchW, branchW2, leafW] = await Promise.all([r.connect(), b.connect(), l.connect(), r.connect(), b.connect(), b.connect(), l.connect()]);
    for (const c of [root, branch, leaf]) {
      await c.query(SCHEMA);
      await engine.installEngine(c);
    }
    // A new event table every 4 transaction ids, on the root and on the branch.
    await engine.createQueue(root, 'q', { rotationTxids: 4 });
    await engine.addTable(root, 'q', 'public', 't');
    await engine.subscribe(root, branch, 'q', 'b');
    await engine.addSubscriberTable(branch, 'q', 'b', 'public', 't');
    await engine.createBranchQueue(branch, 'q', 'b', 'r', { rotationTxids: 4 });
    await engine.subscribe(branch, leaf, 'q', 'l');
    await engine.addSubscriberTable(leaf, 'q', 'l', 'public', 't');
    branchWorker = new engine.ApplyWorker(rootW, branchW, { queue: 'q', consumer: 'b' });
    await branchWorker.start();
  });

  afterAll(async () => {
    await Promise.all([root, branch, leaf, rootW, branchW, branchW2, leafW].map((c) => c?.end().catch(() => undefined)));
  });

  const rotations = async (c: pg.Client) => Number((await c.query("SELECT rotations FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].rotations);
  const events = async (c: pg.Client) => {
    const id = (await c.query("SELECT queue_id FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].queue_id;
    return Number((await c.query(`SELECT (SELECT count(*) FROM pgconvey.event_${id}_0) + (SELECT count(*) FROM pgconvey.event_${id}_1) + (SELECT count(*) FROM pgconvey.event_${id}_2) AS n`)).rows[0].n);
  };
  const drain = async (w: engine.ApplyWorker) => {
    for (let i = 0; i < 10_000; i++) if ((await w.step()).kind === 'idle') return;
    throw new Error('the worker did not get idle');
  };

  it('a stopped leaf holds the branch, not the root; started again it applies everything exactly once', async () => {
    for (let round = 0; round < 12; round++) {
      await root.query('INSERT INTO public.t SELECT g, md5(g::text) FROM generate_series($1 * 100 + 1, $1 * 100 + 100) g', [round]);
      await root.query('UPDATE public.t SET v = v || $1 WHERE id % 7 = $2', [`r${round}`, round % 7]);
      await root.query('DELETE FROM public.t WHERE id % 11 = $1 AND id < $2', [round % 11, round * 100]);
      await engine.forceTick(root, 'q');
      await drain(branchWorker);
      await engine.maintainQueue(root, 'q');
      await engine.maintainQueue(branch, 'q');
    }
    // The branch has it all; the root emptied what the branch read; the branch kept what the leaf did not.
    expect(await compareTable(root, branch, 'public', 't')).toMatchObject({ missing: [], extra: [] });
    expect(await rotations(root)).toBeGreaterThan(0);
    expect(await rotations(branch)).toBe(0);
    expect(await events(branch)).toBeGreaterThan(1200);
    // A branch queue is never ticked by a ticker: only the batches it re-queues tick it.
    const lastTick = (await branch.query("SELECT max(tick_id)::text AS t FROM pgconvey.tick t JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'q'")).rows[0].t;
    expect(await engine.tick(branch, 'q')).toBeNull();
    expect(await engine.forceTick(branch, 'q')).toBe(lastTick);
    // The application's writes on the branch's replicated table are refused.
    await expect(branch.query("UPDATE public.t SET v = 'local' WHERE id = 1")).rejects.toThrow(/pgconvey branch/);

    const leafWorker = new engine.ApplyWorker(branchW2, leafW, { queue: 'q', consumer: 'l' });
    await leafWorker.start();
    await drain(leafWorker);
    expect(await compareTable(root, leaf, 'public', 't')).toMatchObject({ missing: [], extra: [] });
    const [rootPos, leafPos] = [
      (await branch.query("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE consumer_name = 'b'")).rows[0].t,
      (await leaf.query("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE consumer_name = 'l'")).rows[0].t,
    ];
    expect(leafPos).toBe(rootPos);
    // Read by the leaf now: the branch empties its tables too (after its own transactions move on).
    for (let i = 0; i < 40 && (await rotations(branch)) === 0; i++) {
      await root.query('UPDATE public.t SET v = v || $1 WHERE id = 1', [`x${i}`]);
      await engine.forceTick(root, 'q');
      await drain(branchWorker);
      await drain(leafWorker);
      await engine.maintainQueue(branch, 'q');
    }
    expect(await rotations(branch)).toBeGreaterThan(0);
    expect(await compareTable(root, leaf, 'public', 't')).toMatchObject({ missing: [], extra: [] });
  });
});
