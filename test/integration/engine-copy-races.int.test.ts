/**
 * Races between the initial copy, resync, the merge and the apply worker,
 * each made deterministic by holding one side on a lock: a resync and copy
 * while a batch is stalled mid-way; a rewriting ALTER TABLE on the provider
 * while the copy waits for a subscriber reader; the worker killed between the
 * commit that finishes a merge and the removal of the copy's pin; a
 * transaction idle since before the copy's snapshot. Rows are checked one by
 * one with our own SQL.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { introspectDatabases } from '../../src/catalog/index.js';
import { loadDesiredStateFromText, parseDsn } from '../../src/config/index.js';
import { connect } from '../../src/db/index.js';
import * as engine from '../../src/engine/index.js';
import { collectStatus } from '../../src/operations/index.js';
import { buildPlan } from '../../src/planner/index.js';
import { twoNodeYaml } from '../harness/desired-file.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';
import { drainThrough } from '../harness/drain.js';

const Q = 'q';
const C = 'new';

describe('copy, resync, merge and apply races', () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let prov: pg.Client;
  let sub: pg.Client;
  let wp: pg.Client;
  let ws: pg.Client;
  let worker: engine.ApplyWorker;

  const open = (db: TestDatabase) => () => db.connect();
  const state = async (table: string) => (await sub.query<{ state: string }>('SELECT state FROM pgconvey.subscriber_table WHERE table_name = $1', [table])).rows[0]?.state;
  const pins = async () => (await prov.query<{ name: string }>("SELECT consumer_name AS name FROM pgconvey.consumer WHERE consumer_name LIKE 'copy:%' ORDER BY 1")).rows.map((r) => r.name);
  const rows = async (c: pg.Client, table: string) => (await c.query(`SELECT id::text, v::text FROM public.${table} ORDER BY id`)).rows as Array<{ id: string; v: string }>;

  const desiredState = () => loadDesiredStateFromText('races.yaml', twoNodeYaml({ queue: Q, root: 'root', leaf: C, oldDsn: pdb.dsn, newDsn: sdb.dsn }), {}).state!;

  async function startWorker(): Promise<void> {
    wp = await pdb.connect();
    ws = await sdb.connect();
    // A connection terminated on purpose emits 'error' when idle.
    for (const c of [wp, ws]) c.on('error', () => undefined);
    worker = new engine.ApplyWorker(wp, ws, { queue: Q, consumer: C });
    await worker.start();
  }

  /** Ticks, and applies batches until there is none left. */
  async function catchUp(): Promise<void> {
    await drainThrough(worker, await engine.forceTick(prov, Q));
  }

  async function addTable(table: string, ddl: string, fill: string): Promise<void> {
    await prov.query(ddl);
    await sub.query(ddl);
    await prov.query(fill);
    await engine.addTable(prov, Q, 'public', table);
    await engine.addSubscriberTable(sub, Q, C, 'public', table, 'pending');
  }

  async function sessionsWaitingOnLock(db: TestDatabase, except: number[] = []): Promise<number> {
    const r = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND NOT pid = ANY ($1)", [except]);
    return r.rows[0]!.n;
  }

  beforeAll(async () => {
    pdb = await freshDatabase(sourceServer(), 'race_p');
    sdb = await freshDatabase(targetServer(), 'race_s');
    prov = await pdb.connect();
    sub = await sdb.connect();
    for (const c of [prov, sub]) await engine.installEngine(c);
    await engine.createQueue(prov, Q);
    await engine.subscribe(prov, sub, Q, C);
    await startWorker();
  });

  afterAll(async () => {
    for (const c of [wp, ws, prov, sub]) await c?.end().catch(() => undefined);
  });

  it('a resync and copy while a batch is applied lose no row', { timeout: 60_000 }, async () => {
    await addTable('r', 'CREATE TABLE public.r (id int PRIMARY KEY, v text NOT NULL)', "INSERT INTO public.r SELECT g, 'v' || g FROM generate_series(1, 1000) g");
    await engine.copyTable(open(pdb), open(sdb), { queue: Q, consumer: C, schema: 'public', table: 'r' });
    await catchUp();
    expect(await state('r')).toBe('ok');
    await prov.query("UPDATE public.r SET v = 'warm' WHERE id = 1"); // the worker has its statements ready
    await catchUp();

    // Batch 1 deletes row 5; the row is back (and row 6 changed) before the copy's snapshot.
    await prov.query('DELETE FROM public.r WHERE id = 5');
    await engine.forceTick(prov, Q);
    await prov.query("INSERT INTO public.r VALUES (5, 'back')");
    await prov.query("UPDATE public.r SET v = 'later' WHERE id = 6");

    // Stall the worker's reading of batch 1 (after it has read the table states) on the event tables.
    const queueId = (await prov.query('SELECT queue_id FROM pgconvey.queue WHERE queue_name = $1', [Q])).rows[0].queue_id as number;
    const locker = await pdb.connect();
    await locker.query('BEGIN');
    for (let n = 0; n < 3; n++) await locker.query(`LOCK TABLE pgconvey.event_${queueId}_${n} IN ACCESS EXCLUSIVE MODE`);
    const workerPid = (await wp.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const step = worker.step();
    step.catch(() => undefined);
    await waitFor('the batch to wait on the event tables', async () => (await pdb.query('SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1', [workerPid])).rows[0]?.w === 'Lock', 10_000);

    // Meanwhile: resync, and copy the table again (the copy's snapshot has row 5 back).
    let settled = false;
    const resynced = (async () => {
      const c = await sdb.connect();
      try {
        await engine.resyncTable(c, Q, C, 'public', 'r');
      } finally {
        await c.end();
      }
      await engine.copyTable(open(pdb), open(sdb), { queue: Q, consumer: C, schema: 'public', table: 'r' });
    })().finally(() => (settled = true));
    resynced.catch(() => undefined);
    // Either the resync and copy went through under the stalled batch, or the resync waits for the batch.
    await waitFor('the resync to finish or to wait for the batch', async () => settled || (await sessionsWaitingOnLock(sdb)) > 0, 20_000);
    await locker.query('COMMIT');
    await locker.end();
    await step;
    await resynced;
    await catchUp();
    await catchUp();
    expect(await state('r')).toBe('ok');
    const want = await rows(prov, 'r');
    expect(want.find((r) => r.id === '5')).toEqual({ id: '5', v: 'back' });
    expect(await rows(sub, 'r')).toEqual(want);
  });

  it('a rewriting ALTER TABLE while the copy waits for a subscriber reader: every row is copied', { timeout: 60_000 }, async () => {
    await addTable('w', 'CREATE TABLE public.w (id int PRIMARY KEY, v int NOT NULL)', 'INSERT INTO public.w SELECT g, g FROM generate_series(1, 1000) g');
    const reader = await sdb.connect();
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM public.w');
    // Through connect(), as the copy daemon opens them: status recognises the copy's sessions.
    const openCopy = (db: TestDatabase) => () => connect(parseDsn(db.dsn), 'copy');
    const copy = engine.copyTable(openCopy(pdb), openCopy(sdb), { queue: Q, consumer: C, schema: 'public', table: 'w' });
    copy.catch(() => undefined);
    const readerPid = (await reader.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await waitFor('the copy to wait for the reader', async () => (await sessionsWaitingOnLock(sdb, [readerPid])) > 0, 20_000);
    const status = await collectStatus(desiredState());
    const w = status.queues[0]!.subscribers[0]!.tables.find((t) => t.table === 'w')!;
    expect(w.state).toBe('copying');
    expect(w.waitingFor).toContain(`a lock on the subscriber held by pid ${readerPid} (idle in transaction`);
    const alter = await pdb.connect();
    await alter.query("SET lock_timeout = '20s'");
    await alter.query('ALTER TABLE public.w ALTER COLUMN v TYPE bigint');
    await alter.end();
    await reader.query('COMMIT');
    await reader.end();
    const r = await copy;
    expect(r.rows).toBe(1000);
    await catchUp();
    expect(await state('w')).toBe('ok');
    expect(await rows(sub, 'w')).toEqual(await rows(prov, 'w'));
  });

  it('a transaction idle since before the copy does not hold the merge', { timeout: 60_000 }, async () => {
    await addTable('i', 'CREATE TABLE public.i (id int PRIMARY KEY, v text NOT NULL)', "INSERT INTO public.i SELECT g, 'v' || g FROM generate_series(1, 500) g");
    const idle = await pdb.connect();
    await idle.query('BEGIN');
    await idle.query('SELECT txid_current()');
    try {
      await engine.copyTable(open(pdb), open(sdb), { queue: Q, consumer: C, schema: 'public', table: 'i' });
      await prov.query("UPDATE public.i SET v = 'after' WHERE id <= 10");
      await catchUp();
      await catchUp();
      expect(await state('i')).toBe('ok');
      expect(await rows(sub, 'i')).toEqual(await rows(prov, 'i'));
    } finally {
      await idle.query('ROLLBACK');
      await idle.end();
    }
  });

  it('a pin left by a worker killed between the merge commit and the pin removal is gone after the next batch', { timeout: 60_000 }, async () => {
    await addTable('k', 'CREATE TABLE public.k (id int PRIMARY KEY, v text NOT NULL)', "INSERT INTO public.k SELECT g, 'v' || g FROM generate_series(1, 500) g");
    await engine.copyTable(open(pdb), open(sdb), { queue: Q, consumer: C, schema: 'public', table: 'k' });
    expect((await pins()).length).toBe(1);
    // The pin's removal waits on its row; the worker is killed then, after its subscriber commit.
    const holder = await pdb.connect();
    await holder.query('BEGIN');
    await holder.query("SELECT 1 FROM pgconvey.consumer WHERE consumer_name LIKE 'copy:%' FOR UPDATE");
    await engine.forceTick(prov, Q);
    const workerPid = (await wp.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const step = worker.step();
    step.catch(() => undefined);
    await waitFor('the pin removal to wait', async () => (await pdb.query('SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1', [workerPid])).rows[0]?.w === 'Lock', 10_000);
    expect(await state('k')).toBe('ok');
    await prov.query('SELECT pg_terminate_backend($1)', [workerPid]);
    await expect(step).rejects.toThrow();
    await holder.query('ROLLBACK');
    await holder.end();
    await ws.end().catch(() => undefined);
    await wp.end().catch(() => undefined);
    const leaked = await pins();
    expect(leaked.length).toBe(1);
    // plan and status say so.
    const plan = buildPlan({ state: desiredState(), catalogs: await introspectDatabases(desiredState().databases), engineVersion: engine.ENGINE_VERSION });
    expect(plan.actions.filter((a) => a.kind === 'remove_consumer').map((a) => a.object)).toEqual(leaked);
    const status = await collectStatus(desiredState());
    expect(status.problems.filter((p) => p.includes('stale copy pin'))).toHaveLength(1);
    expect(status.problems.find((p) => p.includes('stale copy pin'))).toContain(leaked[0]);

    await startWorker();
    await catchUp();
    expect(await pins()).toEqual([]);
    expect(await rows(sub, 'k')).toEqual(await rows(prov, 'k'));
  });
});
