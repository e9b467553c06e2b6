/**
 * Cascades (issue 16, part 2: the global watermark; part 3: change_provider,
 * engine level). A branch publishes its watermark to the root (consumer
 * `watermark:<branch>`): with a leaf under the branch stopped, the root
 * rotates only as far as the leaf allows — it keeps tick and every event after
 * the leaf's position, counted independently in its event tables, and
 * readRetention names the watermark (on the root) and the leaf (on the
 * branch). Then the leaf is moved to the root without a copy
 * (changeProvider, at its completed tick): applied from the root it equals
 * the root row by row, while the branch goes on too. A second leaf whose
 * tick the root no longer holds (no watermark published for it) is refused
 * and left where it was. And a branch: root → b1 → b2 → l2, b2 stopped is
 * held on the root through b1's watermark, moved to the root (its queue
 * follows, its watermark moves), and then b2 and l2 equal the root row by
 * row, b2's ticks still the root's.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { compareTable } from '../harness/exact.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SCHEMA = 'CREATE TABLE public.t (id int PRIMARY KEY, v text)';

describe('cascade watermark: root → branch → leaf, then the leaf moved to the root', () => {
  let root: pg.Client, branch: pg.Client, leaf: pg.Client, leaf2: pg.Client;
  let rootW: pg.Client, rootW2: pg.Client, branchW: pg.Client, branchW2: pg.Client, branchW3: pg.Client, leafW: pg.Client, leaf2W: pg.Client;
  let branchWorker: engine.ApplyWorker;
  let l: TestDatabase, l2: TestDatabase;

  beforeAll(async () => {
    let r: TestDatabase, b: TestDatabase;
    [r, b, l, l2] = [await freshDatabase(sourceServer(), 'casw_r'), await freshDatabase(targetServer(), 'casw_b'), await freshDatabase(sourceServer(), 'casw_l'), await freshDatabase(targetServer(), 'casw_m')];
    [root, branch, leaf, leaf2, rootW, rootW2, branchW, branchW2, branchW3, leafW, leaf2W] = await Promise.all([
      r.connect(), b.connect(), l.connect(), l2.connect(), r.connect(), r.connect(), b.connect(), b.connect(), b.connect(), l.connect(), l2.connect(),
    ]);
    for (const c of [root, branch, leaf, leaf2]) {
      await c.query(SCHEMA);
      await engine.installEngine(c);
    }
    // A new event table every 4 transaction ids, on the root and on the branch.
    await engine.createQueue(root, 'q', { rotationTxids: 4, tickRetentionMs: 0 });
    await engine.addTable(root, 'q', 'public', 't');
    await engine.subscribe(root, branch, 'q', 'b');
    await engine.addSubscriberTable(branch, 'q', 'b', 'public', 't');
    await engine.createBranchQueue(branch, 'q', 'b', 'r', { rotationTxids: 4, tickRetentionMs: 0 });
    for (const [c, name] of [[leaf, 'l'], [leaf2, 'm']] as const) {
      await engine.subscribe(branch, c, 'q', name);
      await engine.addSubscriberTable(c, 'q', name, 'public', 't');
    }
    branchWorker = new engine.ApplyWorker(rootW, branchW, { queue: 'q', consumer: 'b' });
    await branchWorker.start();
  });

  afterAll(async () => {
    await Promise.all([root, branch, leaf, leaf2, rootW, rootW2, branchW, branchW2, branchW3, leafW, leaf2W].map((c) => c?.end().catch(() => undefined)));
  });

  const rotations = async (c: pg.Client) => Number((await c.query("SELECT rotations FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].rotations);
  const position = async (c: pg.Client, consumer: string) => (await c.query('SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE consumer_name = $1', [consumer])).rows[0].t as string;
  const consumerAt = async (c: pg.Client, name: string) =>
    ((await c.query("SELECT last_tick::text AS t FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'q' AND c.consumer_name = $1", [name])).rows[0]?.t ?? null) as string | null;
  /** Events in the queue's tables that the snapshot of tick `tick` does not see (read independently of pgconvey's functions). */
  const eventsAfter = async (c: pg.Client, tick: string) => {
    const id = (await c.query("SELECT queue_id FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].queue_id;
    const snap = (await c.query('SELECT tick_snapshot::text AS s FROM pgconvey.tick WHERE queue_id = $1 AND tick_id = $2', [id, tick])).rows[0]?.s;
    if (!snap) return null;
    const parts = [0, 1, 2].map((n) => `SELECT count(*) AS n FROM pgconvey.event_${id}_${n} WHERE NOT txid_visible_in_snapshot(ev_txid, $1::txid_snapshot)`);
    return Number((await c.query(`SELECT sum(n)::int AS n FROM (${parts.join(' UNION ALL ')}) x`, [snap])).rows[0].n);
  };
  const drain = async (w: engine.ApplyWorker) => {
    for (let i = 0; i < 10_000; i++) if ((await w.step()).kind === 'idle') return;
    throw new Error('the worker did not get idle');
  };
  const round = async (n: number, workers: engine.ApplyWorker[], publish: boolean) => {
    await root.query('INSERT INTO public.t SELECT g, md5(g::text) FROM generate_series($1 * 100 + 1, $1 * 100 + 100) g', [n]);
    await root.query('UPDATE public.t SET v = v || $1 WHERE id % 7 = $2', [`r${n}`, n % 7]);
    await root.query('DELETE FROM public.t WHERE id % 11 = $1 AND id < $2', [n % 11, n * 100]);
    await engine.forceTick(root, 'q');
    await drain(branchWorker);
    for (const w of workers) await drain(w);
    if (publish) await engine.publishWatermark(rootW, branchW, 'q', 'b');
    await engine.maintainQueue(root, 'q');
    await engine.maintainQueue(branch, 'q');
  };

  it('the root keeps what a stopped leaf under the branch needs; the leaf then moves to the root exactly', async () => {
    const leafWorker = new engine.ApplyWorker(branchW2, leafW, { queue: 'q', consumer: 'l' });
    await leafWorker.start();
    const leaf2Worker = new engine.ApplyWorker(branchW3, leaf2W, { queue: 'q', consumer: 'm' });
    await leaf2Worker.start();
    // Everyone applies and the watermark follows: the root empties what all of them have.
    for (let n = 0; n < 6; n++) await round(n, [leafWorker, leaf2Worker], true);
    expect(await rotations(root)).toBeGreaterThan(0);
    expect(await compareTable(root, leaf, 'public', 't')).toMatchObject({ missing: [], extra: [] });

    // The leaf stops (its worker is closed: its lock goes with it); the branch and the second leaf go on.
    await leafWorker.finishPending();
    await leafW.end();
    leafW = await l.connect();
    const stoppedAt = await position(leaf, 'l');
    const rotated = await rotations(root);
    for (let n = 6; n < 18; n++) await round(n, [leaf2Worker], true);
    // The root holds the leaf's tick and every event after it, as the branch does; its watermark says why.
    expect(await consumerAt(root, 'watermark:b')).toBe(stoppedAt);
    expect(await engine.readRetention(root, 'q')).toMatchObject({ consumer: 'watermark:b', tick: stoppedAt });
    expect(await engine.readRetention(branch, 'q')).toMatchObject({ consumer: 'l', tick: stoppedAt });
    const kept = await eventsAfter(root, stoppedAt);
    expect(kept).toBeGreaterThan(1200);
    expect(kept).toBe(await eventsAfter(branch, stoppedAt));
    // It rotates only as far as the leaf allows: not at all here (every table has events after the leaf's tick)…
    expect(await rotations(root)).toBeGreaterThanOrEqual(rotated);

    // The move: registered on the root at its tick, unregistered from the branch; applied from the root.
    const moved = await engine.changeProvider(branchW2, rootW2, leafW, 'q', 'l', 'r');
    expect(moved).toEqual({ tick: stoppedAt, registered: true });
    expect(await consumerAt(root, 'l')).toBe(stoppedAt);
    expect(await consumerAt(branch, 'l')).toBeNull();
    // Run again: a finished move does nothing more.
    expect(await engine.changeProvider(null, rootW2, leafW, 'q', 'l', 'r')).toEqual({ tick: stoppedAt, registered: false });
    const movedWorker = new engine.ApplyWorker(rootW2, leafW, { queue: 'q', consumer: 'l' });
    await movedWorker.start();
    await drain(movedWorker);
    expect(await compareTable(root, leaf, 'public', 't')).toMatchObject({ missing: [], extra: [] });
    // Writes go on: the moved leaf, the branch and the leaf still under it all equal the root.
    for (let n = 18; n < 24; n++) await round(n, [movedWorker, leaf2Worker], true);
    for (const c of [branch, leaf, leaf2]) expect(await compareTable(root, c, 'public', 't')).toMatchObject({ missing: [], extra: [] });
    expect(await position(leaf, 'l')).toBe(await position(branch, 'b'));
    // With the leaf gone from the branch, the root's watermark moves on and it rotates again.
    expect(BigInt((await consumerAt(root, 'watermark:b'))!)).toBeGreaterThan(BigInt(stoppedAt));
    expect(await rotations(root)).toBeGreaterThan(rotated);

    // The second leaf stops, and the branch no longer publishes its watermark (dropped): the root rotates
    // past the second leaf's tick, so moving it there is refused — and it is left on the branch.
    await leaf2Worker.finishPending();
    await leaf2W.end();
    leaf2W = await l2.connect();
    await engine.dropWatermark(root, 'q', 'b');
    const leaf2At = await position(leaf2, 'm');
    for (let n = 24; n < 34; n++) await round(n, [movedWorker], false);
    await expect(engine.changeProvider(branchW3, rootW2, leaf2W, 'q', 'm', 'r')).rejects.toMatchObject({ code: 'change_provider_refused' });
    expect(await consumerAt(branch, 'm')).toBe(leaf2At);
    expect(await consumerAt(root, 'm')).toBeNull();
  });
});

