/**
 * compare against real replication (old → new): set up from a desired-state
 * file (plan + apply), copied and applied by the ticker and worker daemons;
 * then compare finds every table equal — also while a seeded random writer
 * keeps changing all of them, which only holds if both sides are read at the
 * same queue position — and names the exact key of a row updated, deleted or
 * inserted on the subscriber behind replication's back (diffTable confirms
 * each case independently). A stopped worker, tables still waiting for their
 * copy and bad table names are reported with their codes. Replay with PGCONVEY_SEED=<seed>.
 */
import format from 'pg-format';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { introspectDatabases } from '../../src/catalog/index.js';
import { loadDesiredStateFromText, parseDsn, type DesiredState } from '../../src/config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import { ENGINE_VERSION } from '../../src/engine/index.js';
import { connectionsOf, executePlan } from '../../src/executor/index.js';
import { CompareError, compareState, type CompareReport, type TableComparison } from '../../src/operations/index.js';
import { buildPlan } from '../../src/planner/index.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { twoNodeYaml } from '../harness/desired-file.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const EVENTS = 50_000;
const CHUNK_ROWS = 5_000;

// Stored generated columns exist from PostgreSQL 12.
const GENERATED = sourceServer().major >= 12 && targetServer().major >= 12 ? ', doubled bigint GENERATED ALWAYS AS (id * 2) STORED' : '';
const SCHEMA = `
  CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], updated timestamptz);
  CREATE TABLE public.order_lines (order_code text NOT NULL, line int NOT NULL, qty int NOT NULL, note text, PRIMARY KEY (order_code, line));
  CREATE TABLE public.events (id bigint PRIMARY KEY, payload text, at timestamptz NOT NULL, amount float8${GENERATED});
`;

const ROWS = `
  INSERT INTO public.items SELECT g, 'item ' || g, g * 1.25, ARRAY['t' || g % 7, 'x'], '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute' FROM generate_series(1, 2000) g;
  INSERT INTO public.order_lines SELECT code, l, l * 3, CASE WHEN l % 2 = 0 THEN NULL ELSE 'note ' || code END
    FROM unnest(ARRAY['a-1', 'B-2', 'b-3', 'Z', 'é-4', 'ä', '_x', 'ab c']) AS code, generate_series(1, 40) l;
  INSERT INTO public.events (id, payload, at, amount) SELECT g, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 second', g / 7.0 FROM generate_series(1, ${EVENTS}) g;
`;

const KEYS: Array<[string, string[]]> = [
  ['public.items', ['id']],
  ['public.order_lines', ['order_code', 'line']],
  ['public.events', ['id']],
];

describe(`compare at one queue position (seed ${SEED})`, () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let prov: pg.Client;
  let sub: pg.Client;
  let state: DesiredState;
  const tickerStop = new AbortController();
  const workerStop = new AbortController();
  let ticker: Promise<void>;
  let worker: Promise<void>;

  beforeAll(async () => {
    console.log(`[compare] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    pdb = await freshDatabase(sourceServer(), 'cmp_p');
    sdb = await freshDatabase(targetServer(), 'cmp_s');
    await pdb.query(SCHEMA + ROWS);
    await sdb.query(SCHEMA);
    // The subscriber orders the text key by another collation than the provider (C, or the database's):
    // chunk ranges only line up because compare orders and compares it with COLLATE "C" on both sides.
    const icu = (await sdb.query("SELECT collname FROM pg_catalog.pg_collation WHERE collname IN ('en-x-icu', 'und-x-icu') ORDER BY 1 LIMIT 1")).rows[0]?.collname;
    expect(icu, 'an ICU collation on the target server').toBeDefined();
    await sdb.query(format('ALTER TABLE public.order_lines ALTER COLUMN order_code TYPE text COLLATE %I', icu));
    const yaml = twoNodeYaml({ queue: 'q', root: 'root', leaf: 'new', oldDsn: pdb.dsn, newDsn: sdb.dsn });
    const loaded = loadDesiredStateFromText('compare.yaml', yaml, {});
    expect(loaded.diagnostics).toEqual([]);
    state = loaded.state!;
    const plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION });
    expect(plan.errored, JSON.stringify(plan.checks)).toBe(false);
    await executePlan(plan, connectionsOf(state.databases));

    const log = createLogger({ level: 'error' });
    ticker = runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', log, signal: tickerStop.signal });
    worker = runWorkerDaemon({ provider: parseDsn(pdb.dsn), subscriber: parseDsn(sdb.dsn), queue: 'q', consumer: 'new', log, signal: workerStop.signal });
    prov = await pdb.connect();
    sub = await sdb.connect();
    await waitFor(
      'every table copied (state ok)',
      async () => (await sub.query("SELECT count(*) FILTER (WHERE state = 'ok') AS ok FROM pgconvey.subscriber_table")).rows[0].ok === '3',
      90_000,
    );
  });

  afterAll(async () => {
    workerStop.abort();
    tickerStop.abort();
    await Promise.all([ticker, worker]);
    await prov?.end();
    await sub?.end();
  });

  const table = (report: CompareReport, name: string): TableComparison => report.tables.find((t) => t.table === name)!;

  async function expectIdentical(): Promise<void> {
    const tick = (await prov.query<{ t: string }>("SELECT pgconvey.force_tick('q')::text AS t")).rows[0]!.t;
    await waitFor(`tick ${tick} applied`, async () => BigInt((await sub.query('SELECT completed_tick FROM pgconvey.subscription')).rows[0].completed_tick) >= BigInt(tick));
    for (const [t, key] of KEYS) {
      const d = await diffTable(prov, sub, t, key);
      expect(d, `${t} (seed ${SEED})`).toEqual({ ...d, missing: [], extra: [], subscriberRows: d.providerRows });
    }
  }

  it('finds every table equal, in several chunks', { timeout: 60_000 }, async () => {
    const report = await compareState(state, { chunkRows: CHUNK_ROWS });
    expect(report.equal, JSON.stringify(report.tables.filter((t) => !t.equal))).toBe(true);
    expect(report.tables.map((t) => [t.table, t.compared, t.equal])).toEqual([
      ['public.events', true, true],
      ['public.items', true, true],
      ['public.order_lines', true, true],
    ]);
    const events = table(report, 'public.events');
    expect(events).toMatchObject({ providerRows: EVENTS, subscriberRows: EVENTS, node: 'new', queue: 'q', keyColumns: ['id'] });
    expect(events.chunks).toBe(EVENTS / CHUNK_ROWS + 1);
    expect(events.writersPausedMs).toBeGreaterThanOrEqual(0);
    expect(table(report, 'public.order_lines').providerRows).toBe(8 * 40);
    await expectIdentical();
  });

  it('finds every table equal while a random writer keeps changing them', { timeout: 120_000 }, async () => {
    let stop = false;
    let transactions = 0;
    const writers = [SEED, SEED + 1].map(async (seed) => {
      const c = await pdb.connect();
      try {
        const rng = createRng(seed);
        while (!stop) {
          await writeOnce(c, rng);
          transactions++;
        }
      } finally {
        await c.end();
      }
    });
    try {
      await waitFor('the writers under way', async () => transactions > 50);
      for (let round = 0; round < 2; round++) {
        const before = transactions;
        const report = await compareState(state, { chunkRows: CHUNK_ROWS });
        const differing = report.tables.filter((t) => !t.equal).map((t) => ({ table: t.table, ranges: t.differingRanges }));
        expect(differing, `compare under writes, round ${round} (seed ${SEED})`).toEqual([]);
        expect(transactions - before, 'the writers kept writing during compare').toBeGreaterThan(20);
      }
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    await expectIdentical();
  });

  it('names a row changed on the subscriber', { timeout: 60_000 }, async () => {
    const row = (await prov.query<{ id: string; amount: number }>('SELECT id::text, amount FROM public.events WHERE id >= 23456 ORDER BY id LIMIT 1')).rows[0]!;
    const rows = Number((await prov.query('SELECT count(*) AS n FROM public.events')).rows[0].n);
    await sub.query('UPDATE public.events SET amount = amount + 0.5 WHERE id = $1', [row.id]);
    try {
      expect((await diffTable(prov, sub, 'public.events', ['id'])).extra).toHaveLength(1);
      const report = await compareState(state, { tables: ['events'], chunkRows: CHUNK_ROWS });
      expect(report.equal).toBe(false);
      expect(report.tables).toHaveLength(1);
      const events = table(report, 'public.events');
      expect(events).toMatchObject({ equal: false, providerRows: rows, subscriberRows: rows, moreDifferingRanges: 0 });
      expect(events.differingRanges).toEqual([
        { from: { id: row.id }, to: { id: row.id }, providerRows: expect.any(Number), subscriberRows: expect.any(Number), missing: [], extra: [], changed: [{ id: row.id }], missingCount: 0, extraCount: 0, changedCount: 1 },
      ]);
      expect(events.differingRanges[0]!.providerRows).toBeLessThanOrEqual(1000);
    } finally {
      await sub.query('UPDATE public.events SET amount = $2 WHERE id = $1', [row.id, row.amount]);
    }
    await expectIdentical();
  });

  it('names a row deleted on the subscriber, by its composite text key', { timeout: 60_000 }, async () => {
    const row = (await prov.query("SELECT * FROM public.order_lines WHERE order_code = 'B-2' AND line = 17")).rows[0];
    const rows = Number((await prov.query('SELECT count(*) AS n FROM public.order_lines')).rows[0].n);
    await sub.query("DELETE FROM public.order_lines WHERE order_code = 'B-2' AND line = 17");
    try {
      expect((await diffTable(prov, sub, 'public.order_lines', ['order_code', 'line'])).missing).toHaveLength(1);
      const report = await compareState(state, { tables: ['public.order_lines'], chunkRows: 100 });
      const lines = table(report, 'public.order_lines');
      expect(lines).toMatchObject({ equal: false, providerRows: rows, subscriberRows: rows - 1 });
      expect(lines.chunks).toBeGreaterThan(3);
      expect(lines.differingRanges).toEqual([
        expect.objectContaining({ from: { order_code: 'B-2', line: '17' }, to: { order_code: 'B-2', line: '17' }, missing: [{ order_code: 'B-2', line: '17' }], extra: [], changed: [] }),
      ]);
    } finally {
      await sub.query('INSERT INTO public.order_lines VALUES ($1, $2, $3, $4)', [row.order_code, row.line, row.qty, row.note]);
    }
    await expectIdentical();
  });

  it('names rows inserted on the subscriber below and above the provider\'s keys', { timeout: 60_000 }, async () => {
    await sub.query("INSERT INTO public.items (id, name) VALUES (-5, 'below'), (999999, 'above')");
    try {
      expect((await diffTable(prov, sub, 'public.items', ['id'])).extra).toHaveLength(2);
      const report = await compareState(state, { tables: ['public.items'], chunkRows: 500 });
      const items = table(report, 'public.items');
      expect(items).toMatchObject({ equal: false, providerRows: 2000, subscriberRows: 2002 });
      expect(items.differingRanges.map((r) => [r.from, r.to, r.extra, r.missingCount, r.changedCount])).toEqual([
        [{ id: '-5' }, { id: '-5' }, [{ id: '-5' }], 0, 0],
        [{ id: '999999' }, { id: '999999' }, [{ id: '999999' }], 0, 0],
      ]);
    } finally {
      await sub.query('DELETE FROM public.items WHERE id IN (-5, 999999)');
    }
    await expectIdentical();
  });

  it('refuses unknown and unreplicated tables before locking anything', async () => {
    await expect(compareState(state, { tables: ['public.itemz'] })).rejects.toMatchObject({ code: 'unknown_table', hint: 'did you mean public.items?' });
    await prov.query('CREATE TABLE public.not_replicated (id int PRIMARY KEY)');
    await expect(compareState(state, { tables: ['not_replicated'] })).rejects.toMatchObject({ code: 'table_not_replicated' });
    await expect(compareState(state, { queue: 'nope' })).rejects.toBeInstanceOf(CompareError);
  });

  it('says so when no worker applies the subscription, and releases the lock', { timeout: 60_000 }, async () => {
    workerStop.abort();
    await worker;
    const err = await compareState(state, { tables: ['items'], applyStallMs: 1_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompareError);
    expect(err).toMatchObject({ code: 'no_apply_worker' });
    expect((err as Error).message).toContain('subscription "new" of queue "q"');
    await prov.query("SET lock_timeout = '2s'; UPDATE public.items SET name = name WHERE id = 1; RESET lock_timeout");
  });

  it('lists tables waiting for their copy as not comparable, and refuses them by name', async () => {
    for (const [t] of KEYS) await sub.query("UPDATE pgconvey.subscriber_table SET state = 'pending' WHERE table_name = $1", [t.split('.')[1]]);
    await expect(compareState(state, { tables: ['public.items'] })).rejects.toMatchObject({ code: 'table_not_ready' });
    const report = await compareState(state);
    expect(report.tables.map((t) => [t.table, t.compared, t.state, t.equal])).toEqual([
      ['public.events', false, 'pending', null],
      ['public.items', false, 'pending', null],
      ['public.order_lines', false, 'pending', null],
    ]);
  });
});

/** One writer transaction: a few random updates, inserts and deletes across the three tables. */
async function writeOnce(c: pg.Client, rng: Rng): Promise<void> {
  await c.query('BEGIN');
  for (let i = rng.int(1, 4); i > 0; i--) {
    const op = rng.int(0, 5);
    if (op === 0) await c.query('UPDATE public.events SET payload = md5(random()::text), amount = amount + 1 WHERE id = $1', [rng.int(1, EVENTS)]);
    else if (op === 1) await c.query('INSERT INTO public.events (id, payload, at, amount) VALUES ($1, $2, now(), $3) ON CONFLICT (id) DO NOTHING', [rng.int(EVENTS + 1, EVENTS * 3), `w${rng.next()}`, rng.next()]);
    else if (op === 2) await c.query('DELETE FROM public.events WHERE id = $1', [rng.int(1, EVENTS * 3)]);
    else if (op === 3) await c.query('UPDATE public.items SET price = price + 1, updated = now() WHERE id = $1', [rng.int(1, 2000)]);
    else if (op === 4) await c.query(format('INSERT INTO public.order_lines VALUES (%L, $1, $2, NULL) ON CONFLICT DO NOTHING', rng.pick(['a-1', 'B-2', 'Z'])), [rng.int(41, 400), rng.int(1, 9)]);
    else await c.query("UPDATE public.order_lines SET qty = qty + 1 WHERE order_code = 'Z' AND line = $1", [rng.int(1, 40)]);
  }
  await c.query('COMMIT');
}