describe('cascade watermark: a branch moved from a branch to the root, its leaf following it', () => {
  it('root → b1 → b2 → l2: b2 stopped is held on the root through b1; moved to the root, b2 and l2 equal the root row by row', { timeout: 120_000 }, async () => {
    const dbs = [await freshDatabase(sourceServer(), 'casx_r'), await freshDatabase(targetServer(), 'casx_b1'), await freshDatabase(sourceServer(), 'casx_b2'), await freshDatabase(targetServer(), 'casx_l2')];
    const [root, b1, b2, l2] = await Promise.all(dbs.map((d) => d.connect()));
    const conns: pg.Client[] = [root!, b1!, b2!, l2!];
    const more = async (i: number) => {
      const c = await dbs[i]!.connect();
      conns.push(c);
      return c;
    };
    try {
      for (const c of [root!, b1!, b2!, l2!]) {
        await c.query(SCHEMA);
        await engine.installEngine(c);
      }
      await engine.createQueue(root!, 'q', { rotationTxids: 4, tickRetentionMs: 0 });
      await engine.addTable(root!, 'q', 'public', 't');
      await engine.subscribe(root!, b1!, 'q', 'b1');
      await engine.addSubscriberTable(b1!, 'q', 'b1', 'public', 't');
      await engine.createBranchQueue(b1!, 'q', 'b1', 'r', { rotationTxids: 4, tickRetentionMs: 0 });
      await engine.subscribe(b1!, b2!, 'q', 'b2');
      await engine.addSubscriberTable(b2!, 'q', 'b2', 'public', 't');
      await engine.createBranchQueue(b2!, 'q', 'b2', 'b1', { rotationTxids: 4, tickRetentionMs: 0 });
      await engine.subscribe(b2!, l2!, 'q', 'l2');
      await engine.addSubscriberTable(l2!, 'q', 'l2', 'public', 't');
      const [rootA, rootB, b1A, b1B, b2A, b2B, l2A] = [await more(0), await more(0), await more(1), await more(1), await more(2), await more(2), await more(3)];
      const w1 = new engine.ApplyWorker(rootA, b1A, { queue: 'q', consumer: 'b1' });
      let w2 = new engine.ApplyWorker(b1B, b2A, { queue: 'q', consumer: 'b2' });
      const w3 = new engine.ApplyWorker(b2B, l2A, { queue: 'q', consumer: 'l2' });
      for (const w of [w1, w2, w3]) await w.start();
      const drain = async (w: engine.ApplyWorker) => {
        for (let i = 0; i < 10_000; i++) if ((await w.step()).kind === 'idle') return;
        throw new Error('the worker did not get idle');
      };
      const at = async (c: pg.Client, name: string) =>
        ((await c.query("SELECT last_tick::text AS t FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'q' AND c.consumer_name = $1", [name])).rows[0]?.t ?? null) as string | null;
      const round = async (n: number, b2Provider: pg.Client | null, running: engine.ApplyWorker[]) => {
        await root!.query('INSERT INTO public.t SELECT g, md5(g::text) FROM generate_series($1 * 100 + 1, $1 * 100 + 100) g', [n]);
        await root!.query('UPDATE public.t SET v = v || $1 WHERE id % 5 = $2', [`r${n}`, n % 5]);
        await root!.query('DELETE FROM public.t WHERE id % 13 = $1 AND id < $2', [n % 13, n * 100]);
        await engine.forceTick(root!, 'q');
        for (const w of running) await drain(w);
        if (b2Provider) await engine.publishWatermark(b2Provider, b2A, 'q', 'b2');
        await engine.publishWatermark(rootA, b1A, 'q', 'b1');
        for (const c of [root!, b1!, b2!]) await engine.maintainQueue(c, 'q');
      };
      for (let n = 0; n < 4; n++) await round(n, b1B, [w1, w2, w3]);
      // b2 stops: b1 keeps its events, and the root keeps them through b1's watermark.
      await w2.finishPending();
      const b2At = (await b2!.query("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE consumer_name = 'b2'")).rows[0].t as string;
      for (let n = 4; n < 10; n++) await round(n, null, [w1]);
      expect(await at(root!, 'watermark:b1')).toBe(b2At);
      // The move (b2's worker stopped: its connection closed releases its lock).
      await b2A.end();
      const b2C = await more(2);
      expect(await engine.changeProvider(b1B, rootB, b2C, 'q', 'b2', 'r')).toEqual({ tick: b2At, registered: true });
      expect((await b2!.query("SELECT branch_provider FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].branch_provider).toBe('r');
      expect(await at(root!, 'b2')).toBe(b2At);
      expect(await at(root!, 'watermark:b2')).not.toBeNull();
      expect(await at(b1!, 'b2')).toBeNull();
      expect(await at(b1!, 'watermark:b2')).toBeNull();
      w2 = new engine.ApplyWorker(rootB, b2C, { queue: 'q', consumer: 'b2' });
      await w2.start();
      const pub = async () => engine.publishWatermark(rootB, b2C, 'q', 'b2');
      for (let n = 10; n < 16; n++) {
        await round(n, null, [w1, w2, w3]);
        await pub();
      }
      for (const c of [b1!, b2!, l2!]) expect(await compareTable(root!, c, 'public', 't')).toMatchObject({ missing: [], extra: [] });
      // b2's ticks are still root ticks of the same ids, and l2 is where b2 is.
      const ids = (await b2!.query<{ t: string }>('SELECT tick_id::text AS t FROM pgconvey.tick')).rows.map((r) => r.t);
      const onRoot = new Set((await root!.query<{ t: string }>('SELECT tick_id::text AS t FROM pgconvey.tick WHERE tick_id = ANY ($1::bigint[])', [ids])).rows.map((r) => r.t));
      expect(ids.filter((t) => !onRoot.has(t))).toEqual([]);
      const pos = async (c: pg.Client) => (await c.query("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE queue_name = 'q'")).rows[0].t as string;
      expect(await pos(l2!)).toBe(await pos(b2!));
    } finally {
      await Promise.all(conns.map((c) => c.end().catch(() => undefined)));
    }
  });
});
